"""Each alert rule raises exactly once per event, on both backends: a missed fire with the
advance that counts it, a budget skip with the skip, a run still running past its duration
once per run, and a dead man's switch once per silent period, even with two nodes checking
at the same moment."""

from __future__ import annotations

from datetime import timedelta

from agentcron.models import AlertKind, Outcome, RunStatus, Usage
from agentcron.store import Store
from tests.conftest import T0
from tests.support.budgets import agent_with_budget, queue
from tests.support.helpers import add_agent, add_trigger, race


def _rule(store: Store, kind: AlertKind, agent: str = "a", **extra: object) -> str:
    rule_id = f"al_{kind.value}"[:40]
    store.add_alert_rule({"id": rule_id, "agent": agent, "kind": kind.value,
                          "channels": ["json://127.0.0.1:9/"], "group_window_s": 0,
                          **extra}, now=T0)
    return rule_id


def _kinds(store: Store) -> list[tuple[str, int]]:
    return [(a.kind, a.count) for a in store.list_alerts(limit=100)]


def test_a_missed_fire_is_alerted_with_the_advance_that_counts_it(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m", catchup="2m")
    _rule(store, AlertKind.MISSED, trigger_id=trigger.id)
    store.fire_due(T0 + timedelta(minutes=1))
    assert _kinds(store) == []
    store.fire_due(T0 + timedelta(minutes=30))  # 26 times older than the window
    [alert] = store.list_alerts()
    assert alert.kind == "missed" and alert.trigger_id == trigger.id
    assert alert.reason.startswith(f"{store.get_trigger(trigger.id).missed_count} scheduled")
    store.fire_due(T0 + timedelta(minutes=30))  # nothing new missed: nothing new raised
    assert _kinds(store) == [("missed", 1)]


def test_a_budget_skip_is_alerted_with_the_skip(store: Store) -> None:
    now = T0 + timedelta(hours=1)
    agent_with_budget(store, "a", {"tokens_per_day": 100}, now=T0,
                      history=[(T0, Usage(100, 0))])
    _rule(store, AlertKind.BUDGET)
    queue(store, "a", 2, now)
    assert store.claim_runs("n1", 10, now) == []
    [alert] = store.list_alerts()
    assert alert.kind == "budget" and "2 run(s) skipped" in alert.reason
    assert "tokens per day" in alert.reason


def test_a_long_run_is_alerted_once_per_run(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=5)
    trigger = add_trigger(store, T0, every="1m", overlap="allow")
    _rule(store, AlertKind.LONG_RUNNING, trigger_id=trigger.id, duration_s=300)
    store.fire_due(T0 + timedelta(minutes=1))
    [first] = store.claim_runs("n1", 5, T0 + timedelta(minutes=1))
    assert store.check_alert_rules(T0 + timedelta(minutes=5)) == 0
    assert store.check_alert_rules(T0 + timedelta(minutes=6)) == 1
    assert store.check_alert_rules(T0 + timedelta(minutes=7)) == 0  # the same run: once
    store.fire_due(T0 + timedelta(minutes=7))
    [second] = store.claim_runs("n1", 5, T0 + timedelta(minutes=7))
    store.finish("n1", [Outcome(second.run_id, second.lease, RunStatus.SUCCEEDED)],
                 T0 + timedelta(minutes=8))
    assert store.check_alert_rules(T0 + timedelta(minutes=20)) == 0  # it finished in time
    [alert] = store.list_alerts()
    assert alert.run_id == first.run_id and "still running 5m" in alert.reason


def test_a_dead_man_trips_once_per_silent_period_across_racing_nodes(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="10m")
    _rule(store, AlertKind.DEAD_MAN, trigger_id=trigger.id, interval_factor=2.0)
    assert store.check_alert_rules(T0 + timedelta(minutes=19)) == 0
    stores = [Store(store.url) for _ in range(3)]
    try:
        raised = race(stores, lambda s, _i: s.check_alert_rules(T0 + timedelta(minutes=21)))
    finally:
        for s in stores:
            s.close()
    assert sorted(raised) == [0, 0, 1]
    [alert] = store.list_alerts()
    assert alert.kind == "dead_man" and "within 20m" in alert.reason
    # Once per period: the next alert is due 20 minutes after this one.
    assert store.check_alert_rules(T0 + timedelta(minutes=40)) == 0
    assert store.check_alert_rules(T0 + timedelta(minutes=41)) == 1


def test_a_success_resets_the_dead_man(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="10m")
    _rule(store, AlertKind.DEAD_MAN, trigger_id=trigger.id, duration_s=1500)
    store.fire_due(T0 + timedelta(minutes=10))
    [run] = store.claim_runs("n1", 1, T0 + timedelta(minutes=10))
    store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED)],
                 T0 + timedelta(minutes=11))
    assert store.check_alert_rules(T0 + timedelta(minutes=30)) == 0
    assert store.check_alert_rules(T0 + timedelta(minutes=36)) == 1


def test_a_rule_of_another_trigger_or_agent_stays_quiet(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=5)
    add_agent(store, "b", now=T0)
    watched = add_trigger(store, T0, every="1m")
    other = add_trigger(store, T0, every="1m", name="other")
    _rule(store, AlertKind.FAILED, trigger_id=watched.id)
    _rule(store, AlertKind.LONG_RUNNING, agent="b", duration_s=1)
    store.fire_due(T0 + timedelta(minutes=1))
    claimed = store.claim_runs("n1", 5, T0 + timedelta(minutes=1))
    mine = [c for c in claimed if c.trigger_id == other.id]
    assert len(mine) == 1
    store.finish("n1", [Outcome(c.run_id, c.lease, RunStatus.FAILED, error="x")
                        for c in mine], T0 + timedelta(minutes=1))
    assert store.check_alert_rules(T0 + timedelta(minutes=9)) == 0
    assert store.list_alerts() == []


def test_channels_and_secrets_are_sealed_at_rest_and_resealed(store: Store) -> None:
    from cryptography.fernet import Fernet
    from sqlalchemy import select

    from agentcron.store.schema import alert_rules
    from agentcron.store.secrets import SecretBox

    add_agent(store, now=T0)
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    sealing = Store(store.url, secrets=SecretBox.from_env({"AGENTCRON_SECRET_KEY": old}))
    try:
        sealing.add_alert_rule({"id": "al_sealed", "agent": "a", "kind": "failed",
                                "channels": ["slack://TokenA/TokenB/TokenC"],
                                "webhook_secret": "whsec_abc", "group_window_s": 0}, T0)
        with store.engine.begin() as conn:
            raw = conn.execute(select(alert_rules.c.channels,
                                      alert_rules.c.webhook_secret)).one()
        assert "TokenA" not in str(raw) and "whsec_abc" not in str(raw)
        [rule] = sealing.alert_rules()
        assert rule.channels == ["slack://TokenA/TokenB/TokenC"] and rule.has_secret
    finally:
        sealing.close()
    rotating = Store(store.url, secrets=SecretBox.from_env(
        {"AGENTCRON_SECRET_KEY": f"{new},{old}"}))
    try:
        rotating.reseal_secrets()
    finally:
        rotating.close()
    only_new = Store(store.url, secrets=SecretBox.from_env({"AGENTCRON_SECRET_KEY": new}))
    try:
        assert only_new.alert_rules()[0].channels == ["slack://TokenA/TokenB/TokenC"]
        assert only_new.check_secrets() == 2
    finally:
        only_new.close()
