"""One range for time, on SQLite and PostgreSQL: every instant agentcron accepts (1970-01-01
to 9000-12-31, UTC) is stored as a trigger's start or once-time and read back equal; every
other aware time is refused with a ValidationError naming the field, never another error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcron.errors import ValidationError
from agentcron.schedule.inputs import EARLIEST, LATEST
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent

SETTINGS = settings(deadline=None, max_examples=60,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

accepted = st.datetimes(min_value=EARLIEST.replace(tzinfo=None),
                        max_value=LATEST.replace(tzinfo=None)).map(
    lambda naive: naive.replace(tzinfo=UTC))
# Any aware time Python can hold, with offsets from -23:59 to +23:59.
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes)))
any_aware = st.builds(lambda naive, zone: naive.replace(tzinfo=zone), st.datetimes(), offsets)


def _agent(store: Store) -> Services:
    if not store.list_agents():
        add_agent(store, "a", T0)
    return Services(store)


@SETTINGS
@given(when=accepted)
def test_every_accepted_instant_round_trips(store: Store, when: datetime) -> None:
    services = _agent(store)
    started = services.add_trigger(TriggerInput(agent="a", every="1d", start=when), T0)
    assert store.get_trigger(started.id).start_at == when
    assert store.get_trigger(started.id).anchor_at == when
    as_text = services.add_trigger(TriggerInput(agent="a", every="1d", start=when.isoformat()),
                                   T0)
    assert store.get_trigger(as_text.id).start_at == when
    if when > T0:
        once = services.add_trigger(TriggerInput(agent="a", at=when), T0)
        read = store.get_trigger(once.id)
        assert read.at == when and read.next_fire_at == when


@SETTINGS
@given(when=any_aware)
def test_any_other_time_is_refused_naming_the_field(store: Store, when: datetime) -> None:
    services = _agent(store)
    try:
        in_range = EARLIEST <= when.astimezone(UTC) <= LATEST
    except OverflowError:
        in_range = False
    for text in (when, when.isoformat()):
        try:
            trigger = services.add_trigger(TriggerInput(agent="a", every="1d", start=text), T0)
        except ValidationError as exc:
            assert not in_range and exc.field == "start", exc
        else:
            assert in_range
            assert store.get_trigger(trigger.id).start_at == when
