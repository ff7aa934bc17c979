"""The ``agentcron`` command line: a thin layer over ``Services`` and the ``Store``.

::

    agentcron [--db URL] db upgrade
    agentcron --version
    agentcron agents   add | list | show | rm | check FILE
    agentcron triggers add | list | show | next | update | pause | resume | backfill | rm |
                       rotate-secret
    agentcron apply FILE [--dry-run]
    agentcron runs     list | show | cancel | retry
    agentcron fire AGENT
    agentcron costs    [--by agent|trigger|model|day] [--since DATE]
    agentcron prices   set | list | rm
    agentcron tokens   create | list | revoke
    agentcron nodes    list
    agentcron serve
    agentcron worker --url URL --token T --agent NAME (--python MODULE:FUNC | --command CMD)
    agentcron mcp   (MCP tools over stdio, as the token in AGENTCRON_TOKEN)

Every rule about valid input lives in ``agentcron.services`` (and the packages it calls);
this module only turns options into calls and results into text or JSON. Errors become
``error: ...`` on stderr in one place (``cli.common.AgentcronGroup``): bad input exits 2,
anything else agentcron reports exits 1, never with a traceback. Heavy modules (the store,
the node runner) are imported when a command needs them, so ``--help`` is quick.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentcron.cli import agents as cli_agents
from agentcron.cli import alerts as cli_alerts
from agentcron.cli import apply as cli_apply
from agentcron.cli import costs as cli_costs
from agentcron.cli import mcp as cli_mcp
from agentcron.cli import nodes as cli_nodes
from agentcron.cli import pools as cli_pools
from agentcron.cli import runs as cli_runs
from agentcron.cli import secrets as cli_secrets
from agentcron.cli import tokens as cli_tokens
from agentcron.cli import triggers as cli_triggers
from agentcron.cli import worker as cli_worker
from agentcron.cli import workers as cli_workers
from agentcron.cli.common import AgentcronGroup, CliState, hide_password, services
from agentcron.cli.render import say
from agentcron.engine.settings import DEFAULT_DATABASE_URL

app = typer.Typer(
    name="agentcron",
    cls=AgentcronGroup,
    help="agentcron: a durable, distributed scheduler for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)

app.add_typer(db_app, name="db")
app.add_typer(cli_agents.app, name="agents")
app.add_typer(cli_triggers.app, name="triggers")
app.add_typer(cli_runs.app, name="runs")
app.add_typer(cli_tokens.app, name="tokens")
app.add_typer(cli_workers.app, name="workers")
app.add_typer(cli_nodes.app, name="nodes")
app.add_typer(cli_secrets.app, name="secrets")
app.add_typer(cli_pools.app, name="pools")
app.command("fire")(cli_runs.fire)
app.add_typer(cli_costs.app, name="prices")
app.command("costs")(cli_costs.costs)
app.add_typer(cli_alerts.app, name="alerts")
app.command("apply")(cli_apply.apply)
app.command("worker")(cli_worker.worker)
app.command("mcp")(cli_mcp.mcp)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        say(f"agentcron {version('agentcron')}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[str, typer.Option(
        "--db", metavar="URL", envvar="AGENTCRON_DATABASE_URL",
        help="Database: sqlite:///FILE (one node) or postgresql://... (many nodes).",
    )] = DEFAULT_DATABASE_URL,
    _version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=_print_version,
        help="Print agentcron's version and exit.")] = False,
) -> None:
    """agentcron: a durable, distributed scheduler for AI agents."""
    state = CliState(db_url=db)
    ctx.obj = state
    ctx.call_on_close(state.close)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or upgrade the schema to this version's (safe to run on every deploy)."""
    opened = services(ctx, prepare=False)
    before, after = opened.upgrade_schema()
    url = hide_password(opened.database_url)
    if before == after:
        say(f"{url}: already at revision {after}")
    else:
        say(f"{url}: upgraded from {before or 'an empty database'} to revision {after}")


