"""``agentcron tokens``: create, list, revoke API tokens.

A token is printed once, by ``create``; only its hash is stored, so a lost token cannot be
shown again: revoke it and create another.
"""

from __future__ import annotations

from typing import Annotated

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, iso, print_table, say

app = typer.Typer(help="API tokens for the HTTP API and the dashboard.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A name for the token.")],
    scope: Annotated[str, typer.Option(
        "--scope", metavar="read|write|admin|worker|schedule",
        help="read: GET only; write: also fire, pause, resume, cancel, retry and change "
             "triggers; admin: also agents; worker: only claim, beat, complete and release "
             "runs of the --agents; schedule: MCP only (agentcron mcp, /mcp), optionally "
             "limited to --agents.")] = "read",
    agents: Annotated[str | None, typer.Option(
        "--agents", metavar="A,B",
        help="A worker token's agents, comma-separated: the only runs it may touch; a "
             "schedule token's (optional): the only agents it may see and schedule.")] = None,
    max_live: Annotated[int | None, typer.Option(
        "--max-live", metavar="N",
        help="A cap on the live triggers made through this token over MCP, across every "
             "agent (each agent's own max_live still holds); schedule, write or admin "
             "tokens.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a token and print it (the only time it is shown)."""
    names = None if agents is None else [a for a in agents.split(",") if a.strip()]
    token, value = services(ctx).access.create_token(name, scope, agents=names,
                                                     max_live=max_live)
    if as_json:
        emit_json({"name": token.name, "scope": token.scope, "token": value,
                   **({"agents": token.agents} if token.agents is not None else {}),
                   **({"max_live": token.max_live} if token.max_live is not None else {})})
        return
    say(value)
    typer.echo(f"token {token.name!r} ({token.scope}) created; it is shown only this once. "
               f"Use it as 'Authorization: Bearer <token>'.", err=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List tokens (names, scopes and last use; never the tokens themselves)."""
    tokens = services(ctx).access.list_tokens()
    if as_json:
        emit_json([{"name": t.name, "scope": t.scope, "agents": t.agents,
                    "max_live": t.max_live, "created_at": iso(t.created_at),
                    "last_used_at": iso(t.last_used_at)}
                   for t in tokens])
    elif not tokens:
        say("no tokens")
    else:
        print_table(None, ["NAME", "SCOPE", "AGENTS", "MAX LIVE", "CREATED", "LAST USED"],
                    ([t.name, t.scope, ",".join(t.agents or []) or "-",
                      "-" if t.max_live is None else t.max_live, t.created_at,
                      t.last_used_at] for t in tokens))


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The token's name.")],
) -> None:
    """Revoke a token at once (its dashboard sessions end too)."""
    services(ctx).access.revoke_token(name)
    say(f"token {name} revoked")
