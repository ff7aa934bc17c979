"""Catch-up planning: what one due trigger should run now, after any amount of downtime.

The ticker calls ``plan_fires`` for a trigger whose ``next_fire_at`` has come. Due times
older than the catch-up window are only counted (never enumerated: counting is O(1) for
intervals and about O(days) for cron); due times inside the window get runs, one each
(``all``) or a single run for the latest (``coalesce``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agentcron.models import CatchupMode
from agentcron.schedule.base import Schedule
from agentcron.schedule.zones import EPSILON, ensure_utc

#: Missed (and coalesced) counts stop here: enough to report, bounded to compute.
COUNT_CAP = 1_000_000


@dataclass(frozen=True)
class FirePlan:
    """The outcome of planning one due trigger.

    Invariants: every time in ``fire_times`` is in ``[given next_fire_at, now]``, ascending,
    distinct; ``first_missed <= last_missed < now - window``; ``next_fire_at`` is None or
    later than every handled time.
    """

    fire_times: list[datetime]  # scheduled times that get a run, oldest first
    coalesced: int  # due times the single coalesced run stands for (1 normally; 0 if none)
    missed: int  # due times older than now - window: not run, only counted
    first_missed: datetime | None
    last_missed: datetime | None
    next_fire_at: datetime | None  # first time this plan does not handle; None: exhausted


def plan_fires(
    schedule: Schedule,
    next_fire_at: datetime,
    now: datetime,
    window_s: float,
    mode: CatchupMode,
    max_runs: int = 1000,
) -> FirePlan:
    """Plan the runs for a trigger whose stored next fire time is ``next_fire_at``.

    Due times are ``next_fire_at`` itself plus the schedule's times up to and including
    ``now``. Those before ``now - window_s`` are missed: counted (capped at ``COUNT_CAP``),
    first and last reported, never run. The rest are in the window:

    - ``all``: each gets a run, oldest first, at most ``max_runs``; when more are due the
      plan's ``next_fire_at`` is the first one left out, so the next pass continues there
      and nothing is dropped;
    - ``coalesce``: one run for the latest in-window due time; ``coalesced`` says how many
      due times it stands for.

    When nothing is due yet (``next_fire_at > now``) the plan is empty and keeps
    ``next_fire_at``.
    """
    next_fire_at = ensure_utc(next_fire_at, "next_fire_at")
    now = ensure_utc(now, "now")
    if max_runs < 1:
        raise ValueError(f"max_runs must be >= 1, got {max_runs}")
    if math.isnan(window_s) or window_s < 0:
        raise ValueError(f"window_s must be >= 0, got {window_s!r}")
    if next_fire_at > now:
        return FirePlan([], 0, 0, None, None, next_fire_at)

    window_start = _window_start(now, window_s)
    missed, first_missed, last_missed = 0, None, None
    first_in: datetime | None = next_fire_at
    if next_fire_at < window_start:
        # Never iterate the gap: count it, find its last time by bisection, then jump
        # straight to the first time inside the window.
        missed = 1 + schedule.count_between(next_fire_at + EPSILON, window_start, COUNT_CAP - 1)
        first_missed = next_fire_at
        last_missed = _last_before(schedule, next_fire_at, window_start)
        first_in = schedule.next_after(window_start - EPSILON)
    if first_in is None or first_in > now:
        return FirePlan([], 0, missed, first_missed, last_missed, first_in)

    if mode == CatchupMode.COALESCE:
        end = now + EPSILON  # count_between's end is exclusive; `now` itself is due
        due = 1 + schedule.count_between(first_in + EPSILON, end, COUNT_CAP - 1)
        latest = first_in if due == 1 else _last_before(schedule, first_in, end)
        return FirePlan(
            [latest], due, missed, first_missed, last_missed, schedule.next_after(latest)
        )

    fire_times = [first_in]
    following = schedule.next_after(first_in)
    while following is not None and following <= now and len(fire_times) < max_runs:
        fire_times.append(following)
        following = schedule.next_after(following)
    return FirePlan(fire_times, 1, missed, first_missed, last_missed, following)


def _window_start(now: datetime, window_s: float) -> datetime:
    try:
        return now - timedelta(seconds=window_s)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)  # a window longer than history: no limit


def _last_before(schedule: Schedule, known: datetime, end: datetime) -> datetime:
    """The latest due time in ``[known, end)``, where ``known`` is a due time before ``end``.

    Uses only ``next_after``: gallop back from ``end`` in doubling steps until a fire time
    turns up, then bisect forward. O(log(span)) calls whatever the number of times between.
    """
    best = known
    span = timedelta(seconds=1)
    while span < end - known:
        fire = schedule.next_after(end - span - EPSILON)  # first time >= end - span
        if fire is not None and fire < end:
            best = fire
            break
        span *= 2
    # `best` is a due time < end. Each round either moves `best` past the midpoint of
    # [best, end) or moves `end` down to it, so this halves the gap every two calls.
    while True:
        following = schedule.next_after(best)
        if following is None or following >= end:
            return best
        best = following
        middle = best + (end - best) / 2
        fire = schedule.next_after(middle - EPSILON)  # first time >= middle
        if fire is not None and fire < end:
            best = fire
        else:
            end = middle
