"""The overlap policy has one set of effects whichever way a trigger fires: by its schedule
(``fire_due``) or by a webhook delivery. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from agentcron.models import RunEvent, RunStatus
from agentcron.rules.overlap import REPLACED, SKIPPED_ACTIVE, SKIPPED_QUEUED
from agentcron.store import Store, transitions
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, runs_of

FIRST, SECOND = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)


def _firer(store: Store, how: str, overlap: str) -> tuple[str, Callable[[Any], None]]:
    """A trigger with ``overlap`` and a function that fires it once at a given time."""
    add_agent(store, "a", T0, max_concurrency=10)
    by_schedule = how == "schedule"
    trigger = (add_trigger(store, T0, every="1s", overlap=overlap) if by_schedule
               else add_trigger(store, T0, webhook=True, overlap=overlap))

    def fire(at: Any) -> None:
        if by_schedule:
            store.fire_due(at)
        else:
            store.deliver_webhook(trigger.id, f"m-{at}", None, at)

    return trigger.id, fire


@pytest.mark.parametrize("how", ["schedule", "webhook"])
def test_replace_cancels_records_and_notifies_alike(
        store: Store, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    trigger_id, fire = _firer(store, how, "replace")
    fire(FIRST)
    [claimed] = store.claim_runs("n1", 10, FIRST)
    topics: list[str] = []
    real_notify = transitions.notify

    def spy(conn: Any, topic: str) -> None:
        topics.append(topic)
        real_notify(conn, topic)

    monkeypatch.setattr(transitions, "notify", spy)
    fire(SECOND)

    old = store.get_run(claimed.run_id)
    assert (old.status, old.reason, old.finished_at) == (RunStatus.CANCELLED, REPLACED, SECOND)
    assert store.run_history(claimed.run_id) == [
        RunEvent(claimed.run_id, SECOND, "cancelled", 1, "n1", REPLACED)]
    assert topics == ["cancel"]  # the worker is told at once, not at its next beat
    [newer] = [r for r in runs_of(store, trigger_id) if r.id != claimed.run_id]
    assert newer.status is RunStatus.QUEUED and newer.reason is None
    beat = store.heartbeat("n1", [(claimed.run_id, claimed.lease)], SECOND)
    assert beat.revoked == [claimed.run_id]


@pytest.mark.parametrize("how", ["schedule", "webhook"])
def test_replacing_only_a_queued_run_notifies_no_worker(
        store: Store, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    trigger_id, fire = _firer(store, how, "replace")
    fire(FIRST)
    topics: list[str] = []
    monkeypatch.setattr(transitions, "notify", lambda conn, topic: topics.append(topic))
    fire(SECOND)
    old, newer = sorted(runs_of(store, trigger_id), key=lambda r: r.scheduled_for)
    assert (old.status, old.reason) == (RunStatus.CANCELLED, REPLACED)
    assert [e.kind for e in store.run_history(old.id)] == ["cancelled"]
    assert newer.status is RunStatus.QUEUED and topics == []


@pytest.mark.parametrize("how", ["schedule", "webhook"])
@pytest.mark.parametrize(("overlap", "claim_first", "reason"), [
    ("skip", False, SKIPPED_ACTIVE), ("skip", True, SKIPPED_ACTIVE),
    ("queue", False, SKIPPED_QUEUED), ("queue", True, None),
])
def test_skip_and_queue_decide_alike(store: Store, how: str, overlap: str,
                                     claim_first: bool, reason: str | None) -> None:
    trigger_id, fire = _firer(store, how, overlap)
    fire(FIRST)
    if claim_first:
        store.claim_runs("n1", 10, FIRST)
    fire(SECOND)
    newer = max(runs_of(store, trigger_id), key=lambda r: r.scheduled_for)
    expected = RunStatus.QUEUED if reason is None else RunStatus.SKIPPED
    assert (newer.status, newer.reason) == (expected, reason)


def test_replacing_many_triggers_is_still_a_constant_number_of_statements(
        store: Store) -> None:
    """Replacing (cancel, record events, notify) costs the same statements for 2 triggers
    as for 100: never one per trigger or per replaced run."""
    add_agent(store, "a", T0, max_concurrency=1000)

    def statements_to_replace(n: int, second: int) -> int:
        for _ in range(n):
            add_trigger(store, T0 + timedelta(seconds=second - 1), every="1s",
                        overlap="replace")
        store.fire_due(T0 + timedelta(seconds=second))
        store.claim_runs("n1", 1000, T0 + timedelta(seconds=second))
        with store.count_statements() as statements:
            result = store.fire_due(T0 + timedelta(seconds=second + 1))
        assert result.replaced == result.queued == result.triggers
        return len(statements)

    assert statements_to_replace(2, 10) == statements_to_replace(98, 100)


@pytest.mark.parametrize("overlap", ["skip", "queue"])
def test_overlap_looks_only_at_the_triggers_own_runs(store: Store, overlap: str) -> None:
    """Another trigger's active runs never skip this one's fire (the probe once joined
    ``triggers`` again, so any active run anywhere skipped every skip/queue trigger)."""
    add_agent(store, "a", T0, max_concurrency=10)
    busy = add_trigger(store, T0, every="1s", overlap="allow")
    store.fire_due(FIRST)
    [claimed] = store.claim_runs("n1", 10, FIRST)  # busy has a running run...
    assert claimed.trigger_id == busy.id
    store.fire_due(SECOND)  # ... and a queued one
    idle = add_trigger(store, SECOND, every="1s", overlap=overlap)
    store.fire_due(SECOND + timedelta(seconds=1))
    [run] = [r for r in runs_of(store, idle.id)]
    assert run.status is RunStatus.QUEUED and run.reason is None
