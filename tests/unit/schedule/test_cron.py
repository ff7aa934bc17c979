"""CronSchedule: validation messages, aliases, next times, microseconds, counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cronsim import cronsim as cronsim_module

from agentcron.errors import ValidationError
from agentcron.schedule import cron as cron_module
from agentcron.schedule.cron import CronSchedule

MINUTE_HINT = "minute takes 0-59, e.g. '*/15' or '0,30'"
HOUR_HINT = "hour takes 0-23, e.g. '9' or '9-17'"
DAY_HINT = "day takes 1-31, L (last) or LW, e.g. '1' or '1,15'"
WEEKDAY_HINT = "weekday takes 0-7 (0 and 7 are Sunday) or SUN-SAT, e.g. 'MON-FRI', '5L' or '1#2'"
COUNT_HINT = "e.g. '*/15 * * * *' or '0 9 * * MON-FRI'"
NEVER_HINT = "pick a day that exists in that month, or use L for the last day"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expr", "message", "hint"),
    [
        ("61 * * * *", "minute field '61' is out of range", MINUTE_HINT),
        ("60 * * * *", "minute field '60' is out of range", MINUTE_HINT),
        ("* 24 * * *", "hour field '24' is out of range", HOUR_HINT),
        ("*/0 * * * *", "minute field '*/0' has step 0; step must be >= 1", MINUTE_HINT),
        ("0-99999999 * * * *", "minute field '0-99999999' has 99999999, out of range", MINUTE_HINT),
        ("1,2,61 * * * *", "minute field '1,2,61' has 61, out of range", MINUTE_HINT),
        ("0 0 0 * *", "day field '0' is out of range", DAY_HINT),
        ("0 0 32 * *", "day field '32' is out of range", DAY_HINT),
        ("0 0 * 13 *", "month field '13' is out of range", "month takes 1-12 or JAN-DEC, e.g. '1' or 'JAN,JUL'"),
        ("0 0 * * 8", "weekday field '8' is out of range", WEEKDAY_HINT),
        ("0 0 * * 1#6", "weekday field '1#6' has '#6'; a month has at most 5 of each weekday", WEEKDAY_HINT),
        ("60 * * * * *", "second field '60' is out of range", "second takes 0-59, e.g. '0' or '*/10'"),
        ("0 0 5-1 * *", "day field '5-1' has range '5-1' that runs backwards", DAY_HINT),
        ("0 0 * * FRI-MON", "weekday field 'FRI-MON' has range 'FRI-MON' that runs backwards", WEEKDAY_HINT),
        ("1-2-3 * * * *", "minute field '1-2-3' has a range with more than two ends", MINUTE_HINT),
        ("1,,2 * * * *", "minute field '1,,2' has an empty list item", MINUTE_HINT),
        ("*/x * * * *", "minute field '*/x' has a step that is not a whole number", MINUTE_HINT),
        ("1-1_0 * * * *", "minute field '1-1_0' is not valid", MINUTE_HINT),
        ("abc * * * *", "minute field 'abc' is not valid", MINUTE_HINT),
        ("¹ * * * *", "minute field '¹' is not valid", MINUTE_HINT),
        ("0 0 * * MONL", "weekday field 'MONL' is not valid", WEEKDAY_HINT),
        ("0 0 * * 5L-6", "weekday field '5L-6' is not valid", WEEKDAY_HINT),
        ("0 0 15W * *", "day field '15W' is not valid", DAY_HINT),
        ("* * *", "expected 5 fields (minute hour day month weekday) or 6 (second first), got 3", COUNT_HINT),
        ("* * * * * * *", "expected 5 fields (minute hour day month weekday) or 6 (second first), got 7", COUNT_HINT),
        ("", "expression is empty", COUNT_HINT),
        ("0 0 30 2 *", "never fires: February has no 30th", NEVER_HINT),
        ("0 0 31 4 *", "never fires: April has no 31st", NEVER_HINT),
        ("0 0 30,31 2 *", "never fires: February has no 30th", NEVER_HINT),
        ("0 0 31 4,6,9 *", "never fires: April, June and September have no 31st", NEVER_HINT),
        ("0 0 31 2 */2", "never fires: February has no 31st", NEVER_HINT),
        ("@reboot", "unknown alias '@reboot'", "use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"),
    ],
)  # fmt: skip
def test_rejects_with_named_field_and_hint(expr: str, message: str, hint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CronSchedule(expr)
    assert caught.value.field == "cron"
    assert caught.value.message == message
    assert caught.value.hint == hint


def test_rejects_long_expressions() -> None:
    with pytest.raises(ValidationError) as caught:
        CronSchedule("0 " * 100 + "0")
    assert caught.value.field == "cron"
    assert caught.value.message == "expression is 201 characters long; the limit is 200"


def test_unknown_zone_names_tz_field() -> None:
    with pytest.raises(ValidationError) as caught:
        CronSchedule("* * * * *", "Mars/Base")
    assert caught.value.field == "tz"
    assert caught.value.message == "unknown time zone 'Mars/Base'"
    assert caught.value.hint == "use an IANA name such as 'UTC' or 'Europe/Berlin'"


@pytest.mark.parametrize("expr", ["0-99999999 * * * *", "1-" + "9" * 190 + " * * * *"])
def test_huge_ranges_are_rejected_before_cronsim_sees_them(
    expr: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic stand-in for "fast": cronsim is never asked to parse or expand."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("cronsim was asked to parse an out-of-range expression")

    monkeypatch.setattr(cronsim_module.Field, "parse", forbidden)
    monkeypatch.setattr(cron_module, "CronSim", forbidden)
    with pytest.raises(ValidationError) as caught:
        CronSchedule(expr)
    assert caught.value.message.startswith("minute field '")
    assert caught.value.message.endswith("out of range")


@pytest.mark.parametrize(
    ("alias", "expr"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
    ],
)
def test_aliases_match_their_expansion(alias: str, expr: str) -> None:
    after = utc(2026, 5, 17, 13, 45, 12)
    aliased, plain = CronSchedule(alias), CronSchedule(expr)
    assert aliased == plain
    assert aliased.next_after(after) == plain.next_after(after)
    assert aliased.describe() == plain.describe()


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/15 * * * *", utc(2026, 1, 1, 10, 7), utc(2026, 1, 1, 10, 15)),
        ("*/15 * * * *", utc(2026, 1, 1, 10, 15), utc(2026, 1, 1, 10, 30)),
        ("0 9 * * MON-FRI", utc(2026, 1, 2, 9, 0), utc(2026, 1, 5, 9, 0)),  # Fri -> Mon
        ("0 0 L * *", utc(2026, 2, 1), utc(2026, 2, 28)),
        ("0 0 29 2 *", utc(2026, 1, 1), utc(2028, 2, 29)),
        ("30 */10 * * * *", utc(2026, 1, 1, 0, 0, 30), utc(2026, 1, 1, 0, 10, 30)),
        ("0 0 * * 1#2", utc(2026, 1, 1), utc(2026, 1, 12)),
        ("0 0 * * 5L", utc(2026, 1, 1), utc(2026, 1, 30)),
        # Debian semantics: both day fields restricted -> either matches (OR).
        ("0 0 13 * FRI", utc(2026, 1, 1), utc(2026, 1, 2)),
        # A day field starting with '*' makes it AND: the first Monday of the month.
        ("0 0 */100,1-7 * MON", utc(2026, 1, 6), utc(2026, 2, 2)),
    ],
)
def test_next_after(expr: str, after: datetime, expected: datetime) -> None:
    fire = CronSchedule(expr).next_after(after)
    assert fire == expected
    assert fire is not None and fire.tzinfo is UTC


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2026, 1, 1, 8, 59, 59, 999_999), utc(2026, 1, 1, 9)),
        (utc(2026, 1, 1, 9, 0, 0, 1), utc(2026, 1, 2, 9)),
        (utc(2026, 1, 1, 9, 0, 0, 500_000), utc(2026, 1, 2, 9)),
        (utc(2026, 1, 1, 9), utc(2026, 1, 2, 9)),
    ],
)
def test_microseconds_never_yield_a_time_at_or_before_after(
    after: datetime, expected: datetime
) -> None:
    assert CronSchedule("0 9 * * *").next_after(after) == expected
    assert CronSchedule("0 9 * * *", "Europe/London").next_after(after) == expected


def test_seconds_field_and_microseconds() -> None:
    every_second = CronSchedule("* * * * * *")
    assert every_second.next_after(utc(2026, 1, 1, 0, 0, 0, 1)) == utc(2026, 1, 1, 0, 0, 1)
    assert every_second.next_after(utc(2026, 1, 1, 0, 0, 0)) == utc(2026, 1, 1, 0, 0, 1)


def test_zone_is_applied_and_result_is_utc() -> None:
    schedule = CronSchedule("0 9 * * *", "Europe/Berlin")
    fire = schedule.next_after(utc(2026, 1, 10, 12))
    assert fire == utc(2026, 1, 11, 8)  # 09:00 CET
    assert fire is not None and fire.tzinfo is UTC
    assert schedule.next_after(utc(2026, 7, 10, 12)) == utc(2026, 7, 11, 7)  # 09:00 CEST


def test_other_offsets_are_accepted_as_input() -> None:
    from zoneinfo import ZoneInfo

    after = datetime(2026, 1, 10, 13, tzinfo=ZoneInfo("Europe/Berlin"))  # 12:00Z
    assert CronSchedule("0 * * * *").next_after(after) == utc(2026, 1, 10, 13)


def test_naive_input_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CronSchedule("* * * * *").next_after(datetime(2026, 1, 1))


def test_exhausted_when_nothing_matches_within_cronsim_horizon() -> None:
    # The 1st of the month that is also its 4th Monday: never (cronsim gives up at 50 years).
    assert CronSchedule("1 1 */100 * MON#4").next_after(utc(2026, 1, 1)) is None


def test_exhausted_at_the_end_of_datetime() -> None:
    assert CronSchedule("0 0 1 1 *").next_after(utc(9999, 6, 1)) is None


@pytest.mark.parametrize(
    ("expr", "zone", "text"),
    [
        ("* * * * *", "UTC", "Every minute"),
        ("0 9 * * 1-5", "UTC", "At 09:00 on Monday through Friday"),
        ("0 9 * * 1-5", "Europe/Berlin", "At 09:00 on Monday through Friday (Europe/Berlin)"),
        ("@daily", "Etc/UTC", "At 00:00 every day"),
    ],
)
def test_describe(expr: str, zone: str, text: str) -> None:
    assert CronSchedule(expr, zone).describe() == text


def test_accepts_leading_zeros() -> None:
    after = utc(2026, 1, 1)
    assert CronSchedule("05 009 * * *").next_after(after) == utc(2026, 1, 1, 9, 5)
    with pytest.raises(ValidationError, match="minute field '0061' is out of range"):
        CronSchedule("0061 * * * *")


def test_accepts_lowercase_names_and_extra_whitespace() -> None:
    schedule = CronSchedule("  0   9 * jan mon-fri ")
    assert schedule.expr == "0   9 * jan mon-fri"
    assert schedule.next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 9)


@pytest.mark.parametrize(
    ("expr", "zone", "start", "end"),
    [
        ("* * * * * *", "UTC", utc(2026, 1, 1, 0, 0, 0, 1), utc(2026, 1, 8, 3, 4, 5)),
        ("*/7 3-5 * * *", "UTC", utc(2026, 1, 1, 3, 10), utc(2026, 2, 3, 4, 0, 0, 1)),
        ("0 9 * * MON-FRI", "America/New_York", utc(2026, 2, 27), utc(2026, 3, 20)),
        ("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 20), utc(2026, 10, 30)),
        ("30 2 * * *", "Europe/Berlin", utc(2026, 3, 20), utc(2026, 4, 2)),
        ("15,45 * * * *", "Australia/Lord_Howe", utc(2026, 4, 1), utc(2026, 4, 9)),
        ("0 0 * * *", "America/Santiago", utc(2026, 8, 30), utc(2026, 9, 15)),
        ("0 12 * * *", "Pacific/Apia", utc(2011, 12, 25), utc(2012, 1, 5)),
    ],
)
def test_count_between_matches_iteration(
    expr: str, zone: str, start: datetime, end: datetime
) -> None:
    schedule = CronSchedule(expr, zone)
    expected = schedule.count_by_iteration(start, end, 10**7)
    assert expected > 0
    assert schedule.count_between(start, end, 10**7) == expected
    assert schedule.count_between(start, end, 5) == min(5, expected)


def test_count_between_a_week_of_seconds_is_exact() -> None:
    schedule = CronSchedule("* * * * * *")
    week = schedule.count_between(utc(2026, 1, 1), utc(2026, 1, 8), 10**7)
    assert week == 7 * 86400
    assert schedule.count_between(utc(2026, 1, 1), utc(2027, 1, 1), 1_000_000) == 1_000_000


def test_count_between_empty_spans() -> None:
    schedule = CronSchedule("* * * * *")
    assert schedule.count_between(utc(2026, 1, 2), utc(2026, 1, 1), 10) == 0
    assert schedule.count_between(utc(2026, 1, 1), utc(2026, 1, 2), 0) == 0
    assert schedule.count_between(utc(2026, 1, 1, 0, 0, 1), utc(2026, 1, 1, 0, 0, 59), 10) == 0
    # start is inclusive, end exclusive
    minute = utc(2026, 1, 1, 0, 1)
    assert schedule.count_between(minute, minute + timedelta(microseconds=1), 10) == 1
    assert schedule.count_between(minute - timedelta(seconds=1), minute, 10) == 0


def test_equal_schedules_hash_equal() -> None:
    assert CronSchedule("@hourly") == CronSchedule("0 * * * *")
    assert hash(CronSchedule("@hourly")) == hash(CronSchedule("0 * * * *"))
    assert CronSchedule("0 * * * *") != CronSchedule("0 * * * *", "Europe/Berlin")
