"""How close together a schedule's fire times come (the guardrails' ``min_interval``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentcron.schedule.base import Schedule

#: How many of a schedule's next fire times its smallest gap is measured over.
GAP_SAMPLES = 100


def smallest_gap(schedule: Schedule, now: datetime, samples: int = GAP_SAMPLES
                 ) -> timedelta | None:
    """The smallest gap between consecutive fire times of ``schedule`` among its next
    ``samples`` times after ``now``; for a schedule with one time left, the gap from
    ``now`` to it; ``None`` when it has none."""
    first = schedule.next_after(now)
    if first is None:
        return None
    smallest = first - now
    previous = first
    seen_pair = False
    for _ in range(samples - 1):
        nxt = schedule.next_after(previous)
        if nxt is None:
            break
        gap = nxt - previous
        smallest = gap if not seen_pair else min(smallest, gap)
        seen_pair = True
        previous = nxt
    return smallest
