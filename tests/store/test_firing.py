"""fire_due: exactly-once firing, constant statements per batch, overlap and catch-up.
Runs on SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from agentcron.models import RunStatus
from agentcron.store import Store
from agentcron.store.schema import runs
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, runs_of


def test_each_scheduled_time_fires_once(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    trigger = add_trigger(store, T0, every="1s", overlap="allow", catchup_mode="all")
    for step in range(1, 6):
        store.fire_due(T0 + timedelta(seconds=step))
        store.fire_due(T0 + timedelta(seconds=step))  # the same moment again: nothing new
    times = sorted(r.scheduled_for for r in runs_of(store, trigger.id))
    assert times == [T0 + timedelta(seconds=s) for s in range(1, 6)]


def test_unique_constraint_refuses_a_second_run_for_the_same_time(store: Store) -> None:
    """The guarantee is the database's, not the ticker's: even a writer that bypasses
    fire_due cannot create a second run for a (trigger, scheduled time)."""
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s")
    store.fire_due(T0 + timedelta(seconds=1))
    row = {"trigger_id": trigger.id, "agent": "a", "scheduled_for": T0 + timedelta(seconds=1),
           "status": "queued", "queued_at": T0, "run_after": T0}
    with pytest.raises(Exception, match=r"(?i)unique"), store.engine.begin() as conn:
        conn.execute(insert(runs).values(id="dup-1", **row))


def test_fire_due_statement_count_is_constant(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=1000)
    for _ in range(5):
        add_trigger(store, T0, every="1s", overlap="allow")
    with store.count_statements() as small:
        result = store.fire_due(T0 + timedelta(seconds=1))
    assert result.queued == 5
    for _ in range(495):
        add_trigger(store, T0, every="1s", overlap="allow")
    with store.count_statements() as large:
        result = store.fire_due(T0 + timedelta(seconds=2))
    assert result.queued == 500
    assert len(large) == len(small), (small, large)
    assert len(large) <= 5


def test_batches_respect_the_limit_and_report_full(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=1000)
    for _ in range(7):
        add_trigger(store, T0, every="1s", overlap="allow")
    first = store.fire_due(T0 + timedelta(seconds=1), limit=5)
    second = store.fire_due(T0 + timedelta(seconds=1), limit=5)
    assert (first.triggers, first.full) == (5, True)
    assert (second.triggers, second.full) == (2, False)
    assert len(runs_of(store)) == 7


def test_overlap_skip_records_a_skipped_run_with_reason(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s", overlap="skip")
    store.fire_due(T0 + timedelta(seconds=1))
    result = store.fire_due(T0 + timedelta(seconds=2))  # first still queued
    assert (result.queued, result.skipped) == (0, 1)
    skipped = [r for r in runs_of(store, trigger.id) if r.status is RunStatus.SKIPPED]
    assert len(skipped) == 1 and "overlap" in (skipped[0].reason or "")


def test_overlap_queue_buffers_exactly_one(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s", overlap="queue")
    store.fire_due(T0 + timedelta(seconds=1))
    store.claim_runs("n1", 10, T0 + timedelta(seconds=1))  # one running
    store.fire_due(T0 + timedelta(seconds=2))  # buffered
    store.fire_due(T0 + timedelta(seconds=3))  # skipped: one already queued
    statuses = sorted(r.status.value for r in runs_of(store, trigger.id))
    assert statuses == ["queued", "running", "skipped"]


def test_overlap_allow_queues_every_fire(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s", overlap="allow")
    for s in (1, 2, 3):
        store.fire_due(T0 + timedelta(seconds=s))
    assert [r.status for r in runs_of(store, trigger.id)] == [RunStatus.QUEUED] * 3


def test_overlap_replace_cancels_the_running_run(store: Store) -> None:
    add_agent(store, now=T0)
    add_trigger(store, T0, every="1s", overlap="replace")
    store.fire_due(T0 + timedelta(seconds=1))
    [claimed] = store.claim_runs("n1", 10, T0 + timedelta(seconds=1))
    result = store.fire_due(T0 + timedelta(seconds=2))
    assert result.replaced == 1 and result.queued == 1
    old = store.get_run(claimed.run_id)
    assert old.status is RunStatus.CANCELLED and "replaced" in (old.reason or "")
    # The worker of the replaced run learns at its next beat that the run is not its own.
    beat = store.heartbeat("n1", [(claimed.run_id, claimed.lease)], T0 + timedelta(seconds=3))
    assert beat.revoked == [claimed.run_id]


def test_catchup_coalesce_makes_one_run_and_counts_missed(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m", catchup="10m", catchup_mode="coalesce")
    down_until = T0 + timedelta(minutes=30)  # node down for 30 minutes
    result = store.fire_due(down_until)
    [run] = runs_of(store, trigger.id)
    assert run.scheduled_for == down_until and run.coalesced == 11  # minutes 20..30
    assert sum(m.count for m in result.missed) == 19  # minutes 1..19 beyond the window
    shown = store.get_trigger(trigger.id)
    assert shown.missed_count == 19
    assert shown.last_missed_at == T0 + timedelta(minutes=19)
    assert shown.next_fire_at == T0 + timedelta(minutes=31)


def test_catchup_all_runs_every_time_in_the_window(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    trigger = add_trigger(store, T0, every="1m", catchup="10m", catchup_mode="all",
                          overlap="allow")
    store.fire_due(T0 + timedelta(minutes=30))
    times = sorted(r.scheduled_for for r in runs_of(store, trigger.id))
    assert times == [T0 + timedelta(minutes=m) for m in range(20, 31)]
    assert store.get_trigger(trigger.id).missed_count == 19


def test_paused_trigger_does_not_fire_and_resume_skips_the_pause(store: Store) -> None:
    from agentcron.services import Services

    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s")
    Services(store).pause_trigger(trigger.id, T0)
    assert store.fire_due(T0 + timedelta(seconds=30)).triggers == 0
    resumed = Services(store).resume_trigger(trigger.id, T0 + timedelta(seconds=30))
    assert resumed.next_fire_at == T0 + timedelta(seconds=31)
    assert store.fire_due(T0 + timedelta(seconds=31)).queued == 1
    assert store.get_trigger(trigger.id).missed_count == 0


def test_once_trigger_fires_once_then_is_done(store: Store) -> None:
    add_agent(store, now=T0)
    at = T0 + timedelta(minutes=5)
    trigger = add_trigger(store, T0, at=at.isoformat())
    assert store.fire_due(T0 + timedelta(minutes=4)).triggers == 0
    assert store.fire_due(T0 + timedelta(minutes=5)).queued == 1
    assert store.get_trigger(trigger.id).next_fire_at is None
    assert store.fire_due(T0 + timedelta(days=1)).triggers == 0


def test_jitter_delays_claiming_not_the_scheduled_time(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m", jitter="30s")
    store.fire_due(T0 + timedelta(minutes=1))
    [run] = runs_of(store, trigger.id)
    assert run.scheduled_for == T0 + timedelta(minutes=1)
    assert run.scheduled_for <= run.run_after < run.scheduled_for + timedelta(seconds=30)
    if run.run_after > run.scheduled_for:
        assert store.claim_runs("n1", 1, run.scheduled_for) == []
    assert len(store.claim_runs("n1", 1, run.run_after)) == 1


def test_payload_is_copied_into_the_run(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s", payload={"topic": "news", "n": [1, 2]})
    store.fire_due(T0 + timedelta(seconds=1))
    [claimed] = store.claim_runs("n1", 1, T0 + timedelta(seconds=1))
    assert claimed.payload == {"topic": "news", "n": [1, 2]}
    assert claimed.trigger_id == trigger.id
