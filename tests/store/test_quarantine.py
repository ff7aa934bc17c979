"""Quarantine: a trigger row whose firing cannot be planned (or whose row cannot be read) is
marked broken and left out of firing, the rest of its batch fires, every listing still reads
and shows it broken, and a resume or an update lifts it. Runs on SQLite and PostgreSQL
(the ``store`` fixture), except what only SQLite can store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from agentcron.errors import ValidationError
from agentcron.services import Services
from agentcron.services.documents import trigger_json
from agentcron.store import Store
from agentcron.store.transitions import UNREADABLE
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, runs_of
from tests.support.poison import poison_run, poison_trigger


def _scheduled(store: Store, trigger_id: str) -> list[object]:
    return sorted(r.scheduled_for for r in runs_of(store, trigger_id))


def test_a_trigger_that_cannot_be_planned_is_quarantined_and_the_rest_fire(
        store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    canary = add_trigger(store, T0, every="1s", overlap="allow")
    bad_cron = add_trigger(store, T0, cron="* * * * *")
    bad_zone = add_trigger(store, T0, cron="* * * * *", tz="Europe/Paris")
    bad_policy = add_trigger(store, T0, every="1s")
    poison_trigger(store, bad_cron.id, cron="not a cron")
    poison_trigger(store, bad_zone.id, timezone="Mars/Olympus_Mons")
    poison_trigger(store, bad_policy.id, overlap="sometimes")

    now = T0 + timedelta(seconds=60)
    result = store.fire_due(now)
    assert _scheduled(store, canary.id)[-1] == now
    assert result.queued == 1
    broken = {b.trigger_id: b.reason for b in result.broken}
    assert set(broken) == {bad_cron.id, bad_zone.id, bad_policy.id}
    assert all("\n" not in reason for reason in broken.values())
    assert "sometimes" in broken[bad_policy.id]
    for trigger_id in broken:
        assert runs_of(store, trigger_id) == []
        shown = store.get_trigger(trigger_id)
        assert shown.broken_at == now and shown.broken_reason == broken[trigger_id]

    # Left out of firing from now on: the next batches take only the canary.
    later = store.fire_due(now + timedelta(seconds=120))
    assert later.triggers == 1 and later.broken == [] and later.queued == 1
    assert store.next_due_at() is not None
    assert all(runs_of(store, trigger_id) == [] for trigger_id in broken)


def test_quarantine_costs_one_statement_whatever_the_number_of_broken_rows(
        store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=1000)
    for _ in range(3):
        add_trigger(store, T0, every="1s", overlap="allow")
    with store.count_statements() as healthy:
        store.fire_due(T0 + timedelta(seconds=1))

    def poison(count: int) -> None:
        for _ in range(count):
            trigger = add_trigger(store, T0, every="1s", overlap="allow")
            poison_trigger(store, trigger.id, catchup_mode="whenever")

    poison(1)
    with store.count_statements() as one:
        assert len(store.fire_due(T0 + timedelta(seconds=2)).broken) == 1
    poison(20)
    with store.count_statements() as many:
        result = store.fire_due(T0 + timedelta(seconds=3))
    assert len(result.broken) == 20 and result.queued == 3
    assert len(one) == len(many) == len(healthy) + 1, (healthy, one, many)


def test_every_listing_reads_and_shows_a_broken_trigger(store: Store) -> None:
    add_agent(store, now=T0)
    good = add_trigger(store, T0, every="1m")
    bad = add_trigger(store, T0, cron="* * * * *")
    poison_trigger(store, bad.id, cron="61 * * * *")
    store.fire_due(T0 + timedelta(minutes=5))
    services = Services(store)
    listed = {t.id: t for t in services.triggers.all()}
    page, total = services.triggers.page()
    assert total == 2 and {t.id for t in page} == {good.id, bad.id}
    assert listed[good.id].broken_at is None
    document = trigger_json(listed[bad.id], services.triggers.describe(listed[bad.id]))
    assert document["broken"] == {"at": "2026-01-05T12:05:00Z",
                                  "reason": listed[bad.id].broken_reason}
    assert trigger_json(listed[good.id], "")["broken"] is None


def test_a_row_that_cannot_be_read_is_listed_as_broken(store: Store) -> None:
    add_agent(store, now=T0)
    good = add_trigger(store, T0, every="1m", payload={"k": 1})
    bad = add_trigger(store, T0, every="1m")
    poison_trigger(store, bad.id, kind="sundial")
    services = Services(store)
    listed = {t.id: t for t in services.triggers.all()}
    assert listed[good.id].broken_reason is None and listed[good.id].payload == {"k": 1}
    assert listed[bad.id].broken_reason is not None
    assert "kind" in listed[bad.id].broken_reason and "sundial" in listed[bad.id].broken_reason
    page, _ = services.triggers.page()
    assert {t.id for t in page} == {good.id, bad.id}
    assert store.get_trigger(bad.id).broken_reason == listed[bad.id].broken_reason
    # Firing quarantines it for good when it is due.
    result = store.fire_due(T0 + timedelta(minutes=1))
    assert [b.trigger_id for b in result.broken] == [bad.id] and result.queued == 1
    assert store.get_trigger(bad.id).broken_at == T0 + timedelta(minutes=1)


def test_a_due_row_whose_times_do_not_read_back_is_quarantined(sqlite_store: Store) -> None:
    """SQLite stores any text: a start time with a year that is not zero-padded (what an
    unchecked year 999 used to write) does not read back, and the whole due query failed."""
    store = sqlite_store
    add_agent(store, now=T0, max_concurrency=100)
    canary = add_trigger(store, T0, every="1s", overlap="allow")
    bad = add_trigger(store, T0, every="1s", payload={"x": 1})
    poison_trigger(store, bad.id, start_at="999-01-01 00:00:00.000000")
    other = add_trigger(store, T0, every="1s")
    poison_trigger(store, other.id, payload="{not json")

    # Listed before it is due: shown broken, with the column that does not read.
    before = {t.id: t for t in Services(store).triggers.all()}
    assert before[bad.id].broken_at is None
    assert "start_at" in (before[bad.id].broken_reason or "")
    assert "payload" in (before[other.id].broken_reason or "")

    now = T0 + timedelta(seconds=5)
    result = store.fire_due(now)
    broken = {b.trigger_id: b.reason for b in result.broken}
    assert set(broken) == {bad.id, other.id}
    assert "cannot be read" in broken[bad.id] and "999-01-01" in broken[bad.id]
    assert "not valid JSON" in broken[other.id]
    assert _scheduled(store, canary.id)[-1] == now
    assert runs_of(store, bad.id) == [] and runs_of(store, other.id) == []
    listed = {t.id: t for t in Services(store).triggers.all()}
    assert listed[bad.id].broken_at == now == listed[other.id].broken_at
    assert listed[bad.id].broken_reason == broken[bad.id]
    assert listed[canary.id].broken_reason is None


def test_resume_and_update_lift_the_quarantine_and_pause_keeps_it(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m")
    poison_trigger(store, trigger.id, overlap="sometimes")
    store.fire_due(T0 + timedelta(minutes=1))
    services = Services(store)
    assert store.get_trigger(trigger.id).broken_at is not None

    services.pause_trigger(trigger.id, T0 + timedelta(minutes=2))
    assert store.get_trigger(trigger.id).broken_at is not None

    # The bad value is fixed (by hand here), then resumed: it fires again.
    poison_trigger(store, trigger.id, overlap="skip")
    resumed = services.resume_trigger(trigger.id, T0 + timedelta(minutes=2))
    assert (resumed.broken_at, resumed.broken_reason) == (None, None)
    fired = store.fire_due(T0 + timedelta(minutes=3))
    assert fired.broken == [] and fired.queued == 1

    # Broken again, with a cron that does not parse: an update with a good cron fixes it.
    cron = add_trigger(store, T0, cron="*/5 * * * *")
    poison_trigger(store, cron.id, cron="*/0 * * * *")
    assert [b.trigger_id for b in store.fire_due(T0 + timedelta(minutes=5)).broken] == [cron.id]
    with pytest.raises(ValidationError):  # resuming cannot fix a schedule that does not parse
        services.resume_trigger(cron.id, T0 + timedelta(minutes=6))
    assert store.get_trigger(cron.id).broken_at is not None
    updated = services.update_trigger(cron.id, {"cron": "*/10 * * * *"},
                                      T0 + timedelta(minutes=6))
    assert updated.broken_at is None and updated.broken_reason is None
    assert store.fire_due(T0 + timedelta(minutes=10)).broken == []
    assert _scheduled(store, cron.id) == [T0 + timedelta(minutes=10)]


def test_a_queued_run_that_does_not_read_back_fails_and_the_rest_are_claimed(
        sqlite_store: Store) -> None:
    """Only SQLite can hold such a run (PostgreSQL's jsonb and timestamptz refuse it). The
    claim that picks it fails it, with the reason and an event, in the same transaction,
    and claims the others: no claim fails because of it, then or later."""
    store = sqlite_store
    add_agent(store, now=T0, max_concurrency=10)
    bad_payload = store.fire_now("a", {"x": 1}, T0)
    bad_time = store.fire_now("a", None, T0)
    good = store.fire_now("a", {"y": 2}, T0)
    poison_run(store, bad_payload, payload="{not json")
    poison_run(store, bad_time, scheduled_for="999-01-01 00:00:00.000000")
    store.add_alert_rule({"id": "al_failed", "agent": "a", "kind": "failed",
                          "channels": ["json://127.0.0.1:9/"], "group_window_s": 0}, T0)

    claimed = store.claim_runs("n1", 10, T0 + timedelta(seconds=1))
    assert [(c.run_id, c.payload) for c in claimed] == [(good, {"y": 2})]
    for run_id, what in ((bad_payload, "payload"), (bad_time, "scheduled_for")):
        history = store.run_history(run_id)
        assert history[-1].kind == "failed" and what in (history[-1].message or "")
        with store.engine.connect() as conn:
            status, reason = conn.execute(
                text("SELECT status, reason FROM runs WHERE id = :id"), {"id": run_id}).one()
        assert (status, reason) == ("failed", UNREADABLE)
    assert store.claim_runs("n1", 10, T0 + timedelta(seconds=2)) == []
    # A final failure like any other: alerted (the two, of no trigger, grouped into one).
    [alert] = store.list_alerts()
    assert (alert.kind, alert.count) == ("failed", 2) and alert.reason.startswith("quarantined")


def test_a_run_that_does_not_read_back_is_still_listed_and_shown(sqlite_store: Store) -> None:
    store = sqlite_store
    add_agent(store, now=T0)
    bad, good = store.fire_now("a", {"x": 1}, T0), store.fire_now("a", {"y": 2}, T0)
    poison_run(store, bad, payload="{not json", queued_at="not a time")
    shown = store.get_run(bad)
    assert shown.payload == "{not json" and shown.error is not None
    assert "payload" in shown.error and "queued_at" in shown.error
    for preview in (False, True):
        listed = {r.id: r for r in store.list_runs(limit=10, preview=preview)}
        assert listed[good].payload == {"y": 2} and listed[good].error is None
        assert "queued_at" in (listed[bad].error or "")
