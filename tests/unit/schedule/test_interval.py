"""IntervalSchedule (exact, O(1)), OnceSchedule, Bounded and the never-firing schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agentcron.errors import ValidationError
from agentcron.schedule.base import NeverSchedule, Schedule
from agentcron.schedule.bounded import Bounded
from agentcron.schedule.cron import CronSchedule
from agentcron.schedule.interval import IntervalSchedule
from agentcron.schedule.once import OnceSchedule

ANCHOR = datetime(2026, 1, 1, 12, 0, 0, 123_456, tzinfo=UTC)


def test_anchor_is_the_first_fire_time() -> None:
    schedule = IntervalSchedule(300, ANCHOR)
    assert schedule.next_after(ANCHOR - timedelta(days=400)) == ANCHOR
    assert schedule.next_after(ANCHOR - timedelta(microseconds=1)) == ANCHOR
    assert schedule.next_after(ANCHOR) == ANCHOR + timedelta(minutes=5)
    assert schedule.next_after(
        ANCHOR + timedelta(minutes=5, microseconds=-1)
    ) == ANCHOR + timedelta(minutes=5)


@pytest.mark.parametrize("every_s", [0.001, 0.1, 0.3, 1.7, 60, 86_400, 7 * 86_400])
@pytest.mark.parametrize("k", [1, 7, 10**6, 10**9])
def test_kth_fire_time_is_exact_far_from_the_anchor(every_s: float, k: int) -> None:
    schedule = IntervalSchedule(every_s, ANCHOR)
    offset_ms = round(every_s * 1000) * k
    if offset_ms > 3_000 * 365 * 86_400_000:
        assert schedule.fire_time(k) is None  # past year 9999
        return
    exact = ANCHOR + timedelta(milliseconds=offset_ms)
    assert schedule.fire_time(k) == exact
    assert schedule.next_after(exact - timedelta(microseconds=1)) == exact
    assert schedule.next_after(exact) == exact + timedelta(milliseconds=round(every_s * 1000))


def test_point_one_seconds_do_not_drift() -> None:
    # 0.1 is not exact in binary; a float accumulator would be off by now.
    schedule = IntervalSchedule(0.1, ANCHOR)
    assert schedule.fire_time(10**9) == ANCHOR + timedelta(seconds=10**8)


def test_count_between_is_arithmetic() -> None:
    schedule = IntervalSchedule(1, ANCHOR)
    # A year of every-second fire times, counted without iterating.
    year = schedule.count_between(ANCHOR, ANCHOR + timedelta(days=365), 10**12)
    assert year == 365 * 86_400
    assert schedule.count_between(ANCHOR, ANCHOR + timedelta(days=365), 1_000_000) == 1_000_000
    # start inclusive, end exclusive, nothing before the anchor
    assert schedule.count_between(ANCHOR, ANCHOR + timedelta(seconds=1), 10) == 1
    assert schedule.count_between(ANCHOR - timedelta(days=1), ANCHOR, 10) == 0
    assert (
        schedule.count_between(ANCHOR - timedelta(days=1), ANCHOR + timedelta(microseconds=1), 10)
        == 1
    )
    assert schedule.count_between(ANCHOR + timedelta(seconds=2), ANCHOR, 10) == 0
    assert schedule.count_between(ANCHOR, ANCHOR + timedelta(days=1), 0) == 0


def test_exhausted_past_the_end_of_datetime() -> None:
    schedule = IntervalSchedule(86_400, ANCHOR)
    assert schedule.next_after(datetime(9999, 12, 31, 13, tzinfo=UTC)) is None


def test_anchor_in_another_zone_is_kept_in_utc() -> None:
    anchor = datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    schedule = IntervalSchedule(3600, anchor)
    assert schedule.anchor.tzinfo is UTC
    # Real hours, straight through the DST change: 00:30Z, 01:30Z, ...
    assert schedule.next_after(anchor) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("every_s", "message"),
    [
        (0, "0s is shorter than 1ms"),
        (0.0005, "0.0005s is shorter than 1ms"),
        (-5, "-5s is shorter than 1ms"),
        (float("nan"), "nans is shorter than 1ms"),
        (float("inf"), "infs is shorter than 1ms"),
        (0.0015, "0.0015s is not a whole number of ms"),
        (1.0000001, "1.0000001s is not a whole number of ms"),
    ],
)
def test_rejects_bad_periods(every_s: float, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        IntervalSchedule(every_s, ANCHOR)
    assert caught.value.field == "every"
    assert caught.value.message == message
    assert (
        caught.value.hint == "give a period of at least 1ms in whole milliseconds, e.g. 30s, 5m, 1h"
    )


def test_describe_interval() -> None:
    assert IntervalSchedule(90, ANCHOR).describe() == (
        "Every 1m30s from 2026-01-01T12:00:00.123456+00:00"
    )


def test_once() -> None:
    at = datetime(2026, 6, 1, 9, tzinfo=UTC)
    once = OnceSchedule(at)
    assert once.next_after(at - timedelta(microseconds=1)) == at
    assert once.next_after(at) is None
    assert once.count_between(at, at + timedelta(microseconds=1), 5) == 1
    assert once.count_between(at - timedelta(days=1), at, 5) == 0
    assert once.count_between(at, at + timedelta(days=1), 0) == 0
    assert once.describe() == "Once at 2026-06-01T09:00:00+00:00"


def test_never() -> None:
    never = NeverSchedule()
    assert never.next_after(ANCHOR) is None
    assert never.count_between(ANCHOR, ANCHOR + timedelta(days=1), 10) == 0


def test_every_kind_satisfies_the_protocol() -> None:
    kinds: list[Schedule] = [
        CronSchedule("* * * * *"),
        IntervalSchedule(1, ANCHOR),
        OnceSchedule(ANCHOR),
        Bounded(OnceSchedule(ANCHOR), None, None),
        NeverSchedule(),
    ]
    assert all(isinstance(kind, Schedule) for kind in kinds)


def test_bounded_keeps_both_ends_inclusive() -> None:
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    end = datetime(2026, 1, 1, 17, tzinfo=UTC)
    bounded = Bounded(CronSchedule("0 * * * *"), start, end)
    assert bounded.next_after(datetime(2025, 1, 1, tzinfo=UTC)) == start
    assert bounded.next_after(start) == start + timedelta(hours=1)
    assert bounded.next_after(end - timedelta(hours=1)) == end
    assert bounded.next_after(end) is None
    assert (
        bounded.count_between(
            datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), 100
        )
        == 9
    )
    assert bounded.count_between(start, end, 100) == 8  # end exclusive in the query
    assert bounded.count_between(end, start, 100) == 0
    assert bounded.describe() == (
        "At the start of every hour, from 2026-01-01T09:00:00+00:00, until 2026-01-01T17:00:00+00:00"
    )


def test_bounded_open_ends() -> None:
    start = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    only_start = Bounded(IntervalSchedule(3600, ANCHOR - timedelta(days=1)), start, None)
    first = only_start.next_after(datetime(2020, 1, 1, tzinfo=UTC))
    assert first is not None and first >= start and first - start < timedelta(hours=1)
    only_end = Bounded(IntervalSchedule(3600, ANCHOR), None, ANCHOR + timedelta(hours=2))
    assert only_end.next_after(ANCHOR + timedelta(hours=1)) == ANCHOR + timedelta(hours=2)
    assert only_end.next_after(ANCHOR + timedelta(hours=2)) is None
