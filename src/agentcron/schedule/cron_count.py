"""Counting cron fire times in a span without visiting each one.

Why: the catch-up planner counts the fire times a trigger missed while no node was up. For
``* * * * * *`` and a week of downtime that is 604,800 times; walking them with cronsim
costs seconds, and the ticker cannot wait that long.

How: split the span at local midnights. On a *quiet* day (the zone's UTC offset is the same
at both midnights and just either side of them, so no DST transition touches the day) the
fire times are exactly the product of cronsim's parsed second, minute and hour sets on each
day cronsim's day matcher accepts, and the count below any wall-clock second is plain
arithmetic. Days that do have a transition are walked with cronsim, so its DST rules (run
once after a gap, once in a repeated hour, or on every real occurrence) are honoured exactly.
Assumes a zone changes offset at most once within a day, which holds for every current zone.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from agentcron.schedule.zones import EPSILON

if TYPE_CHECKING:
    from agentcron.schedule.cron import CronSchedule

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class _Boundary:
    """Local midnight of a day as a UTC instant, with the offsets just before and at it."""

    at: datetime
    offsets: tuple[timedelta | None, timedelta | None]


def _boundary(day: date, zone: tzinfo) -> _Boundary:
    # fold=0: a midnight that falls in a gap resolves to the instant the gap ends.
    at = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
    if zone is UTC:
        return _Boundary(at, (None, None))
    before = (at - EPSILON).astimezone(zone).utcoffset()
    return _Boundary(at, (before, at.astimezone(zone).utcoffset()))


@dataclass(frozen=True)
class _DayShape:
    """Sorted field sets of one expression: enough to count fires below a wall-clock time."""

    hours: list[int]
    minutes: list[int]
    seconds: list[int]

    def before(self, second_of_day: int) -> int:
        """Fire times on a matching quiet day whose wall-clock second is < ``second_of_day``."""
        hour, rest = divmod(second_of_day, 3600)
        minute, second = divmod(rest, 60)
        per_hour = len(self.minutes) * len(self.seconds)
        total = bisect_left(self.hours, hour) * per_hour
        if hour in self.hours:
            total += bisect_left(self.minutes, minute) * len(self.seconds)
            if minute in self.minutes:
                total += bisect_left(self.seconds, second)
        return total


def _second_of_day(instant: datetime, day: date, zone: tzinfo) -> int:
    """Wall-clock seconds since ``day``'s midnight at ``instant``, rounded up so that a fire
    at that whole second counts as before ``instant`` only if it really is."""
    local = instant.astimezone(zone)
    if local.date() > day:
        return 86_400
    return local.hour * 3600 + local.minute * 60 + local.second + (local.microsecond > 0)


def count(schedule: CronSchedule, start: datetime, end: datetime, cap: int) -> int:
    """Fire times t of ``schedule`` with ``start <= t < end`` (both aware UTC), at most ``cap``."""
    try:
        return _count(schedule, start, end, cap)
    except OverflowError:
        # Spans touching year 1 or 9999: correctness over speed.
        return schedule.count_by_iteration(start, end, cap)


def _count(schedule: CronSchedule, start: datetime, end: datetime, cap: int) -> int:
    zone = schedule.zone
    sim = schedule.template
    shape = _DayShape(sorted(sim.hours), sorted(sim.minutes), sorted(sim.seconds))
    day = start.astimezone(zone).date()
    lower = _boundary(day, zone)
    # Around a gap that spans midnight an instant's local date and the day whose
    # [midnight, next midnight) range holds it can differ by one: widen to be safe.
    while lower.at > start:
        day -= _DAY
        lower = _boundary(day, zone)
    total = 0
    while lower.at < end:
        upper = _boundary(day + _DAY, zone)
        lo, hi = max(lower.at, start), min(upper.at, end)
        if lo < hi:
            quiet = zone is UTC or len({*lower.offsets, *upper.offsets}) == 1
            if not quiet:
                total += schedule.count_by_iteration(lo, hi, cap - total)
            elif day.month in sim.months and sim.match_day(day):  # match_day skips the month
                total += shape.before(_second_of_day(hi, day, zone)) - shape.before(
                    _second_of_day(lo, day, zone)
                )
            if total >= cap:
                return cap
        day, lower = day + _DAY, upper
    return total
