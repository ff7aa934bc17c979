"""DST behaviour, which is cronsim's (Debian cron): checked in Europe/Berlin and
America/New_York for both transitions, in Australia/Lord_Howe (30-minute shift), and against
cases from cronsim's own test suite (Europe/Riga, 2021).

2026 transitions: Berlin 29 Mar 02:00 CET -> 03:00 CEST, 25 Oct 03:00 CEST -> 02:00 CET;
New York 8 Mar 02:00 EST -> 03:00 EDT, 1 Nov 02:00 EDT -> 01:00 EST.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim

from agentcron.schedule.cron import CronSchedule

BERLIN, NEW_YORK, RIGA = "Europe/Berlin", "America/New_York", "Europe/Riga"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def fires(schedule: CronSchedule, after: datetime, n: int) -> list[str]:
    """The next ``n`` fire times as local ISO strings (with offsets: the point here)."""
    out = []
    for _ in range(n):
        fire = schedule.next_after(after)
        assert fire is not None and fire.tzinfo is UTC and fire > after
        out.append(fire.astimezone(schedule.zone).isoformat())
        after = fire
    return out


TABLE = [
    # --- fixed-time five-field jobs: wall-clock semantics ---
    # spring: a time in the gap runs once, right after the gap
    ("30 2 * * *", BERLIN, utc(2026, 3, 28, 12), ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("30 2 * * *", NEW_YORK, utc(2026, 3, 7, 12), ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    ("0 2 * * *", BERLIN, utc(2026, 3, 28, 12), ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]),
    # several gap times collapse into that one run
    ("0,30 2 * * *", BERLIN, utc(2026, 3, 28, 12), ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    # fall: a time in the repeated hour runs once, at its first occurrence
    ("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ("30 1 * * *", NEW_YORK, utc(2026, 10, 31, 12), ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    ("0 1-3 * * *", NEW_YORK, utc(2026, 10, 31, 12), ["2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"]),
    ("0 3 * * *", BERLIN, utc(2026, 10, 24, 12), ["2026-10-25T03:00:00+01:00", "2026-10-26T03:00:00+01:00"]),
    # --- hourly or more often: every real occurrence ---
    ("*/30 * * * *", BERLIN, utc(2026, 3, 29, 0, 10), ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]),
    ("*/30 * * * *", BERLIN, utc(2026, 10, 24, 23, 50), ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"]),
    ("*/30 * * * *", NEW_YORK, utc(2026, 11, 1, 4, 50), ["2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"]),
    ("0 * * * *", BERLIN, utc(2026, 10, 24, 23, 50), ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]),
    ("0 * * * *", NEW_YORK, utc(2026, 3, 8, 6, 10), ["2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"]),
    ("0 */2 * * *", NEW_YORK, utc(2026, 11, 1, 4, 50), ["2026-11-01T02:00:00-05:00", "2026-11-01T04:00:00-05:00"]),
    # --- six-field expressions are never wall-clock: the gap time is skipped, the repeated one runs twice ---
    ("0 30 2 * * *", BERLIN, utc(2026, 3, 28, 12), ["2026-03-30T02:30:00+02:00"]),
    ("0 30 2 * * *", BERLIN, utc(2026, 10, 24, 12), ["2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"]),
    ("0 30 2 * * *", NEW_YORK, utc(2026, 3, 7, 12), ["2026-03-09T02:30:00-04:00"]),
    ("0 30 1 * * *", NEW_YORK, utc(2026, 10, 31, 12), ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"]),
    # --- Lord Howe: a 30-minute shift (02:00 -> 02:30 in October, 02:00 -> 01:30 in April) ---
    ("15 2 * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 0), ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]),
    ("45 1 * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 0), ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]),
    ("*/15 * * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 14, 20), ["2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30", "2026-04-05T01:45:00+10:30", "2026-04-05T02:00:00+10:30"]),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "zone", "after", "expected"), TABLE)
def test_dst_table(expr: str, zone: str, after: datetime, expected: list[str]) -> None:
    assert fires(CronSchedule(expr, zone), after, len(expected)) == expected


@pytest.mark.parametrize(
    ("expr", "zone", "day_start", "day_end", "count"),
    [
        # local calendar days of 23 and 25 hours, counted in UTC
        ("*/30 * * * *", BERLIN, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 46),
        ("*/30 * * * *", BERLIN, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 50),
        ("0 * * * *", BERLIN, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 23),
        ("0 * * * *", BERLIN, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 25),
        ("0 * * * *", NEW_YORK, utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), 23),
        ("0 * * * *", NEW_YORK, utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 25),
        ("*/30 * * * *", NEW_YORK, utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 50),
        # fixed-time jobs still run exactly once that day
        ("30 2 * * *", BERLIN, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 1),
        ("30 2 * * *", BERLIN, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 1),
        ("30 1 * * *", NEW_YORK, utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), 1),
        ("30 2 * * *", NEW_YORK, utc(2026, 3, 8, 5), utc(2026, 3, 9, 4), 1),
        # ...and six-field ones do not
        ("0 30 2 * * *", BERLIN, utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 0),
        ("0 30 2 * * *", BERLIN, utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 2),
    ],
)
def test_occurrences_on_transition_days(
    expr: str, zone: str, day_start: datetime, day_end: datetime, count: int
) -> None:
    schedule = CronSchedule(expr, zone)
    assert schedule.count_by_iteration(day_start, day_end, 1000) == count
    assert schedule.count_between(day_start, day_end, 1000) == count


def test_start_inside_the_repeated_hour_never_goes_backwards() -> None:
    """cronsim's wall-clock mode drops the fold of its start time: started at 01:10 EST (the
    second 01:10), `30 1 * * *` answers 01:30 EDT, which is *before* the start. We skip it."""
    after = utc(2026, 11, 1, 6, 10)  # 01:10 EST, second occurrence
    raw = next(CronSim("30 1 * * *", after.astimezone(ZoneInfo(NEW_YORK))))
    assert raw.astimezone(UTC) == utc(2026, 11, 1, 5, 30)  # cronsim: earlier than `after`
    schedule = CronSchedule("30 1 * * *", NEW_YORK)
    assert schedule.next_after(after) == utc(2026, 11, 2, 6, 30)


@pytest.mark.parametrize("offset_minutes", range(0, 181, 7))
def test_next_after_inside_transitions_agrees_with_iteration(offset_minutes: int) -> None:
    """Starting anywhere in the transition window gives the next time of one iteration."""
    for expr, zone, origin in [
        ("30 1 * * *", NEW_YORK, utc(2026, 11, 1, 4)),
        ("*/20 * * * *", NEW_YORK, utc(2026, 11, 1, 4)),
        ("30 2 * * *", BERLIN, utc(2026, 3, 29, 0)),
        ("0,30 2 * * *", BERLIN, utc(2026, 3, 29, 0)),
    ]:
        schedule = CronSchedule(expr, zone)
        walked = list(_take(schedule, origin, 12))
        probe = origin + timedelta(minutes=offset_minutes, seconds=13)
        expected = next(t for t in walked if t > probe)
        assert schedule.next_after(probe) == expected


def _take(schedule: CronSchedule, after: datetime, n: int) -> list[datetime]:
    out = []
    for fire in schedule.iter_after(after):
        out.append(fire)
        if len(out) == n:
            break
    return out


def riga(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=ZoneInfo(RIGA))


# From cronsim's tests (TestDstTransitions, Europe/Riga 2021): DST begins 28 Mar 03:00 -> 04:00,
# ends 31 Oct 04:00 -> 03:00.
CRONSIM_CASES = [
    ("0 * * * *", riga(2021, 3, 28, 1, 30), ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00"]),
    ("0 * * * *", riga(2021, 10, 31, 1, 30), ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T04:00:00+02:00"]),
    ("*/30 * * * *", riga(2021, 3, 28, 2, 10), ["2021-03-28T02:30:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T04:30:00+03:00"]),
    ("*/30 * * * *", riga(2021, 10, 31, 2, 10), ["2021-10-31T02:30:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T03:30:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T03:30:00+02:00", "2021-10-31T04:00:00+02:00"]),
    ("0 */2 * * *", riga(2021, 3, 28, 1, 30), ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T06:00:00+03:00"]),
    ("0 */2 * * *", riga(2021, 10, 31, 1, 30), ["2021-10-31T02:00:00+03:00", "2021-10-31T04:00:00+02:00", "2021-10-31T06:00:00+02:00"]),
    ("0 */3 * * *", riga(2021, 10, 31, 1, 30), ["2021-10-31T03:00:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T06:00:00+02:00"]),
    ("0 1,2,3,4,5 * * *", riga(2021, 3, 28, 1, 30), ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T05:00:00+03:00"]),
    ("0 1,2,3,4,5 * * *", riga(2021, 10, 31, 1, 30), ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T04:00:00+02:00"]),
    ("30 1,2,3,4,5 * * *", riga(2021, 3, 28, 1, 30), ["2021-03-28T02:30:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T04:30:00+03:00"]),
    ("30 1,2,3,4,5 * * *", riga(2021, 10, 31, 1, 30), ["2021-10-31T02:30:00+03:00", "2021-10-31T03:30:00+03:00", "2021-10-31T04:30:00+02:00"]),
    ("0 2 * * *", riga(2021, 10, 31, 1, 30), ["2021-10-31T02:00:00+03:00", "2021-11-01T02:00:00+02:00"]),
    ("0 3 * * *", riga(2021, 3, 27, 1, 30), ["2021-03-27T03:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-29T03:00:00+03:00"]),
    ("0 3 * * *", riga(2021, 10, 31, 1, 30), ["2021-10-31T03:00:00+03:00", "2021-11-01T03:00:00+02:00"]),
    ("0 4 * * *", riga(2021, 3, 27, 1, 30), ["2021-03-27T04:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-29T04:00:00+03:00"]),
    ("0 4 * * *", riga(2021, 10, 30, 1, 30), ["2021-10-30T04:00:00+03:00", "2021-10-31T04:00:00+02:00", "2021-11-01T04:00:00+02:00"]),
    ("0 1-5 * * *", riga(2021, 3, 28, 1, 30), ["2021-03-28T02:00:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-28T05:00:00+03:00"]),
    ("0 1-5 * * *", riga(2021, 10, 31, 1, 30), ["2021-10-31T02:00:00+03:00", "2021-10-31T03:00:00+03:00", "2021-10-31T04:00:00+02:00"]),
    ("15 3 * * *", riga(2021, 3, 27, 0, 0), ["2021-03-27T03:15:00+02:00", "2021-03-28T04:00:00+03:00", "2021-03-29T03:15:00+03:00"]),
    ("15 3 * * *", riga(2021, 10, 30, 0, 0), ["2021-10-30T03:15:00+03:00", "2021-10-31T03:15:00+03:00", "2021-11-01T03:15:00+02:00"]),
    ("* * * * *", riga(2021, 3, 28, 2, 58), ["2021-03-28T02:59:00+02:00", "2021-03-28T04:00:00+03:00"]),
    ("* * * * *", riga(2021, 10, 31, 3, 58), ["2021-10-31T03:59:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T03:01:00+02:00"]),
    ("* 1-6 * * *", riga(2021, 10, 31, 3, 58), ["2021-10-31T03:59:00+03:00", "2021-10-31T03:00:00+02:00", "2021-10-31T03:01:00+02:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "after", "expected"), CRONSIM_CASES)
def test_cronsim_reference_cases(expr: str, after: datetime, expected: list[str]) -> None:
    assert fires(CronSchedule(expr, RIGA), after, len(expected)) == expected


LORD_HOWE = "Australia/Lord_Howe"


def lord_howe(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=ZoneInfo(LORD_HOWE))


@pytest.mark.parametrize(
    ("expr", "after", "cronsim_says", "expected"),
    [
        # fall back 02:00+11:00 -> 01:30+10:30: cronsim's hour step lands on :30 and skips 04:00
        ("0 */4 * * *", lord_howe(2026, 4, 5, 1, 10), "2026-04-05T08:00:00+10:30", "2026-04-05T04:00:00+10:30"),
        ("*/2 */4 * * *", lord_howe(2008, 4, 6, 0, 58), "2008-04-06T04:30:00+10:30", "2008-04-06T04:00:00+10:30"),
        # spring forward 02:00+10:30 -> 02:30+11:00: same, the other way
        ("0 */4 * * *", lord_howe(2026, 10, 4, 1, 10), "2026-10-04T08:00:00+11:00", "2026-10-04T04:00:00+11:00"),
        ("0 0 */4 * * *", lord_howe(2026, 10, 4, 1, 10), "2026-10-04T08:00:00+11:00", "2026-10-04T04:00:00+11:00"),
    ],
)  # fmt: skip
def test_half_hour_dst_shift_does_not_skip_matching_times(
    expr: str, after: datetime, cronsim_says: str, expected: str
) -> None:
    """A cronsim bug we work around (see cron_realtime): at Lord Howe's 30-minute shifts its
    real-time iteration misses times whose wall clock plainly matches."""
    assert next(CronSim(expr, after)).isoformat() == cronsim_says
    assert fires(CronSchedule(expr, LORD_HOWE), after.astimezone(UTC), 1) == [expected]
