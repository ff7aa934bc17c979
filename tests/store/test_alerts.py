"""The alert outbox on both backends: a final failure raises its alert in the transaction of
the outcome, repeats are grouped, delivery leases are exclusive and fenced, and a lease that
ran out is delivered by another node."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentcron.models import AlertKind, AlertStatus, Outcome, RunStatus
from agentcron.store import Store
from agentcron.store.alerts import raise_alert
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger


def _rule(store: Store, kind: AlertKind, *, trigger_id: str | None = None,
          window_s: float = 3600, **extra: object) -> str:
    rule_id = f"al_{kind.value}_{trigger_id or 'agent'}"[:40]
    store.add_alert_rule({"id": rule_id, "agent": "a", "trigger_id": trigger_id,
                          "kind": kind.value, "channels": ["json://127.0.0.1:9/"],
                          "group_window_s": window_s, **extra}, now=T0)
    return rule_id


def _fail_one(store: Store, trigger_id: str, at: datetime, *, retry: bool = False) -> str:
    store.fire_due(at)
    [claimed] = store.claim_runs("n1", 1, at)
    assert claimed.trigger_id == trigger_id
    store.finish("n1", [Outcome(claimed.run_id, claimed.lease, RunStatus.FAILED, error="boom",
                                retry_delay_s=1.0 if retry else None)], at)
    return claimed.run_id


def test_a_final_failure_raises_one_alert_and_a_retry_none(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m")
    _rule(store, AlertKind.FAILED, trigger_id=trigger.id)
    _fail_one(store, trigger.id, T0 + timedelta(minutes=1), retry=True)
    assert store.list_alerts() == []
    [claimed] = store.claim_runs("n1", 1, T0 + timedelta(minutes=1, seconds=2))
    store.finish("n1", [Outcome(claimed.run_id, claimed.lease, RunStatus.FAILED,
                                error="boom")], T0 + timedelta(minutes=1, seconds=2))
    [alert] = store.list_alerts()
    assert (alert.kind, alert.agent, alert.trigger_id, alert.run_id, alert.count) == (
        "failed", "a", trigger.id, claimed.run_id, 1)
    assert "boom" in alert.reason and alert.link == f"/runs/{claimed.run_id}"
    assert alert.status is AlertStatus.OPEN


def test_repeats_while_open_are_counted_into_one_alert(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m")
    _rule(store, AlertKind.FAILED, trigger_id=trigger.id, window_s=600)
    for minute in (1, 2, 3):
        _fail_one(store, trigger.id, T0 + timedelta(minutes=minute))
    [alert] = store.list_alerts()
    assert alert.count == 3 and alert.last_at == T0 + timedelta(minutes=3)

    # Sent; the next failure within the window waits for the window's end, and groups.
    [delivery] = store.claim_alerts("n1", 10, 30, T0 + timedelta(minutes=3))
    assert store.settle_alert(delivery.alert.id, delivery.lease, now=T0 + timedelta(minutes=3))
    _fail_one(store, trigger.id, T0 + timedelta(minutes=4))
    _fail_one(store, trigger.id, T0 + timedelta(minutes=5))
    assert store.claim_alerts("n1", 10, 30, T0 + timedelta(minutes=5)) == []
    [later] = store.claim_alerts("n1", 10, 30, T0 + timedelta(minutes=13))
    assert later.alert.count == 2


def test_consecutive_failures_alert_once_when_the_streak_reaches_n(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m")
    _rule(store, AlertKind.CONSECUTIVE_FAILURES, trigger_id=trigger.id, threshold=3,
          window_s=0)
    for minute in (1, 2):
        _fail_one(store, trigger.id, T0 + timedelta(minutes=minute))
    assert store.list_alerts() == []
    _fail_one(store, trigger.id, T0 + timedelta(minutes=3))
    [alert] = store.list_alerts()
    assert "3 consecutive failed runs" in alert.reason
    _fail_one(store, trigger.id, T0 + timedelta(minutes=4))
    assert [a.count for a in store.list_alerts()] == [1]


def test_a_lease_is_exclusive_fenced_and_taken_over_when_it_runs_out(store: Store) -> None:
    add_agent(store, now=T0)
    rule_id = _rule(store, AlertKind.PAUSED)
    with store.engine.begin() as conn:
        assert raise_alert(conn, AlertKind.PAUSED, "a", None, None, "paused", T0) == 1
    [first] = store.claim_alerts("n1", 10, 30, T0)
    assert first.alert.rule_id == rule_id and first.channels == ["json://127.0.0.1:9/"]
    assert store.claim_alerts("n2", 10, 30, T0 + timedelta(seconds=29)) == []
    [again] = store.claim_alerts("n2", 10, 30, T0 + timedelta(seconds=31))
    assert again.lease == first.lease + 1 and again.alert.attempts == 2
    assert not store.settle_alert(first.alert.id, first.lease, now=T0 + timedelta(seconds=32))
    retry_at = T0 + timedelta(seconds=60)
    assert store.settle_alert(again.alert.id, again.lease, error="HTTP 500", retry_in_s=28,
                              now=T0 + timedelta(seconds=32))
    assert store.claim_alerts("n1", 10, 30, T0 + timedelta(seconds=59)) == []
    [third] = store.claim_alerts("n1", 10, 30, retry_at)
    assert store.settle_alert(third.alert.id, third.lease, now=retry_at)
    [alert] = store.list_alerts()
    assert alert.status is AlertStatus.DELIVERED and alert.attempts == 3


def test_sent_and_failed_alerts_are_pruned_open_ones_kept(store: Store) -> None:
    add_agent(store, now=T0)
    _rule(store, AlertKind.PAUSED)
    _rule(store, AlertKind.BUDGET)
    with store.engine.begin() as conn:
        raise_alert(conn, AlertKind.PAUSED, "a", None, None, "paused", T0)
        raise_alert(conn, AlertKind.BUDGET, "a", None, None, "over", T0)
    sent = next(d for d in store.claim_alerts("n1", 10, 30, T0) if d.alert.kind == "paused")
    store.settle_alert(sent.alert.id, sent.lease, now=T0)
    assert store.prune_alerts(T0 + timedelta(days=1)) == 1
    assert [a.kind for a in store.list_alerts()] == ["budget"]
