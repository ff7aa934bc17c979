"""The read side and user actions on runs. Both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentcron.errors import ConflictError, NotFoundError
from agentcron.models import PREVIEW_BYTES, Cut, Outcome, RunStatus
from agentcron.store import RunFilter, Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger

NOW = T0 + timedelta(seconds=1)


def test_fire_now_queues_a_manual_run_with_payload(store: Store) -> None:
    add_agent(store, now=T0)
    run_id = store.fire_now("a", {"x": 1}, NOW)
    run = store.get_run(run_id)
    assert run.trigger_id is None and run.payload == {"x": 1}
    assert run.status is RunStatus.QUEUED


def test_fire_now_for_an_unknown_agent(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.fire_now("nobody", None, NOW)


def test_cancel_queued_and_running_but_not_finished(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=2)
    queued = store.fire_now("a", None, NOW)
    running_id = store.fire_now("a", None, NOW)
    store.cancel_run(queued, NOW)
    assert store.get_run(queued).status is RunStatus.CANCELLED
    [running] = store.claim_runs("n1", 5, NOW)
    assert running.run_id == running_id
    assert store.cancel_run(running_id, NOW) is RunStatus.RUNNING
    assert store.heartbeat("n1", [(running_id, running.lease)], NOW).revoked == [running_id]
    with pytest.raises(ConflictError):
        store.cancel_run(running_id, NOW)


def test_retry_requeues_a_finished_run_as_fresh_attempts(store: Store) -> None:
    add_agent(store, now=T0)
    run_id = store.fire_now("a", None, NOW)
    [run] = store.claim_runs("n1", 1, NOW)
    store.finish("n1", [Outcome(run_id, run.lease, RunStatus.FAILED, error="x")], NOW)
    store.retry_run(run_id, NOW)
    again = store.get_run(run_id)
    assert again.status is RunStatus.QUEUED and again.attempt == 0 and again.error is None
    with pytest.raises(ConflictError):
        store.retry_run(run_id, NOW)  # queued: not finished


def test_list_runs_filters_and_cursor_pagination(store: Store) -> None:
    add_agent(store, "a", now=T0, max_concurrency=100)
    add_agent(store, "b", now=T0)
    for _ in range(5):
        store.fire_now("a", None, NOW)
    store.fire_now("b", None, NOW)
    page1 = store.list_runs(RunFilter(agent="a"), limit=3)
    page2 = store.list_runs(RunFilter(agent="a"), limit=3, before=page1[-1].id)
    assert len(page1) == 3 and len(page2) == 2
    assert not {r.id for r in page1} & {r.id for r in page2}
    assert [r.id for r in page1 + page2] == sorted((r.id for r in page1 + page2), reverse=True)
    assert len(store.list_runs(RunFilter(status=RunStatus.QUEUED), limit=100)) == 6


def test_prune_deletes_only_old_finished_runs(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    old = store.fire_now("a", None, NOW)
    active = store.fire_now("a", None, NOW)
    [run] = [r for r in store.claim_runs("n1", 10, NOW) if r.run_id == old]
    store.finish("n1", [Outcome(old, run.lease, RunStatus.SUCCEEDED)], NOW)
    assert store.prune(NOW, 100) == 0  # finished exactly at the cutoff: kept
    assert store.prune(NOW + timedelta(days=31), 100) == 1
    with pytest.raises(NotFoundError):
        store.get_run(old)
    assert store.get_run(active).status is RunStatus.RUNNING


def test_deleting_an_agent_cancels_its_queued_runs_and_keeps_history(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s")
    store.fire_now("a", None, NOW)
    assert store.delete_agent("a", NOW) == 1
    with pytest.raises(NotFoundError):
        store.get_trigger(trigger.id)
    assert [r.status for r in store.list_runs()] == [RunStatus.CANCELLED]


def test_listings_read_only_the_start_of_large_values(store: Store) -> None:
    """A listing moves at most ``PREVIEW_BYTES + 1`` characters of a payload or an output
    from the database, however large the stored value; a small one reads back whole."""
    add_agent(store, now=T0, max_concurrency=2)
    big = {"blob": "é" * 100_000}
    small = {"x": [1, "two", None]}
    add_trigger(store, T0, every="1h", name="big", payload=big, paused=True)
    add_trigger(store, T0, every="1h", name="small", payload=small, paused=True)
    big_run, small_run = store.fire_now("a", big, NOW), store.fire_now("a", small, NOW)
    store.finish("n1", [
        Outcome(c.run_id, c.lease, RunStatus.SUCCEEDED,
                output="o" * 300_000 if c.run_id == big_run else "done")
        for c in store.claim_runs("n1", 5, NOW)], NOW)

    listed = {t.name: t for t in store.list_triggers(preview=True)}
    assert isinstance(listed["big"].payload, Cut)
    assert PREVIEW_BYTES < len(listed["big"].payload.head) <= PREVIEW_BYTES + 1
    assert listed["small"].payload == small
    page, _ = store.triggers_page(None, 10, 0)
    assert {t.name: t.payload for t in page}["small"] == small
    assert isinstance({t.name: t.payload for t in page}["big"], Cut)

    runs = {r.id: r for r in store.list_runs(limit=10, preview=True)}
    assert isinstance(runs[big_run].payload, Cut)
    assert runs[big_run].output == "o" * (PREVIEW_BYTES + 1)
    assert runs[small_run].payload == small and runs[small_run].output == "done"
    # A show (and the engine) still reads every byte.
    assert store.get_run(big_run).payload == big
    assert store.get_run(big_run).output == "o" * 300_000