@app.command("serve")
def serve(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", help="Agents file (TOML), synced on start.")] = None,
    no_api: Annotated[bool, typer.Option(
        "--no-api", help="Do not serve the HTTP API and dashboard.")] = False,
    node_id: Annotated[str | None, typer.Option(
        "--node-id", help="This node's id (default host-pid-random).")] = None,
    zombie_timeout: Annotated[str | None, typer.Option(
        "--zombie-timeout", metavar="DURATION",
        help="Heartbeat silence after which a node's runs are recovered (default 60s).")] = None,
    drain_timeout: Annotated[str | None, typer.Option(
        "--drain-timeout", metavar="DURATION",
        help="How long a stopping node lets runs finish (default 30s).")] = None,
    heartbeat_interval: Annotated[str | None, typer.Option(
        "--heartbeat-interval", metavar="DURATION", help="Default 5s.")] = None,
    poll_interval: Annotated[str | None, typer.Option(
        "--poll-interval", metavar="DURATION", help="Default 1s.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="API host (default 127.0.0.1).")
                    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="API port (default 8080).")] = None,
    max_inflight: Annotated[int | None, typer.Option(
        "--max-inflight", help="Runs this node executes at once (default 2000).")] = None,
    fire_lookahead: Annotated[str | None, typer.Option(
        "--fire-lookahead", metavar="DURATION",
        help="Fire and claim overlap-allow triggers this long before their time, to start "
             "them on time (default 500ms; 0 turns it off).")] = None,
    metrics_public: Annotated[bool | None, typer.Option(
        "--metrics-public/--metrics-private",
        help="Serve /metrics without a token (default: a read token is needed; "
             "AGENTCRON_METRICS_PUBLIC=1).")] = None,
    api_docs: Annotated[bool | None, typer.Option(
        "--api-docs/--no-api-docs",
        help="Serve the interactive API docs (Swagger UI, served by the node) at /docs "
             "(default off; AGENTCRON_API_DOCS=1).")] = None,
    webhook_max_bytes: Annotated[int | None, typer.Option(
        "--webhook-max-bytes", help="Largest webhook body accepted (default 262144).")
    ] = None,
    max_body_bytes: Annotated[int | None, typer.Option(
        "--max-body-bytes", help="Largest API request body accepted, counted as it arrives "
        "(default 1048576; AGENTCRON_MAX_BODY_BYTES).")] = None,
    agents: Annotated[str | None, typer.Option(
        "--agents", metavar="A,B", help="Run only these agents (and those --tags match); "
        "other nodes leave their runs queued (AGENTCRON_AGENTS).")] = None,
    tags: Annotated[str | None, typer.Option(
        "--tags", metavar="T,U", help="Run only agents with one of these tags (and those "
        "--agents names). A node given neither runs every agent without tags "
        "(AGENTCRON_TAGS).")] = None,
) -> None:
    """Run a node: fire triggers, execute runs, recover lost ones; drain on SIGTERM."""
    from agentcron.engine.settings import settings_from_env

    state = ctx.find_root().obj
    assert isinstance(state, CliState)
    settings = settings_from_env().with_overrides(
        database_url=state.db_url,
        node_id=node_id,
        zombie_timeout_s=zombie_timeout,
        drain_timeout_s=drain_timeout,
        heartbeat_interval_s=heartbeat_interval,
        poll_interval_s=poll_interval,
        api=False if no_api else None,
        host=host,
        port=port,
        max_inflight=max_inflight,
        fire_lookahead_s=fire_lookahead,
        metrics_public=metrics_public,
        api_docs=api_docs,
        webhook_max_bytes=webhook_max_bytes,
        max_body_bytes=max_body_bytes,
        agents=agents,
        tags=tags,
    ).validate()
    from agentcron.server import run_node

    code = run_node(settings, config)
    raise typer.Exit(code)


def main() -> None:
    """The ``agentcron`` console script."""
    app(prog_name="agentcron")
