"""``agentcron pools`` (set | list | delete): rate-limit pools several agents draw from,
thin over ``agentcron.services.pools``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, print_table, say
from agentcron.services.pools import PoolInput, pool_json

if TYPE_CHECKING:
    from agentcron.models import Pool
    from agentcron.services.pools import PoolService

app = typer.Typer(help="Rate-limit pools: requests and tokens per minute that several agents "
                       "share across every node.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _pools(ctx: typer.Context) -> PoolService:
    return services(ctx).pools


def _fill(used: int, limit: int | None) -> str:
    return f"{used:,}" if limit is None else f"{used:,}/{limit:,}"


@app.command("set")
def set_(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The pool, as agents name it.")],
    requests_per_minute: Annotated[int | None, typer.Option(
        "--requests-per-minute", "--rpm", metavar="N",
        help="At most N runs start in any sliding minute.")] = None,
    tokens_per_minute: Annotated[int | None, typer.Option(
        "--tokens-per-minute", "--tpm", metavar="N",
        help="At most N tokens in any sliding minute (a run reserves its max_tokens until "
             "it reports usage).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create or replace a pool. Agents draw from it with `pool = "NAME"`."""
    service = _pools(ctx)
    pool = service.save(service.build(PoolInput(name, requests_per_minute, tokens_per_minute)))
    if as_json:
        emit_json(pool_json(pool))
    else:
        say(f"pool {pool.name} set: {_limits(pool)}")


def _limits(pool: Pool) -> str:
    parts = []
    if pool.requests_per_minute is not None:
        parts.append(f"{pool.requests_per_minute:,} requests/min")
    if pool.tokens_per_minute is not None:
        parts.append(f"{pool.tokens_per_minute:,} tokens/min")
    return ", ".join(parts)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List pools with how full each is (what the last minute started)."""
    pools = _pools(ctx).all()
    if as_json:
        emit_json([pool_json(p) for p in pools])
    elif not pools:
        say("no pools")
    else:
        print_table(None, ["POOL", "REQUESTS/MIN", "TOKENS/MIN", "AGENTS", "SOURCE"],
                    ([p.name, _fill(p.requests, p.requests_per_minute),
                      _fill(p.tokens, p.tokens_per_minute), ", ".join(p.agents) or "-",
                      p.source] for p in pools), no_wrap=["POOL"])


@app.command("delete")
def delete(ctx: typer.Context,
           name: Annotated[str, typer.Argument(metavar="NAME", help="The pool.")]) -> None:
    """Delete a pool. Runs of agents that still name it wait until it exists again."""
    _pools(ctx).remove(name)
    say(f"pool {name} deleted")
