"""The one interface every schedule kind implements.

A schedule is an immutable, pure description of a set of fire times. It never reads a
clock: callers pass the instant they care about. All datetimes in and out are aware UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable


@runtime_checkable
class Schedule(Protocol):
    """A set of fire times, queried relative to an instant the caller supplies."""

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``; None once the schedule is exhausted."""
        ...

    def describe(self) -> str:
        """A short human description, e.g. ``At 09:00 on Monday (Europe/Berlin)``."""
        ...

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        """How many fire times t satisfy ``start <= t < end``, counting no further than ``cap``.

        Returns ``min(true count, cap)``; 0 when ``end <= start`` or ``cap <= 0``.
        """
        ...


class NeverSchedule:
    """The schedule of a webhook trigger: it has no fire times at all."""

    __slots__ = ()

    def next_after(self, after: datetime) -> datetime | None:
        return None

    def describe(self) -> str:
        return "Never on a schedule (fired by webhook or by hand)"

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        return 0

    def __repr__(self) -> str:
        return "NeverSchedule()"
