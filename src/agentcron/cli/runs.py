"""``agentcron runs``: list, show, cancel, retry; and ``agentcron fire``."""

from __future__ import annotations

from typing import Annotated

import typer

from agentcron.cli.common import services
from agentcron.cli.render import emit_json, print_run, print_runs, run_detail_json, run_json, say

app = typer.Typer(help="Runs: the history of every firing.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
RunId = Annotated[str, typer.Argument(metavar="RUN_ID", help="Run id.")]


@app.command("list")
def list_(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    trigger: Annotated[str | None, typer.Option(
        "--trigger", help="Only this trigger's.")] = None,
    status: Annotated[str | None, typer.Option(
        "--status", metavar="STATUS",
        help="queued|running|succeeded|failed|cancelled|skipped")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 20,
    before: Annotated[str | None, typer.Option(
        "--before", metavar="RUN_ID",
        help="Only runs older than this one (page with the last id shown).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first."""
    runs = services(ctx).list_runs(agent=agent, trigger_id=trigger, status=status,
                                   limit=limit, before=before).runs
    if as_json:
        emit_json([run_json(r, preview=True) for r in runs])
    else:
        print_runs(runs)


@app.command("show")
def show(ctx: typer.Context, run_id: RunId, as_json: JsonFlag = False) -> None:
    """Show a run and its events."""
    run, events = services(ctx).get_run(run_id)
    if as_json:
        emit_json(run_detail_json(run, events))
    else:
        print_run(run, events)


@app.command("cancel")
def cancel(ctx: typer.Context, run_id: RunId) -> None:
    """Cancel a queued or running run."""
    was = services(ctx).cancel_run(run_id)
    say(f"run {run_id} cancelled (was {was.value})")


@app.command("retry")
def retry(ctx: typer.Context, run_id: RunId) -> None:
    """Run a finished run again (a succeeded run keeps its output: a new run is queued)."""
    queued = services(ctx).retry_run(run_id)
    if queued == run_id:
        say(f"run {run_id} queued again")
    else:
        say(f"run {run_id} succeeded and keeps its output; queued new run {queued} "
            f"(retry of {run_id})")


def fire(
    ctx: typer.Context,
    agent: Annotated[str, typer.Argument(metavar="AGENT", help="The agent to run now.")],
    payload: Annotated[str | None, typer.Option(
        "--payload", metavar="JSON", help="JSON passed to the run.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a run of an agent now; prints the run id."""
    run_id = services(ctx).fire(agent, payload, payload_is_json_text=True)
    if as_json:
        emit_json({"id": run_id, "agent": agent})
    else:
        say(run_id)
