"""A node turns a succeeded attempt's follow-up requests into rows on its outcome through the
injected builder (``engine/follow_ups.py``), on both backends; without one it refuses them.
The last test needs ``Store.finish`` to write the rows (issue 13, part A)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from agentcron.engine.follow_ups import NO_SUPPORT
from agentcron.engine.node import Node
from agentcron.executors import Executors
from agentcron.executors.follow_ups import NOT_SUCCEEDED
from agentcron.models import FollowUp, Outcome, RunStatus
from agentcron.services import Services
from agentcron.store import FinishResult, Store
from tests.support.helpers import await_until
from tests.support.nodes import agent_runs, node_settings, python_agent

AGENTS = "tests.support.follow_up_agents"


def _outcomes(store: Store, agent: str, **kwargs: Any) -> list[Outcome]:
    return asyncio.run(_outcomes_of(store, agent, **kwargs))


async def _outcomes_of(store: Store, agent: str, *, with_builder: bool = True,
                       runs: int = 1) -> list[Outcome]:
    """Fire ``agent`` ``runs`` times on a real node and return the outcomes it wrote."""
    follow_ups = Services(store).follow_ups.for_run if with_builder else None
    node = Node(store, node_settings(store), Executors(),
                **({"follow_ups": follow_ups} if follow_ups else {}))
    written: list[Outcome] = []
    on_written = node.completions.on_written

    def seen(outcomes: list[Outcome], result: FinishResult) -> None:
        written.extend(outcomes)
        on_written(outcomes, result)

    node.completions.on_written = seen
    await node.start()
    try:
        for _ in range(runs):
            Services(store).fire(agent)
        await await_until(lambda: len(written) >= runs, 20.0, "outcomes written")
    finally:
        await node.drain()
    return written


def test_a_succeeded_runs_requests_become_rows(store: Store) -> None:
    python_agent(store, "watcher", f"{AGENTS}:check_again")
    before = datetime.now(UTC)
    [outcome] = _outcomes(store, "watcher")
    assert outcome.status is RunStatus.SUCCEEDED
    [follow_up] = outcome.follow_ups
    assert follow_up.refused is None and follow_up.row is not None
    row = follow_up.row
    assert (row["agent"], row["kind"], row["source"], row["payload"]) == (
        "watcher", "once", "run", {"check": 1})
    assert before + timedelta(hours=2) <= row["next_fire_at"] <= datetime.now(UTC) + \
        timedelta(hours=2)


def test_invalid_requests_are_refused_on_the_outcome_not_failing_it(
        store: Store) -> None:
    python_agent(store, "watcher", f"{AGENTS}:schedule_bad_cron")
    [outcome] = _outcomes(store, "watcher")
    assert outcome.status is RunStatus.SUCCEEDED
    bad, good = outcome.follow_ups
    assert bad.refused is not None and bad.refused.startswith("schedule[0].cron: ")
    assert good.row is not None


def test_a_failed_attempt_schedules_nothing(store: Store) -> None:
    python_agent(store, "watcher", f"{AGENTS}:schedule_then_fail", max_attempts=1)
    [outcome] = _outcomes(store, "watcher")
    assert outcome.status is RunStatus.FAILED
    assert outcome.follow_ups == (
        FollowUp(refused=f"schedule: 1 follow-up not created: {NOT_SUCCEEDED}"),)


def test_a_node_without_the_builder_refuses_them(store: Store) -> None:
    python_agent(store, "watcher", f"{AGENTS}:check_again")
    [outcome] = _outcomes(store, "watcher", with_builder=False)
    assert outcome.follow_ups == (
        FollowUp(refused=f"schedule: 1 follow-up not created: {NO_SUPPORT}"),)


def test_runs_that_ask_for_nothing_never_call_the_builder(store: Store) -> None:
    python_agent(store, "plain", "agentcron.examples:noop")
    calls: list[Any] = []

    def builder(*args: Any) -> tuple[FollowUp, ...]:
        calls.append(args)
        return ()

    async def main() -> None:
        node = Node(store, node_settings(store), Executors(), follow_ups=builder)
        await node.start()
        try:
            for _ in range(5):
                Services(store).fire("plain")
            await await_until(
                lambda: sum(r.status is RunStatus.SUCCEEDED
                            for r in agent_runs(store, "plain")) == 5, 20.0, "runs done")
        finally:
            await node.drain()

    asyncio.run(main())
    assert calls == []


def test_the_follow_up_trigger_exists_after_the_run(store: Store) -> None:
    """End to end: ``Store.finish`` writes ``Outcome.follow_ups`` in the outcome's own
    transaction, so the trigger exists once the run has succeeded."""
    python_agent(store, "watcher", f"{AGENTS}:check_again")
    [outcome] = _outcomes(store, "watcher")
    assert outcome.status is RunStatus.SUCCEEDED
    made = [t for t in store.list_triggers("watcher") if t.source == "run"]
    assert len(made) == 1, made
    trigger = made[0]
    assert trigger.payload == {"check": 1}
    assert getattr(trigger, "created_by", None) == f"run:{outcome.run_id}"
