"""``agentcron agents``: add, list, rm."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from agentcron.cli_common import services
from agentcron.cli_render import agent_json, emit_json, print_agents, say
from agentcron.errors import ValidationError

app = typer.Typer(help="Agents: the things triggers run.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(
        metavar="NAME", help="Agent name (letters, digits, _ . -).")],
    http: Annotated[str | None, typer.Option("--http", metavar="URL",
                                             help="POST each run to this URL.")] = None,
    secret: Annotated[str | None, typer.Option(
        "--secret", help="Sign --http requests with this secret (whsec_...).")] = None,
    command: Annotated[str | None, typer.Option(
        "--command", metavar="CMD", help="Run this command line (no shell).")] = None,
    python: Annotated[str | None, typer.Option(
        "--python", metavar="MODULE:FUNC", help="Call this Python function.")] = None,
    max_concurrency: Annotated[int, typer.Option(
        "--max-concurrency", help="Runs of this agent at once, across all nodes.")] = 1,
    timeout: Annotated[str, typer.Option("--timeout", help="Per-attempt time limit.")] = "5m",
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", help="Attempts before a run fails.")] = 3,
    zombie_timeout: Annotated[str | None, typer.Option(
        "--zombie-timeout", help="Silence after which a running attempt is lost "
        "(default: the node's).")] = None,
    retry_backoff: Annotated[str, typer.Option(
        "--retry-backoff", help="Delay before the first retry (doubles).")] = "2s",
    description: Annotated[str | None, typer.Option("--description")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an agent, or replace the settings of one with the same name."""
    kinds = {"http": http, "command": command, "python": python}
    given = [kind for kind, value in kinds.items() if value is not None]
    if len(given) != 1:
        raise ValidationError(
            "kind",
            "no agent kind given" if not given
            else " and ".join(f"--{k}" for k in given) + " given together",
            "give exactly one of --http URL, --command CMD or --python MODULE:FUNC",
        )
    kind = given[0]
    if secret is not None and kind != "http":
        raise ValidationError("secret", f"does not apply to a {kind} agent",
                              "use --secret with --http")
    config: dict[str, Any]
    if kind == "http":
        config = {"url": http, "secret": secret}
    elif kind == "command":
        config = {"command": command}
    else:
        config = {"target": python}
    svc = services(ctx)
    spec = svc.build_agent(
        name, kind, config, max_concurrency=max_concurrency, timeout=timeout,
        max_attempts=max_attempts, zombie_timeout=zombie_timeout, retry_backoff=retry_backoff,
        description=description, source="cli",
    )
    saved = svc.add_agent(spec)
    if as_json:
        emit_json(agent_json(saved))
    else:
        say(f"agent {saved.name} saved ({saved.kind.value})")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List agents."""
    agents = services(ctx).store.list_agents()
    if as_json:
        emit_json([agent_json(a) for a in agents])
    else:
        print_agents(agents)


@app.command("rm")
def rm(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Agent name.")],
) -> None:
    """Remove an agent and its triggers; its queued runs are cancelled, history is kept."""
    cancelled = services(ctx).remove_agent(name)
    suffix = f"; {cancelled} queued run(s) cancelled" if cancelled else ""
    say(f"agent {name} removed{suffix}")
