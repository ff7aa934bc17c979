"""``agentcron runs``: list, show (and follow), cancel, retry; and ``agentcron fire`` (and
wait).

Following a run (``runs show --follow``, ``fire --wait``) polls its document until it has
finished. Exit codes then say how it ended, for scripts: 0 succeeded; 1 failed, cancelled
or skipped (the error or reason on stderr); 124 the ``--timeout`` passed first (the run
goes on; like ``timeout(1)``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from agentcron.cli.common import EXIT_FAILURE, services
from agentcron.cli.render import (
    emit_json,
    human_time,
    print_run,
    print_runs,
    run_detail_json,
    run_json,
    say,
)
from agentcron.errors import ValidationError
from agentcron.models import Run, RunStatus
from agentcron.schedule.durations import format_duration, parse_duration

if TYPE_CHECKING:
    from agentcron.services import Services

EXIT_TIMEOUT = 124
"""``--wait``/``--follow`` gave up before the run finished (the run itself goes on)."""
FOLLOW_POLL_S = 0.25
"""How often a follower reads the run again."""

app = typer.Typer(help="Runs: the history of every firing.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
RunId = Annotated[str, typer.Argument(
    metavar="RUN_ID", help="Run id, or a unique prefix of it (at least 4 characters).")]


@app.command("list")
def list_(
    ctx: typer.Context,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's.")] = None,
    trigger: Annotated[str | None, typer.Option(
        "--trigger", metavar="TRIGGER",
        help="Only this trigger's (its id, or its name when no other trigger has it).")
    ] = None,
    status: Annotated[str | None, typer.Option(
        "--status", metavar="STATUS",
        help="queued|running|succeeded|failed|cancelled|skipped")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.")] = 20,
    before: Annotated[str | None, typer.Option(
        "--before", metavar="RUN_ID",
        help="Only runs older than this one (page with the last id shown).")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", metavar="KEY", help="Only runs with this concurrency key (a tenant).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List runs, newest first."""
    svc = services(ctx)
    trigger_id = svc.triggers.resolve(trigger) if trigger is not None else None
    runs = svc.list_runs(agent=agent, trigger_id=trigger_id, status=status,
                         limit=limit, before=before, key=key).runs
    if as_json:
        emit_json([run_json(r, preview=True) for r in runs])
    else:
        print_runs(runs)


TimeoutOpt = Annotated[str | None, typer.Option(
    "--timeout", metavar="DURATION",
    help="Give up waiting after this long (e.g. 10m) with exit code 124; the run goes on.")]


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: RunId,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f",
        help="Print the run's status and progress as they change until it ends, then its "
             "output; exit 0 if it succeeded, 1 if not.")] = False,
    timeout: TimeoutOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Show a run and its events (or follow it to its end)."""
    svc = services(ctx)
    limit = _timeout_s(timeout, follow, "--follow")
    if follow:
        run = _follow(svc, run_id, limit, lambda line: typer.echo(
            line, err=as_json))  # with --json, stdout is kept for the document
        _finish(svc, run, as_json, limit)
        return
    run, events = svc.get_run(run_id)
    if as_json:
        emit_json(run_detail_json(run, events))
    else:
        print_run(run, events)


@app.command("cancel")
def cancel(ctx: typer.Context, run_id: RunId) -> None:
    """Cancel a queued or running run."""
    svc = services(ctx)
    found = svc.runs.resolve(run_id)
    was = svc.cancel_run(found)
    say(f"run {found} cancelled (was {was.value})")


@app.command("retry")
def retry(ctx: typer.Context, run_id: RunId) -> None:
    """Run a finished run again (a succeeded run keeps its output: a new run is queued)."""
    svc = services(ctx)
    run_id = svc.runs.resolve(run_id)  # a prefix names the run: say its whole id
    queued = svc.retry_run(run_id)
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
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait for the run to end (a node must be running) and print its "
                       "output; exit 0 if it succeeded, 1 if not, 124 on --timeout.")] = False,
    timeout: TimeoutOpt = None,
    as_json: JsonFlag = False,
) -> None:
    """Queue a run of an agent now; prints the run id (or, with --wait, its output)."""
    svc = services(ctx)
    limit = _timeout_s(timeout, wait, "--wait")  # checked before anything is queued
    run_id = svc.fire(agent, payload, payload_is_json_text=True)
    if not wait:
        if as_json:
            emit_json({"id": run_id, "agent": agent})
        else:
            say(run_id)
        return
    typer.echo(f"run {run_id} queued; waiting for it to end", err=True)
    run = _follow(svc, run_id, limit, lambda line: None)
    _finish(svc, run, as_json, limit)


# -- following a run ----------------------------------------------------------------------


def _timeout_s(value: str | None, waiting: bool, flag: str) -> float | None:
    if value is None:
        return None
    if not waiting:
        raise ValidationError("timeout", f"only applies with {flag}",
                              f"add {flag}, or leave --timeout out")
    return parse_duration(value, "timeout")


def _follow(svc: Services, run_id: str, timeout_s: float | None,
            echo: Callable[[str], None]) -> Run:
    """Read the run until it has finished or ``timeout_s`` has passed; ``echo`` each change
    of status, attempt or progress as a line. Returns the run as last read."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    seen: tuple[object, ...] = ()
    while True:
        run, _ = svc.get_run(run_id)
        state = (run.status, run.attempt, run.progress)
        if state != seen:
            echo(_change_line(run, seen))
            seen = state
        if run.status.terminal or (deadline is not None and time.monotonic() >= deadline):
            return run
        time.sleep(FOLLOW_POLL_S)  # polling the database: there is no event to wait on


def _change_line(run: Run, seen: tuple[object, ...]) -> str:
    at = human_time(run.finished_at or run.started_at or run.queued_at)
    if seen and run.progress != seen[2] and run.status is seen[0] and run.attempt == seen[1]:
        return f"{at}  progress: {run.progress or '-'}"
    where = f" on {run.node_id}" if run.node_id and run.status is RunStatus.RUNNING else ""
    line = f"{at}  {run.status.value} (attempt {run.attempt}{where})"
    if run.progress and run.status is RunStatus.RUNNING:
        line += f"  progress: {run.progress}"
    return line


def _finish(svc: Services, run: Run, as_json: bool, timeout_s: float | None) -> None:
    """Print how the followed run ended and exit with the code that says so."""
    if not run.status.terminal:
        limit = format_duration(timeout_s or 0)
        typer.echo(f"error: run {run.id} is still {run.status.value} after {limit}; it goes "
                   f"on (agentcron runs show {run.id} --follow)", err=True)
        raise typer.Exit(EXIT_TIMEOUT)
    if as_json:
        emit_json(run_detail_json(*svc.get_run(run.id)))
    elif run.output is not None:
        sys.stdout.write(run.output if run.output.endswith("\n") else run.output + "\n")
    if run.stderr and not as_json:
        sys.stderr.write(run.stderr if run.stderr.endswith("\n") else run.stderr + "\n")
    if run.status is RunStatus.SUCCEEDED:
        return
    why = run.error or run.reason or "no error recorded"
    typer.echo(f"error: run {run.id} {run.status.value}: {why}", err=True)
    raise typer.Exit(EXIT_FAILURE)
