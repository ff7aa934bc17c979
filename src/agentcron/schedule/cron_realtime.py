"""Real-time cron iteration in a zone with DST, one constant-offset stretch at a time.

Why: for expressions cronsim iterates in real time (anything that is not a five-field
fixed-time job, see ``cron.py``) the answer is "every instant whose local wall-clock time
matches". cronsim computes that by stepping in UTC, which is right while the UTC offset
stays put, but its hour step (``replace(minute=0)`` then +3600 s) crosses a transition that
is not a whole number of hours (Australia/Lord_Howe shifts by 30 minutes) and lands on :30,
silently skipping the first half of the hour. For example, ``*/2 */4 * * *`` walked from
2008-04-06 00:58+11:00 answers 04:30+10:30 although 04:00+10:30 matches, and walking from
02:29+10:30 answers 04:00: the result depended on where you started.

How: give cronsim a *fixed* offset, the one in force right after the cursor, so it never
sees a transition; when a candidate lies at or past the next offset change, restart from the
change with the new offset. Within a stretch there are no matches before the change (cronsim
is exact there), so nothing is skipped and the set of fire times no longer depends on where
iteration starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from cronsim import CronSim

from agentcron.schedule.zones import EPSILON

# No zone changes its offset twice within a week, so sampling this often finds the first
# change after a point; bisection then pins it to the microsecond.
_PROBE_STEP = timedelta(days=7)


def _offset(instant: datetime, zone: tzinfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a zone always yields an offset for an aware datetime
    return offset


def first_change(
    zone: tzinfo, start: datetime, end: datetime, offset: timedelta
) -> datetime | None:
    """The first instant in ``(start, end]`` whose offset is not ``offset``, or None.

    ``offset`` must be the offset in force just after ``start``.
    """
    known = start  # invariant: the offset is `offset` throughout (start, known]
    while known < end:
        probe = min(known + _PROBE_STEP, end)
        if _offset(probe, zone) != offset:
            while probe - known > EPSILON:  # bisect: `known` keeps it, `probe` does not
                middle = known + (probe - known) // 2
                if _offset(middle, zone) != offset:
                    probe = middle
                else:
                    known = middle
            return probe
        known = probe
    return None


def iter_real_time(expr: str, zone: tzinfo, after: datetime) -> Iterator[datetime]:
    """Fire times of ``expr`` strictly after ``after`` (aware UTC), ascending, in UTC:
    every instant whose wall-clock time in ``zone`` matches."""
    cursor = after
    while True:
        offset = _offset(cursor + EPSILON, zone)
        sim = CronSim(expr, cursor.astimezone(timezone(offset)))
        for fire in sim:
            fire_utc = fire.astimezone(UTC)
            change = first_change(zone, cursor, fire_utc, offset)
            if change is not None:
                cursor = change - EPSILON  # resume at the change, under the new offset
                break
            cursor = fire_utc
            yield fire_utc
        else:
            return  # cronsim found nothing within its 50-year horizon
