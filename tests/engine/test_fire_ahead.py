"""Firing ahead (``fire_lookahead_s``): ``allow``-overlap triggers are fired and claimed
before their time, and their runs start at it, never before. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from typing import Any

from agentcron.engine.clock import StoreTimeline
from agentcron.engine.node import Node
from agentcron.engine.settings import NodeSettings
from agentcron.executors import Executors
from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import RunFilter, Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, await_until, runs_of

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
        "lag", "python", {"target": "tests.support.agents:start_lag"}, max_concurrency=50))
    for _ in range(5):
        services.add_trigger(TriggerInput(agent="lag", every="1s", overlap="allow"))
    settings = NodeSettings(database_url=store.url, api=False, poll_interval_s=0.2,
                            heartbeat_interval_s=0.5, zombie_timeout_s=5.0,
                            fire_lookahead_s=2.0)

    def succeeded() -> list[Any]:
        return [r for r in store.list_runs(RunFilter(agent="lag"), limit=1000)
                if r.status is RunStatus.SUCCEEDED]

    def fifteen_succeeded() -> list[Any]:
        done = succeeded()
        return done if len(done) >= 15 else []

    async def main() -> list[Any]:
        node = Node(store, settings, Executors())
        await node.start()
        try:
            return await await_until(fifteen_succeeded, 60, "15 runs to succeed",
                                     interval=0.05)
        finally:
            await node.drain()

    done = asyncio.run(main())
    ahead = [r for r in done if r.queued_at < r.scheduled_for]
    assert ahead, "no run was fired ahead of its time"
    for run in done:
        assert run.started_at is not None and run.started_at >= run.scheduled_for
        output = json.loads(run.output) if isinstance(run.output, str) else run.output
        assert output["lag_s"] >= 0, (run.scheduled_for, output)


def _claimed_ahead(store: Store, lead: timedelta = AHEAD) -> Any:
    """A run fired ahead and claimed by node n1 (registered at T0, zombie timeout 5 s)."""
    from agentcron.store import NodeInfo

    store.register_node(NodeInfo(id="n1", hostname="h", pid=1, version="t",
                                 zombie_timeout_s=5.0), T0)
    add_agent(store, now=T0, max_concurrency=10)
    trigger = add_trigger(store, T0, every="1h", overlap="allow")
    assert trigger.next_fire_at is not None
    return store.fire_due(trigger.next_fire_at - lead, 100, ("n1", 10), lookahead_s=5.0)


def test_a_run_handed_back_before_its_time_still_waits_for_it(store: Store) -> None:
    """Drained (released) before its time, a run fired ahead is queued again, but no node
    can claim it before its scheduled time."""
    [run] = _claimed_ahead(store).claimed
    store.release("n1", run.scheduled_for - timedelta(milliseconds=200))

    assert store.get_run(run.run_id).run_after == run.scheduled_for
    assert store.claim_runs("n2", 10, run.scheduled_for - timedelta(milliseconds=1)) == []
    [again] = store.claim_runs("n2", 10, run.scheduled_for)
    assert again.run_id == run.run_id and again.started_at == run.scheduled_for


def test_a_run_lost_before_its_time_still_waits_for_it(store: Store) -> None:
    """Its node silent past the zombie timeout before the run's time: the run is retried,
    not before its scheduled time (the backoff alone would be sooner)."""
    [run] = _claimed_ahead(store, lead=timedelta(seconds=4.5)).claimed
    swept = store.sweep(T0 + timedelta(seconds=5.5), default_zombie_timeout_s=5.0)
    assert run.scheduled_for > T0 + timedelta(seconds=5.5)

    assert swept.retried == [run.run_id]
    assert store.get_run(run.run_id).run_after >= run.scheduled_for


def test_an_agent_with_a_budget_is_not_fired_ahead(store: Store) -> None:
    """A budget is judged when a run starts (a monthly one can reset in between): an agent
    over its budget, set to pause, is neither claimed ahead nor paused ahead of time; its
    trigger is left to fire at its time."""
    from agentcron.models import Usage
    from tests.support.budgets import agent_with_budget

    agent_with_budget(store, "a", {"tokens_per_day": 100}, on_budget="pause", now=T0,
                      history=[(T0, Usage(500, 500))])
    trigger = add_trigger(store, T0, every="1h", overlap="allow")
    assert trigger.next_fire_at is not None

    result = store.fire_due(trigger.next_fire_at - AHEAD, 100, ("n1", 10), lookahead_s=0.5)

    assert result.claimed == [] and result.left_for_later == 1
    assert [r.trigger_id for r in runs_of(store)] == [None]  # only the spending history
    assert not store.get_trigger(trigger.id).paused
    assert store.get_trigger(trigger.id).next_fire_at == trigger.next_fire_at


def test_a_run_cancelled_before_it_starts_gives_its_slot_back(store: Store) -> None:
    """Revoked while it waits for its time (its task cancelled before its first step),
    a run still frees its slot."""
    from agentcron.engine.attempt import Attempt
    from agentcron.engine.clock import DatabaseClock
    from agentcron.engine.dispatcher import Dispatcher
    from agentcron.engine.resilience import StoreHealth

    [run] = _claimed_ahead(store, lead=timedelta(seconds=4)).claimed

    async def main() -> tuple[int, int]:
        dispatcher = Dispatcher(
            store, DatabaseClock(), StoreHealth(time.monotonic), Executors(), "n1",
            max_inflight=3, claim_batch=10, poll_interval_s=1.0, submit=lambda o: None,
            on_progress=lambda r, p: None)
        dispatcher.start(run)
        dispatcher.revoke(Attempt.of(run), "cancelled by a test")
        busy = dispatcher.running
        await asyncio.sleep(0)  # the cancelled task completes
        await asyncio.sleep(0)
        return busy, dispatcher.free_slots()

    assert asyncio.run(main()) == (1, 3)


def test_the_timeline_follows_a_database_clock_stepped_back() -> None:
    """The narrow sample is kept, but a later one that proves it would place a time early
    (the database's clock went back 2 s) wins: a wait must never end early."""
    timeline = StoreTimeline()
    timeline.observe(T0, 100.0, 100.001)
    timeline.observe(T0 + timedelta(seconds=8), 110.0, 110.5)  # clock stepped back 2 s
    at = timeline.monotonic_at(T0 + timedelta(seconds=20))
    assert at is not None and abs(at - 122.5) < 1e-9
