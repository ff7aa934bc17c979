"""Firing ahead (``fire_lookahead_s``): ``allow``-overlap triggers are fired and claimed
before their time, and their runs start at it, never before. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from agentcron.agents import Executors
from agentcron.engine.clock import StoreTimeline
from agentcron.engine.node import Node
from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.settings import NodeSettings
from agentcron.store import RunFilter, Store
from tests.conftest import T0
from tests.helpers import add_agent, add_trigger, runs_of

AHEAD = timedelta(milliseconds=300)


def test_an_allow_trigger_is_fired_and_claimed_ahead_for_its_time(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    trigger = add_trigger(store, T0, every="10s", overlap="allow")
    due_at = trigger.next_fire_at
    assert due_at is not None
    now = due_at - AHEAD

    result = store.fire_due(now, 100, ("n1", 10), lookahead_s=0.5)

    [claimed] = result.claimed
    assert claimed.scheduled_for == due_at
    assert claimed.start_at == due_at and claimed.started_at == due_at
    assert claimed.deadline_at == due_at + timedelta(seconds=claimed.agent.timeout_s)
    [run] = runs_of(store, trigger.id)
    assert (run.status, run.node_id, run.started_at) == (RunStatus.RUNNING, "n1", due_at)
    assert run.queued_at == now
    assert store.get_trigger(trigger.id).next_fire_at == due_at + timedelta(seconds=10)
    assert result.fire_lags == [0.0]  # never reported as negative


def test_other_overlap_policies_wait_until_due(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    triggers = [add_trigger(store, T0, every="10s", overlap=policy)
                for policy in ("skip", "queue", "replace")]
    due_at = triggers[0].next_fire_at
    assert due_at is not None

    result = store.fire_due(due_at - AHEAD, 100, ("n1", 10), lookahead_s=0.5)

    assert (result.triggers, result.claimed) == (0, [])
    assert runs_of(store) == []
    assert all(store.get_trigger(t.id).next_fire_at == due_at for t in triggers)


def test_a_run_that_cannot_be_claimed_ahead_is_not_written(store: Store) -> None:
    """No free slot for the agent: the trigger is left as it was, to fire when due, and
    the batch is not "full" (firing again at once would select it again)."""
    add_agent(store, now=T0, max_concurrency=1)
    busy = add_trigger(store, T0, every="1s", overlap="allow")
    assert busy.next_fire_at is not None
    now = busy.next_fire_at
    at = now + timedelta(milliseconds=500)
    ahead = add_trigger(store, T0, at=at.isoformat(), overlap="allow")
    assert ahead.next_fire_at == at
    store.fire_due(now, 100, ("n1", 10))  # busy's run takes the agent's only slot
    before = len(runs_of(store))

    result = store.fire_due(now, 1, ("n1", 10), lookahead_s=ahead.next_fire_at.timestamp()
                            - now.timestamp() + 0.1)

    assert result.claimed == [] and result.left_for_later == 1 and not result.full
    assert len(runs_of(store)) == before
    assert store.get_trigger(ahead.id).next_fire_at == ahead.next_fire_at


def test_nothing_is_fired_ahead_without_claiming(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    trigger = add_trigger(store, T0, every="10s", overlap="allow")
    assert trigger.next_fire_at is not None

    result = store.fire_due(trigger.next_fire_at - AHEAD, 100, None, lookahead_s=0.5)

    assert result.triggers == 0 and runs_of(store) == []


def test_due_triggers_and_triggers_ahead_fire_in_one_batch(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    due = add_trigger(store, T0, every="10s", overlap="skip")
    assert due.next_fire_at is not None
    at = due.next_fire_at + timedelta(milliseconds=400)
    ahead = add_trigger(store, T0, at=at.isoformat(), overlap="allow")
    assert ahead.next_fire_at == at
    now = due.next_fire_at + timedelta(milliseconds=100)

    result = store.fire_due(now, 100, ("n1", 10), lookahead_s=0.5)

    by_trigger = {run.trigger_id: run for run in result.claimed}
    assert by_trigger[due.id].start_at is None and by_trigger[due.id].started_at == now
    assert by_trigger[ahead.id].start_at == ahead.next_fire_at


def test_a_one_shot_trigger_fires_ahead_once(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    at = T0 + timedelta(minutes=5)
    trigger = add_trigger(store, T0, at=at.isoformat(), overlap="allow")

    result = store.fire_due(at - AHEAD, 100, ("n1", 10), lookahead_s=0.5)
    again = store.fire_due(at + timedelta(seconds=1), 100, ("n1", 10), lookahead_s=0.5)

    assert [r.start_at for r in result.claimed] == [at]
    assert again.triggers == 0
    assert [r.scheduled_for for r in runs_of(store, trigger.id)] == [at]


def test_the_timeline_never_places_a_store_time_early() -> None:
    """A sample read somewhere in [t0, t1] maps store time x to t1 + (x - sample): the
    latest the moment can be. A narrower sample replaces a wider one."""
    timeline = StoreTimeline()
    assert timeline.monotonic_at(T0) is None
    timeline.observe(T0, 100.0, 100.2)
    assert timeline.monotonic_at(T0 + timedelta(seconds=1)) == 101.2
    timeline.observe(T0 + timedelta(seconds=5), 105.0, 105.001)  # narrower: replaces
    assert abs((timeline.monotonic_at(T0 + timedelta(seconds=6)) or 0) - 106.001) < 1e-9
    timeline.observe(T0 + timedelta(seconds=6), 106.0, 106.5)  # wider and recent: ignored
    assert abs((timeline.monotonic_at(T0 + timedelta(seconds=6)) or 0) - 106.001) < 1e-9


def test_a_node_starts_runs_fired_ahead_at_their_time_never_before(store: Store) -> None:
    """A real node on the database's clock, with a lookahead of 2 s so the firing is ahead
    even on a loaded machine: every run is written before its time, and no agent starts
    before its scheduled time."""
    services = Services(store)
    services.add_agent(services.build_agent(
        "lag", "python", {"target": "tests.agents_for_tests:start_lag"}, max_concurrency=50))
    for _ in range(5):
        services.add_trigger(TriggerInput(agent="lag", every="1s", overlap="allow"))
    settings = NodeSettings(database_url=store.url, api=False, poll_interval_s=0.2,
                            heartbeat_interval_s=0.5, zombie_timeout_s=5.0,
                            fire_lookahead_s=2.0)

    def succeeded() -> list[Any]:
        return [r for r in store.list_runs(RunFilter(agent="lag"), limit=1000)
                if r.status is RunStatus.SUCCEEDED]

    async def main() -> list[Any]:
        node = Node(store, settings, Executors())
        await node.start()
        try:
            for _ in range(1000):
                done = await asyncio.to_thread(succeeded)
                if len(done) >= 15:
                    return done
                await asyncio.sleep(0.05)
            raise AssertionError("fewer than 15 runs succeeded")
        finally:
            await node.drain()

    done = asyncio.run(main())
    ahead = [r for r in done if r.queued_at < r.scheduled_for]
    assert ahead, "no run was fired ahead of its time"
    for run in done:
        assert run.started_at is not None and run.started_at >= run.scheduled_for
        output = json.loads(run.output) if isinstance(run.output, str) else run.output
        assert output["lag_s"] >= 0, (run.scheduled_for, output)
