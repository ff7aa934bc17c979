"""``agentcron worker``: the reference remote worker, started from the command line."""

from __future__ import annotations

from typing import Annotated

import typer

from agentcron.schedule.durations import parse_duration


def worker(
    url: Annotated[str, typer.Option(
        "--url", envvar="AGENTCRON_URL", metavar="URL",
        help="The API root of any node, e.g. http://agentcron:8080 (AGENTCRON_URL).")],
    token: Annotated[str, typer.Option(
        "--token", envvar="AGENTCRON_TOKEN", metavar="TOKEN",
        help="A worker token for the agent (agentcron tokens create NAME --scope worker "
             "--agents AGENT); better given as AGENTCRON_TOKEN than on the command line.")],
    agent: Annotated[str, typer.Option(
        "--agent", metavar="NAME", help="The remote agent whose runs to pull.")],
    python: Annotated[str | None, typer.Option(
        "--python", metavar="MODULE:FUNC", help="Run each run by calling this function "
        "(with a RunContext, or nothing), imported from here or PYTHONPATH.")] = None,
    command: Annotated[str | None, typer.Option(
        "--command", metavar="CMD", help="Run each run as this command (payload as JSON on "
        "stdin and in AGENTCRON_PAYLOAD; exit 0 is success, stdout the output).")] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", help="Runs this worker executes at once.")] = 1,
    worker_id: Annotated[str | None, typer.Option(
        "--worker-id", metavar="ID", help="This worker's stable id (default "
        "host-pid-random); its runs show node worker:ID.")] = None,
    heartbeat_interval: Annotated[str, typer.Option(
        "--heartbeat-interval", metavar="DURATION", help="One heartbeat for all runs held "
        "this often; at most a third of the agent's zombie timeout.")] = "5s",
    wait: Annotated[str, typer.Option(
        "--wait", metavar="DURATION", help="How long one claim waits for a run (long poll, "
        "at most 60s).")] = "20s",
    drain_timeout: Annotated[str, typer.Option(
        "--drain-timeout", metavar="DURATION", help="On SIGTERM, how long runs held may "
        "finish before the rest are stopped and handed back.")] = "30s",
) -> None:
    """Pull runs of a remote agent over HTTP and run them here; drain on SIGTERM."""
    from agentcron.logs import configure_logging
    from agentcron.worker import Worker, WorkerSettings

    # As ``serve`` does: AGENTCRON_LOG_LEVEL is honoured (a line per run at info costs a
    # busy worker more than its runs), JSON lines when stderr is not a terminal.
    configure_logging()
    settings = WorkerSettings(
        url=url, token=token, agent=agent, python=python, command=command,
        concurrency=concurrency, worker_id=worker_id,
        heartbeat_interval_s=parse_duration(heartbeat_interval, "heartbeat-interval"),
        wait_s=parse_duration(wait, "wait", allow_zero=True),
        drain_timeout_s=parse_duration(drain_timeout, "drain-timeout", allow_zero=True),
    )
    raise typer.Exit(Worker(settings).run_forever())
