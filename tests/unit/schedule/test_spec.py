"""ScheduleSpec -> Schedule, validation against `now`, parse_at and parse_payload."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agentcron.errors import ValidationError
from agentcron.models import TriggerKind
from agentcron.schedule.base import NeverSchedule
from agentcron.schedule.bounded import Bounded
from agentcron.schedule.cron import CronSchedule
from agentcron.schedule.interval import IntervalSchedule
from agentcron.schedule.once import OnceSchedule
from agentcron.schedule.spec import (
    ScheduleSpec,
    build_schedule,
    parse_at,
    parse_payload,
    validate_schedule,
)

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
ONE_OF = "give exactly one of cron, every or at (none for a webhook trigger)"


def err(call: object, *args: object, **kwargs: object) -> ValidationError:
    assert callable(call)
    with pytest.raises(ValidationError) as caught:
        call(*args, **kwargs)
    return caught.value


# --- build_schedule ---------------------------------------------------------------------


def test_builds_each_kind() -> None:
    cron = build_schedule(
        ScheduleSpec(TriggerKind.CRON, cron="0 9 * * *", timezone="Europe/Berlin")
    )
    assert isinstance(cron, CronSchedule) and cron.timezone == "Europe/Berlin"
    interval = build_schedule(ScheduleSpec(TriggerKind.INTERVAL, every_s=60, anchor_at=NOW))
    assert isinstance(interval, IntervalSchedule) and interval.anchor == NOW
    once = build_schedule(ScheduleSpec(TriggerKind.ONCE, at=NOW))
    assert isinstance(once, OnceSchedule)
    webhook = build_schedule(ScheduleSpec(TriggerKind.WEBHOOK))
    assert isinstance(webhook, NeverSchedule) and webhook.next_after(NOW) is None


def test_interval_anchor_falls_back_to_start_at() -> None:
    start = NOW + timedelta(seconds=17)
    schedule = build_schedule(ScheduleSpec(TriggerKind.INTERVAL, every_s=60, start_at=start))
    assert schedule.next_after(NOW) == start
    assert schedule.next_after(start) == start + timedelta(minutes=1)
    anchored = build_schedule(
        ScheduleSpec(TriggerKind.INTERVAL, every_s=60, anchor_at=NOW, start_at=start)
    )
    assert anchored.next_after(NOW) == NOW + timedelta(minutes=1)  # grid from anchor, >= start


def test_interval_without_anchor() -> None:
    error = err(build_schedule, ScheduleSpec(TriggerKind.INTERVAL, every_s=60))
    assert (error.field, error.message) == ("anchor_at", "an interval trigger needs an anchor")


def test_bounds_wrap_the_schedule() -> None:
    spec = ScheduleSpec(
        TriggerKind.CRON, cron="@hourly", start_at=NOW, end_at=NOW + timedelta(hours=3)
    )
    schedule = build_schedule(spec)
    assert isinstance(schedule, Bounded)
    assert schedule.count_between(NOW - timedelta(days=9), NOW + timedelta(days=9), 100) == 4


def test_build_is_memoised_on_the_spec() -> None:
    spec = ScheduleSpec(TriggerKind.CRON, cron="*/5 * * * *", timezone="America/New_York")
    same = ScheduleSpec(TriggerKind.CRON, cron="*/5 * * * *", timezone="America/New_York")
    assert build_schedule(spec) is build_schedule(same)
    assert build_schedule(spec) is not build_schedule(
        ScheduleSpec(TriggerKind.CRON, cron="*/5 * * * *")
    )


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (ScheduleSpec(TriggerKind.CRON), "cron", "a cron trigger needs cron"),
        (ScheduleSpec(TriggerKind.CRON, cron="@daily", every_s=5), "every", "a cron trigger does not take every"),
        (ScheduleSpec(TriggerKind.INTERVAL), "every", "an interval trigger needs every"),
        (ScheduleSpec(TriggerKind.INTERVAL, every_s=5, at=NOW), "at", "an interval trigger does not take at"),
        (ScheduleSpec(TriggerKind.ONCE), "at", "a once trigger needs at"),
        (ScheduleSpec(TriggerKind.ONCE, at=NOW, cron="@daily"), "cron", "a once trigger does not take cron"),
        (ScheduleSpec(TriggerKind.WEBHOOK, every_s=5), "every", "a webhook trigger does not take every"),
    ],
)  # fmt: skip
def test_exactly_one_when_field_per_kind(spec: ScheduleSpec, field: str, message: str) -> None:
    error = err(build_schedule, spec)
    assert (error.field, error.message, error.hint) == (field, message, ONE_OF)
    assert err(validate_schedule, spec, NOW).field == field


def test_naive_datetimes_in_a_spec_are_rejected() -> None:
    error = err(build_schedule, ScheduleSpec(TriggerKind.ONCE, at=datetime(2026, 6, 1)))
    assert (error.field, error.message) == ("at", "2026-06-01T00:00:00 has no UTC offset")


def test_bad_zone_and_bad_cron_name_their_fields() -> None:
    bad_zone = ScheduleSpec(TriggerKind.CRON, cron="@daily", timezone="Mars/Base")
    assert err(build_schedule, bad_zone).field == "tz"
    assert (
        err(validate_schedule, ScheduleSpec(TriggerKind.WEBHOOK, timezone="Nowhere"), NOW).field
        == "tz"
    )
    assert err(build_schedule, ScheduleSpec(TriggerKind.CRON, cron="61 * * * *")).field == "cron"
    assert (
        err(build_schedule, ScheduleSpec(TriggerKind.INTERVAL, every_s=0, anchor_at=NOW)).field
        == "every"
    )


# --- validate_schedule ------------------------------------------------------------------


def test_valid_specs_return_their_schedule() -> None:
    spec = ScheduleSpec(TriggerKind.CRON, cron="0 9 * * MON-FRI", timezone="Europe/Berlin")
    assert validate_schedule(spec, NOW) is build_schedule(spec)
    once = ScheduleSpec(TriggerKind.ONCE, at=NOW + timedelta(seconds=1))
    assert validate_schedule(once, NOW).next_after(NOW) == NOW + timedelta(seconds=1)


def test_once_in_the_past() -> None:
    spec = ScheduleSpec(TriggerKind.ONCE, at=datetime(2020, 1, 1, tzinfo=UTC))
    error = err(validate_schedule, spec, NOW)
    assert (error.field, error.message, error.hint) == (
        "at",
        "2020-01-01T00:00:00+00:00 is in the past",
        "give a future time",
    )
    assert err(validate_schedule, ScheduleSpec(TriggerKind.ONCE, at=NOW), NOW).field == "at"


def test_once_outside_its_bounds() -> None:
    at = NOW + timedelta(days=1)
    before_start = ScheduleSpec(TriggerKind.ONCE, at=at, start_at=at + timedelta(hours=1))
    assert err(validate_schedule, before_start, NOW).message.endswith(
        "is before start_at 2026-05-02T13:00:00+00:00"
    )
    after_end = ScheduleSpec(TriggerKind.ONCE, at=at, end_at=at - timedelta(hours=1))
    error = err(validate_schedule, after_end, NOW)
    assert error.field == "end_at" and error.message.startswith("never fires")


def test_end_not_after_start() -> None:
    spec = ScheduleSpec(
        TriggerKind.CRON,
        cron="@hourly",
        start_at=NOW + timedelta(days=2),
        end_at=NOW + timedelta(days=1),
    )
    error = err(validate_schedule, spec, NOW)
    assert error.field == "end_at"
    assert error.message == (
        "2026-05-02T12:00:00+00:00 is not after start_at 2026-05-03T12:00:00+00:00"
    )
    assert error.hint == "give an end_at later than start_at"


def test_end_in_the_past() -> None:
    spec = ScheduleSpec(TriggerKind.CRON, cron="@hourly", end_at=NOW - timedelta(hours=1))
    error = err(validate_schedule, spec, NOW)
    assert (error.field, error.message) == ("end_at", "2026-05-01T11:00:00+00:00 is in the past")


def test_cron_whose_first_fire_is_after_end() -> None:
    # Yearly on Jan 1st, but the trigger ends in June.
    spec = ScheduleSpec(TriggerKind.CRON, cron="@yearly", end_at=datetime(2026, 6, 1, tzinfo=UTC))
    error = err(validate_schedule, spec, NOW)
    assert error.field == "end_at"
    assert error.message == (
        "never fires: the first fire time 2027-01-01T00:00:00+00:00 is after end_at "
        "2026-06-01T00:00:00+00:00"
    )
    assert error.hint == "move end_at later or start_at earlier"


def test_cron_first_fire_counts_from_start_at() -> None:
    start = datetime(2027, 3, 1, tzinfo=UTC)
    spec = ScheduleSpec(
        TriggerKind.CRON, cron="0 0 1 2 *", start_at=start, end_at=datetime(2027, 12, 1, tzinfo=UTC)
    )
    error = err(validate_schedule, spec, NOW)
    assert error.message.startswith("never fires: the first fire time 2028-02-01")


def test_interval_whose_first_fire_is_after_end() -> None:
    spec = ScheduleSpec(
        TriggerKind.INTERVAL, every_s=86_400, anchor_at=NOW, end_at=NOW + timedelta(hours=1)
    )
    assert err(validate_schedule, spec, NOW).field == "end_at"


def test_cron_that_never_matches() -> None:
    spec = ScheduleSpec(TriggerKind.CRON, cron="1 1 */100 * MON#4")
    error = err(validate_schedule, spec, NOW)
    assert (error.field, error.message) == (
        "cron",
        "never fires: no time matches in the next 50 years",
    )


def test_webhook_is_valid_without_times() -> None:
    assert validate_schedule(ScheduleSpec(TriggerKind.WEBHOOK), NOW).next_after(NOW) is None


# --- parse_at ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-12-01T09:00:00+01:00", None, datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T09:00:00Z", None, datetime(2026, 12, 1, 9, tzinfo=UTC)),
        ("2026-12-01T09:00:00+01:00", "America/New_York", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T09:00", "Europe/Berlin", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-07-01T09:00", "Europe/Berlin", datetime(2026, 7, 1, 7, tzinfo=UTC)),
        (" 2026-07-01 09:00:00.250 ", "UTC", datetime(2026, 7, 1, 9, 0, 0, 250_000, tzinfo=UTC)),
        ("2026-12-01", "Europe/Berlin", datetime(2026, 11, 30, 23, tzinfo=UTC)),
    ],
)
def test_parse_at(text: str, zone: str | None, expected: datetime) -> None:
    parsed = parse_at(text, zone)
    assert parsed == expected and parsed.tzinfo is UTC


def test_parse_at_local_time_without_zone() -> None:
    error = err(parse_at, "2026-12-01T09:00", None, "start_at")
    assert error.field == "start_at"
    assert error.message == "'2026-12-01T09:00' has no UTC offset and no time zone was given"
    assert error.hint == "add an offset such as +01:00 or Z, or give a time zone with --tz"


def test_parse_at_in_a_dst_gap() -> None:
    error = err(parse_at, "2026-03-29T02:30", "Europe/Berlin")
    assert error.field == "at"
    assert error.message == (
        "'2026-03-29T02:30' does not exist in Europe/Berlin: the clocks skip it (daylight saving)"
    )
    assert error.hint == "pick a time outside the skipped hour, or give an explicit offset"


def test_parse_at_ambiguous() -> None:
    error = err(parse_at, "2026-11-01T01:30", "America/New_York", "end_at")
    assert error.field == "end_at"
    assert error.message == (
        "'2026-11-01T01:30' happens twice in America/New_York: the clocks repeat it (daylight saving)"
    )
    assert error.hint == (
        "give an explicit offset: 2026-11-01T01:30:00-04:00 or 2026-11-01T01:30:00-05:00"
    )
    # ...and either explicit offset is accepted.
    assert parse_at("2026-11-01T01:30:00-05:00", "America/New_York") == datetime(
        2026, 11, 1, 6, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("text", ["", "  ", "tomorrow", "2026-13-01T00:00", "2026-12-01T25:00Z"])
def test_parse_at_rejects_garbage(text: str) -> None:
    error = err(parse_at, text, "UTC")
    assert error.field == "at"
    assert (
        error.hint == "use ISO 8601, e.g. 2026-12-01T09:00:00+01:00, or 2026-12-01T09:00 with --tz"
    )


def test_parse_at_bad_zone() -> None:
    error = err(parse_at, "2026-12-01T09:00", "Mars/Base")
    assert (error.field, error.message) == ("tz", "unknown time zone 'Mars/Base'")


# --- parse_payload ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (None, None),
        ("null", None),
        ('{"topic": "news", "n": [1, 2.5, true]}', {"topic": "news", "n": [1, 2.5, True]}),
        ('"just a string"', "just a string"),
        ("42", 42),
    ],
)
def test_parse_payload(text: str | None, value: object) -> None:
    assert parse_payload(text) == value


def test_parse_payload_reports_where_the_json_breaks() -> None:
    error = err(parse_payload, '{"a": 1,\n "b": }', "body")
    assert error.field == "body"
    assert error.message == "is not valid JSON: Expecting value at line 2 column 7 (char 15)"
    assert error.hint == 'give JSON, e.g. {"topic": "news"}'


@pytest.mark.parametrize("text", ["NaN", '{"x": Infinity}', "[-Infinity]"])
def test_parse_payload_rejects_non_json_numbers(text: str) -> None:
    error = err(parse_payload, text)
    assert error.field == "payload" and "is not allowed" in error.message


def test_parse_payload_empty() -> None:
    assert err(parse_payload, "  ").message == "is empty"


def test_parse_payload_size_limit() -> None:
    at_limit = json.dumps("x" * (256 * 1024 - 2))
    assert len(at_limit) == 256 * 1024
    assert parse_payload(at_limit) == "x" * (256 * 1024 - 2)
    error = err(parse_payload, json.dumps("é" * (128 * 1024), ensure_ascii=False))
    assert error.field == "payload"
    assert error.message == "is 262,146 bytes; the limit is 262,144 (256 KiB)"
