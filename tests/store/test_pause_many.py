"""Pausing and resuming many triggers (by agent, name pattern, all), and resuming without a
burst: the paused period is neither run nor counted missed, unless catch-up is asked for.
Both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentcron.errors import ValidationError
from agentcron.services import Services
from agentcron.services.pausing import TriggerSelector
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, runs_of


def _triggers(store: Store) -> dict[str, str]:
    add_agent(store, "a", now=T0)
    add_agent(store, "b", now=T0)
    made = {
        "nightly-1": add_trigger(store, T0, "a", every="1m", name="nightly-1"),
        "nightly_2": add_trigger(store, T0, "b", every="1m", name="nightly_2"),
        "hourly": add_trigger(store, T0, "a", every="1m", name="hourly"),
        "100%": add_trigger(store, T0, "b", every="1m", name="100%"),
    }
    return {name: t.id for name, t in made.items()}


def _paused(store: Store) -> set[str]:
    return {t.name or "" for t in store.list_triggers() if t.paused}


def test_pause_and_resume_by_agent_name_pattern_and_all(store: Store) -> None:
    _triggers(store)
    pausing = Services(store).pausing
    assert pausing.count(TriggerSelector(agent="a")) == 2
    assert len(pausing.pause(TriggerSelector(agent="a"), T0)) == 2
    assert _paused(store) == {"nightly-1", "hourly"}
    # Already paused ones are not counted again; a glob's _ and % are literal characters.
    assert len(pausing.pause(TriggerSelector(name="nightly?2"), T0)) == 1
    assert _paused(store) == {"nightly-1", "hourly", "nightly_2"}
    assert pausing.pause(TriggerSelector(name="100\\%"), T0) == []
    assert len(pausing.pause(TriggerSelector(name="100%"), T0)) == 1
    assert pausing.count(TriggerSelector(all=True), paused=True) == 4
    assert len(pausing.resume(TriggerSelector(name="nightly*"), T0)) == 2
    assert _paused(store) == {"hourly", "100%"}
    assert len(pausing.resume(TriggerSelector(agent="a", name="h*"), T0)) == 1
    assert len(pausing.resume(TriggerSelector(all=True), T0)) == 1
    assert _paused(store) == set()


def test_a_selection_must_be_given_and_all_asked_for_alone(store: Store) -> None:
    pausing = Services(store).pausing
    with pytest.raises(ValidationError) as nothing:
        pausing.pause(TriggerSelector())
    assert nothing.value.field == "selection"
    with pytest.raises(ValidationError) as both:
        pausing.pause(TriggerSelector(agent="a", all=True))
    assert both.value.field == "all"
    with pytest.raises(ValidationError) as bad:
        pausing.pause(TriggerSelector(name="x\ny"))
    assert bad.value.field == "name"


def test_resume_continues_from_now_without_a_burst(store: Store) -> None:
    ids = _triggers(store)
    pausing = Services(store).pausing
    pausing.pause(TriggerSelector(all=True), T0)
    later = T0 + timedelta(hours=3)
    store.fire_due(later)  # paused: nothing fires
    pausing.resume(TriggerSelector(all=True), later)
    fired = store.fire_due(later + timedelta(seconds=1))
    assert runs_of(store) == [] and fired.missed == []
    for trigger in store.list_triggers():
        assert trigger.next_fire_at is not None and trigger.next_fire_at > later
        assert trigger.missed_count == 0
    store.fire_due(later + timedelta(minutes=1))
    assert len(runs_of(store, ids["hourly"])) == 1  # and then it fires on schedule


def test_resume_with_catch_up_fires_the_times_within_the_window(store: Store) -> None:
    add_agent(store, now=T0)
    coalesce = add_trigger(store, T0, every="1m", catchup="10m", overlap="allow")
    each = add_trigger(store, T0, every="1m", catchup="5m", catchup_mode="all",
                       overlap="allow")
    one = Services(store)
    pausing = one.pausing
    pausing.pause(TriggerSelector(agent="a"), T0)
    later = T0 + timedelta(hours=1)
    pausing.resume(TriggerSelector(agent="a"), later, catch_up=True)
    store.fire_due(later)
    coalesced = runs_of(store, coalesce.id)
    assert len(coalesced) == 1 and coalesced[0].coalesced == 10
    # "all": each time of the last 5 minutes (the first one is strictly after later - 5m).
    assert sorted(r.scheduled_for for r in runs_of(store, each.id)) == [
        later - timedelta(minutes=m) for m in range(4, -1, -1)]
    assert store.get_trigger(each.id).missed_count == 0
    # One trigger by hand, too.
    one.pause_trigger(each.id, later)
    resumed = one.resume_trigger(each.id, later + timedelta(minutes=30), catch_up=True)
    assert resumed.next_fire_at == later + timedelta(minutes=26)
