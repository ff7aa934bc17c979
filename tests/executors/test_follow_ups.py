"""Follow-up capture: ``ctx.schedule``, an http answer's ``"schedule"``, a command's
``::agentcron:schedule`` lines. Real functions, a real HTTP server, real child processes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentcron.executors import AgentRegistry, RunContext
from agentcron.executors.command import CommandExecutor
from agentcron.executors.follow_ups import (
    NOT_SUCCEEDED,
    refused_all,
    requests_of,
    split_directives,
)
from agentcron.executors.http import HttpExecutor
from agentcron.executors.python import PythonExecutor
from agentcron.models import AgentKind, AgentSpec, ClaimedRun, ExecutionResult, FollowUp
from agentcron.rules.ids import new_run_id
from agentcron.rules.scheduling import MAX_FOLLOW_UPS
from tests.support.http_target import Server, json_route
from tests.support.http_target import make_run as http_run

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def make_run(kind: AgentKind, config: dict[str, Any]) -> ClaimedRun:
    now = datetime.now(UTC)
    return ClaimedRun(run_id=new_run_id(), lease=1, attempt=1,
                      agent=AgentSpec(name="watcher", kind=kind, config=config),
                      trigger_id="tr_x", scheduled_for=now, started_at=now,
                      deadline_at=now + timedelta(seconds=60))


def ctx_at(now: datetime = NOW) -> RunContext:
    return RunContext(make_run(AgentKind.PYTHON, {"target": "job"}), clock=lambda: now)


# -- ctx.schedule ---------------------------------------------------------------------------


def test_schedule_collects_plain_requests_with_in_turned_into_at() -> None:
    ctx = ctx_at()
    ctx.schedule(in_="20m", payload={"pr": 7})
    ctx.schedule(cron="0 9 * * 1", tz="Europe/Paris", name="monday", agent="other")
    ctx.schedule(every=3600)
    ctx.schedule(at=datetime(2026, 5, 2, 12, 0, tzinfo=UTC))
    ctx.schedule(at="2026-05-03T08:00:00+02:00")
    assert ctx.follow_ups == (
        {"at": "2026-05-01T09:20:00+00:00", "payload": {"pr": 7}},
        {"agent": "other", "cron": "0 9 * * 1", "tz": "Europe/Paris", "name": "monday"},
        {"every": 3600},
        {"at": "2026-05-02T12:00:00+00:00"},
        {"at": "2026-05-03T08:00:00+02:00"},
    )


@pytest.mark.parametrize(("kwargs", "message"), [
    ({}, "exactly one of at=, in_=, cron= or every=, got none"),
    ({"in_": "5m", "cron": "* * * * *"}, "got in_= and cron="),
    ({"at": datetime(2026, 5, 2), }, "at must be timezone-aware"),
    ({"in_": "5"}, "in_"),  # a unit is required
    ({"in_": "soon"}, "in_"),
    ({"in_": True}, "in_ must be a duration"),
    ({"cron": 5}, "cron must be a string"),
    ({"every": [1]}, "every must be a duration"),
    ({"in_": "5m", "payload": {"x": object()}}, "payload must be JSON"),
    ({"in_": "5m", "payload": float("nan")}, "payload must be JSON"),
    ({"in_": "5m", "name": 3}, "name must be a string"),
])
def test_schedule_refuses_calls_that_can_never_be_valid(kwargs: dict[str, Any],
                                                         message: str) -> None:
    ctx = ctx_at()
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ctx.schedule(**kwargs)
    assert ctx.follow_ups == ()


def test_schedule_is_capped_per_run() -> None:
    ctx = ctx_at()
    for _ in range(MAX_FOLLOW_UPS):
        ctx.schedule(in_="1h")
    with pytest.raises(ValueError, match=f"at most {MAX_FOLLOW_UPS} follow-ups"):
        ctx.schedule(in_="1h")
    assert len(ctx.follow_ups) == MAX_FOLLOW_UPS


@pytest.fixture
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(2) as p:
        yield p


@pytest.mark.parametrize("fails", [False, True])
def test_python_agents_results_carry_their_requests(
        pool: concurrent.futures.ThreadPoolExecutor, fails: bool) -> None:
    registry = AgentRegistry()

    def job(ctx: RunContext) -> str:
        ctx.schedule(in_="10m", payload={"n": 1})
        if fails:
            raise RuntimeError("boom")
        return "checked"

    registry.register("job", job)

    async def main() -> ExecutionResult:
        run = make_run(AgentKind.PYTHON, {"target": "job"})
        return await PythonExecutor(registry, pool).execute(run, RunContext(run))

    result = asyncio.run(main())
    assert result.ok is not fails
    [asked] = result.schedule
    assert asked["payload"] == {"n": 1} and set(asked) == {"at", "payload"}


def test_refused_all_is_one_refusal_naming_the_count() -> None:
    assert refused_all((), NOT_SUCCEEDED) == ()
    assert refused_all([{}, {}], "why") == (
        FollowUp(refused="schedule: 2 follow-ups not created: why"),)


# -- answers ---------------------------------------------------------------------------------


def test_requests_of_an_answer() -> None:
    assert requests_of(None, NOW) == ()
    assert requests_of({"in": "1h"}, NOW) == ({"at": "2026-05-01T10:00:00+00:00"},)
    # Bad items are kept as given for the validator to refuse (and name).
    assert requests_of([{"in": "nope"}, "x", 3], NOW) == ({"in": "nope"}, "x", 3)
    many = requests_of([{"every": "1h"}] * 500, NOW)
    assert len(many) == MAX_FOLLOW_UPS + 1  # one past the cap: "the rest were dropped"


def test_http_answer_schedule_is_captured_and_output_kept(server: Server) -> None:
    server.routes["/agent"] = json_route(
        {"output": "deploy not done", "schedule": [{"in": "20m", "payload": {"id": 4}},
                                                   "not an object"]})

    async def main() -> ExecutionResult:
        run = http_run({"url": server.url("/agent")})
        executor = HttpExecutor(clock=lambda: NOW)
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await executor.aclose()

    result = asyncio.run(main())
    assert result.ok and result.output == "deploy not done"
    assert result.schedule == ({"at": "2026-05-01T09:20:00+00:00", "payload": {"id": 4}},
                               "not an object")


def test_http_answer_with_only_schedule_keeps_the_text_as_output(server: Server) -> None:
    server.routes["/agent"] = json_route({"schedule": {"cron": "0 * * * *"}})

    async def main() -> ExecutionResult:
        run = http_run({"url": server.url("/agent")})
        executor = HttpExecutor(clock=lambda: NOW)
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await executor.aclose()

    result = asyncio.run(main())
    assert result.ok and result.output == '{"schedule": {"cron": "0 * * * *"}}'
    assert result.schedule == ({"cron": "0 * * * *"},)


# -- commands --------------------------------------------------------------------------------


def test_split_directives() -> None:
    text = ('checking\n::agentcron:schedule {"in": "1h"}\n  ::agentcron:schedule {bad\n'
            "done\n")
    kept, found = split_directives(text, NOW)
    assert kept == "checking\ndone\n"
    assert found == ({"at": "2026-05-01T10:00:00+00:00"}, "{bad")
    assert split_directives("plain\n", NOW) == ("plain\n", ())


def run_command(script: str, exit_code: int = 0) -> ExecutionResult:
    async def main() -> ExecutionResult:
        run = make_run(AgentKind.COMMAND,
                       {"argv": [sys.executable, "-c", script + f"\nraise SystemExit({exit_code})"]})
        executor = CommandExecutor()
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await executor.aclose()

    return asyncio.run(main())


def test_command_directive_lines_are_requests_not_output() -> None:
    result = run_command(
        "print('still building')\n"
        "print('::agentcron:schedule {\"in\": \"15m\", \"payload\": {\"build\": 9}}')\n"
        "print('::agentcron:schedule {\"cron\": \"0 9 * * *\", \"tz\": \"UTC\"}')\n")
    assert result.ok and result.output == "still building\n"
    first, second = result.schedule
    assert set(first) == {"at", "payload"} and first["payload"] == {"build": 9}
    assert second == {"cron": "0 9 * * *", "tz": "UTC"}


def test_command_json_answer_schedule_and_directives_together() -> None:
    result = run_command(
        "print('::agentcron:schedule {\"every\": \"1h\"}')\n"
        "import json; print(json.dumps({'output': 'ok', 'schedule': [{'every': '2h'}]}))\n")
    assert result.ok and result.output == "ok"
    assert result.schedule == ({"every": "1h"}, {"every": "2h"})


def test_a_failed_command_keeps_no_follow_ups() -> None:
    result = run_command("print('::agentcron:schedule {\"every\": \"1h\"}')", exit_code=3)
    assert not result.ok and result.schedule == ()
