"""The circuit breaker: a trigger paused after N consecutive failed runs, in the transaction
that writes the Nth failure; a resume clears the reason and the count. Both backends."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentcron.models import Outcome, RunStatus
from agentcron.services import Services
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger


def _fire_and_finish(store: Store, at: datetime, status: RunStatus, retry: bool = False
                     ) -> list[str]:
    """Fire what is due at ``at``, claim it and write ``status`` for each claimed run
    (a retry instead of a final failure with ``retry``). Returns the runs' ids."""
    store.fire_due(at)
    claimed = store.claim_runs("n1", 100, at)
    store.finish("n1", [Outcome(c.run_id, c.lease, status, error="boom\nsecond line",
                                retry_delay_s=1.0 if retry else None) for c in claimed], at)
    return [c.run_id for c in claimed]


def test_breaker_pauses_after_exactly_n_failures_and_resume_clears_it(store: Store) -> None:
    add_agent(store, now=T0, max_attempts=1)
    trigger = add_trigger(store, T0, every="1m", pause_after_failures=3)
    at = T0
    for i in range(1, 3):
        at += timedelta(minutes=1)
        _fire_and_finish(store, at, RunStatus.FAILED)
        seen = store.get_trigger(trigger.id)
        assert (seen.paused, seen.consecutive_failures, seen.paused_reason) == (False, i, None)
    at += timedelta(minutes=1)
    [last] = _fire_and_finish(store, at, RunStatus.FAILED)
    tripped = store.get_trigger(trigger.id)
    assert tripped.paused and tripped.consecutive_failures == 3
    assert tripped.paused_reason is not None
    assert "3 consecutive failed runs" in tripped.paused_reason
    assert last in tripped.paused_reason and "boom" in tripped.paused_reason
    assert "second line" not in tripped.paused_reason
    # Paused: nothing more fires.
    assert _fire_and_finish(store, at + timedelta(minutes=5), RunStatus.FAILED) == []

    resumed = Services(store).resume_trigger(trigger.id, at + timedelta(minutes=5))
    assert (resumed.paused, resumed.paused_reason, resumed.consecutive_failures) == (
        False, None, 0)
    # Counting starts afresh: two more failures do not trip it again.
    at += timedelta(minutes=6)
    _fire_and_finish(store, at, RunStatus.FAILED)
    _fire_and_finish(store, at + timedelta(minutes=1), RunStatus.FAILED)
    assert not store.get_trigger(trigger.id).paused


def test_a_success_resets_the_count_and_retries_do_not_count(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m", pause_after_failures=2)
    at = T0 + timedelta(minutes=1)
    _fire_and_finish(store, at, RunStatus.FAILED)
    assert store.get_trigger(trigger.id).consecutive_failures == 1
    at += timedelta(minutes=1)
    _fire_and_finish(store, at, RunStatus.SUCCEEDED)
    assert store.get_trigger(trigger.id).consecutive_failures == 0
    at += timedelta(minutes=1)
    _fire_and_finish(store, at, RunStatus.FAILED, retry=True)  # will be retried: not final
    assert store.get_trigger(trigger.id).consecutive_failures == 0
    at += timedelta(minutes=1)
    _fire_and_finish(store, at, RunStatus.CANCELLED)  # cancelled is not a failure
    seen = store.get_trigger(trigger.id)
    assert (seen.consecutive_failures, seen.paused) == (0, False)


def test_the_agents_default_applies_and_a_trigger_without_one_only_counts(
        store: Store) -> None:
    # Room for both of a's runs: with one slot, which of them is claimed is not fixed.
    add_agent(store, now=T0, pause_after_failures=1, max_concurrency=10)
    add_agent(store, "b", now=T0)
    by_default = add_trigger(store, T0, every="1m")
    own = add_trigger(store, T0, every="1m", pause_after_failures=2)
    unlimited = add_trigger(store, T0, agent="b", every="1m")
    _fire_and_finish(store, T0 + timedelta(minutes=1), RunStatus.FAILED)
    assert store.get_trigger(by_default.id).paused
    assert not store.get_trigger(own.id).paused
    free = store.get_trigger(unlimited.id)
    assert (free.paused, free.consecutive_failures) == (False, 1)


def test_a_fenced_failure_does_not_count(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m", pause_after_failures=1)
    at = T0 + timedelta(minutes=1)
    store.fire_due(at)
    [run] = store.claim_runs("n1", 1, at)
    result = store.finish("n2", [Outcome(run.run_id, run.lease, RunStatus.FAILED)], at)
    assert result.fenced == [run.run_id] and result.paused == []
    seen = store.get_trigger(trigger.id)
    assert (seen.paused, seen.consecutive_failures) == (False, 0)
    result = store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.FAILED)], at)
    assert result.paused == [(trigger.id, "a")]


def test_a_resync_of_the_agents_file_does_not_resume_a_tripped_breaker(store: Store) -> None:
    from agentcron.services.agents_file import AgentsFile

    svc = Services(store)
    declared = AgentsFile.model_validate({"agents": {"a": {
        "python": "agentcron.examples:noop", "max_attempts": 1,
        "triggers": [{"name": "t", "every": "1m", "pause_after_failures": 1}]}}})
    svc.sync_agents_file(declared, now=T0)
    trigger = store.find_trigger("a", "t")
    assert trigger is not None and trigger.pause_after_failures == 1
    _fire_and_finish(store, T0 + timedelta(minutes=1), RunStatus.FAILED)
    assert store.get_trigger(trigger.id).paused
    svc.sync_agents_file(declared, now=T0 + timedelta(minutes=2))
    again = store.get_trigger(trigger.id)
    assert again.paused and again.paused_reason is not None


def test_the_breakers_pause_raises_one_paused_alert_with_the_outcome(store: Store) -> None:
    from agentcron.models import AlertKind

    add_agent(store, now=T0, max_attempts=1)
    trigger = add_trigger(store, T0, every="1m", pause_after_failures=2)
    store.add_alert_rule({"id": "al_paused", "agent": "a", "trigger_id": None,
                          "kind": AlertKind.PAUSED.value,
                          "channels": ["json://127.0.0.1:9/"], "group_window_s": 0}, now=T0)
    _fire_and_finish(store, T0 + timedelta(minutes=1), RunStatus.FAILED)
    assert store.list_alerts() == []
    [last] = _fire_and_finish(store, T0 + timedelta(minutes=2), RunStatus.FAILED)
    [alert] = store.list_alerts()
    assert (alert.kind, alert.agent, alert.trigger_id, alert.run_id) == (
        "paused", "a", trigger.id, last)
    assert alert.reason == store.get_trigger(trigger.id).paused_reason
    # Paused: no more fires, so no more alerts.
    _fire_and_finish(store, T0 + timedelta(minutes=3), RunStatus.FAILED)
    assert len(store.list_alerts()) == 1
