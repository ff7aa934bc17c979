"""Bounded growth, on SQLite and PostgreSQL: a floor on how often a trigger fires, a maximum
number of triggers per agent (checked under the agent's lock, in the insert's transaction),
and skipped fires counted on the trigger while their run rows are pruned after a short
window."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from agentcron.engine.pruner import Pruner
from agentcron.engine.resilience import StoreHealth
from agentcron.errors import ValidationError
from agentcron.models import RunStatus
from agentcron.services import Services
from agentcron.services.documents import trigger_json
from agentcron.services.limits import MAX_TRIGGERS_ENV, MIN_INTERVAL_ENV
from agentcron.services.trigger_input import TriggerInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, runs_of


class _FixedClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def store_now(self) -> datetime | None:
        return self.now

    def local_now(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"every": "1ms"}, "every"),
    ({"every": "999ms"}, "every"),
    ({"cron": "*/1 * * * * *", "env": "2s"}, "cron"),
    ({"cron": "0,30 * * * * *", "env": "1m"}, "cron"),
    ({"cron": "* * * * *", "env": "2m"}, "cron"),
    ({"every": "59s", "env": "1m"}, "every"),
])
def test_schedules_more_frequent_than_the_floor_are_refused(
        store: Store, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, str],
        field: str) -> None:
    add_agent(store, now=T0)
    kwargs = dict(kwargs)  # the parameters are shared by both backends
    floor = kwargs.pop("env", None)
    if floor is not None:
        monkeypatch.setenv(MIN_INTERVAL_ENV, floor)
    with pytest.raises(ValidationError) as info:
        add_trigger(store, T0, **kwargs)
    assert info.value.field == field
    assert MIN_INTERVAL_ENV in (info.value.hint or "")
    assert store.list_triggers() == []


@pytest.mark.parametrize(("kwargs", "floor"), [
    ({"every": "1s"}, None),
    ({"cron": "* * * * * *"}, None),
    ({"cron": "0 * * * * *"}, "1m"),
    ({"cron": "*/5 * * * *"}, "5m"),
    ({"every": "1m"}, "1m"),
])
def test_schedules_at_the_floor_are_accepted(
        store: Store, monkeypatch: pytest.MonkeyPatch, kwargs: dict[str, str],
        floor: str | None) -> None:
    add_agent(store, now=T0)
    if floor is not None:
        monkeypatch.setenv(MIN_INTERVAL_ENV, floor)
    add_trigger(store, T0, **kwargs)
    assert len(store.list_triggers()) == 1


def test_an_update_is_held_to_the_floor(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1m")
    with pytest.raises(ValidationError) as info:
        Services(store).triggers.update(trigger.id, {"every": "10ms"}, T0)
    assert info.value.field == "every"
    assert store.get_trigger(trigger.id).every_s == 60


def test_a_bad_limit_setting_is_named(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_agent(store, now=T0)
    monkeypatch.setenv(MAX_TRIGGERS_ENV, "lots")
    with pytest.raises(ValidationError) as info:
        add_trigger(store, T0, every="1m")
    assert info.value.field == MAX_TRIGGERS_ENV
    assert store.list_triggers() == []


def test_one_trigger_too_many_for_an_agent_is_refused_before_writing(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_TRIGGERS_ENV, "3")
    add_agent(store, "a", T0)
    add_agent(store, "b", T0)
    for n in range(3):
        add_trigger(store, T0, every=f"{n + 1}m")
    with pytest.raises(ValidationError) as info:
        add_trigger(store, T0, every="10m")
    assert info.value.field == "agent"
    assert MAX_TRIGGERS_ENV in (info.value.hint or "")
    assert len(store.list_triggers("a")) == 3
    add_trigger(store, T0, agent="b", every="1m")  # the limit is per agent
    Services(store).triggers.delete(store.list_triggers("a")[0].id)
    add_trigger(store, T0, every="10m")  # room again after a delete
    assert len(store.list_triggers("a")) == 3


def test_skipped_fires_are_counted_on_the_trigger(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    trigger = add_trigger(store, T0, every="1s", overlap="skip")
    store.fire_due(T0 + timedelta(seconds=1))
    store.claim_runs("n1", 10, T0 + timedelta(seconds=1))
    for second in (2, 3, 4):
        store.fire_due(T0 + timedelta(seconds=second))
    stored = store.get_trigger(trigger.id)
    assert stored.skipped_count == 3
    assert stored.last_skipped_at == T0 + timedelta(seconds=4)
    document = trigger_json(stored, "")
    assert document["skipped_count"] == 3
    assert document["last_skipped_at"] == "2026-01-05T12:00:04Z"


def test_skipped_webhook_deliveries_are_counted_on_the_trigger(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    trigger = add_trigger(store, T0, webhook=True, overlap="skip")
    store.deliver_webhook(trigger.id, "m-1", None, T0 + timedelta(seconds=1))
    store.deliver_webhook(trigger.id, "m-2", None, T0 + timedelta(seconds=2))
    store.deliver_webhook(trigger.id, "m-3", None, T0 + timedelta(seconds=3))
    stored = store.get_trigger(trigger.id)
    assert stored.skipped_count == 2
    assert stored.last_skipped_at == T0 + timedelta(seconds=3)


def test_the_pruner_keeps_skipped_runs_only_for_their_short_window(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    trigger = add_trigger(store, T0, every="1s", overlap="skip")
    store.fire_due(T0 + timedelta(seconds=1))
    store.claim_runs("n1", 10, T0 + timedelta(seconds=1))
    store.fire_due(T0 + timedelta(seconds=2))
    old_finished = store.fire_now("a", None, T0)
    store.cancel_run(old_finished, T0)

    def statuses() -> list[RunStatus]:
        return sorted(r.status for r in runs_of(store))

    def prune_at(now: datetime) -> int:
        pruner = Pruner(store, _FixedClock(now), StoreHealth(time.monotonic),
                        retention_s=86400, skipped_retention_s=3600, interval_s=60)
        return pruner.run_once()

    assert prune_at(T0 + timedelta(minutes=59)) == 0
    assert prune_at(T0 + timedelta(minutes=61)) == 1  # the skipped run only
    assert RunStatus.SKIPPED not in statuses()
    assert RunStatus.CANCELLED in statuses()  # other finished runs keep the full retention
    assert store.get_trigger(trigger.id).skipped_count == 1  # the count outlives the rows
    assert prune_at(T0 + timedelta(days=2)) == 1
    assert statuses() == [RunStatus.RUNNING]


def test_services_input_reaches_the_same_limits(store: Store,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The agents file and the Python API build triggers through ``TriggerService.build``."""
    add_agent(store, now=T0)
    monkeypatch.setenv(MIN_INTERVAL_ENV, "10s")
    with pytest.raises(ValidationError) as info:
        Services(store).triggers.build(TriggerInput(agent="a", every="5s"), T0)
    assert info.value.field == "every"
