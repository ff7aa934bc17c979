"""Clip any schedule to a ``[start_at, end_at]`` window (both ends inclusive)."""

from __future__ import annotations

from datetime import datetime

from agentcron.schedule.base import Schedule
from agentcron.schedule.zones import EPSILON, ensure_utc


class Bounded:
    """``inner``'s fire times t with ``start_at <= t <= end_at``; either bound may be None.

    A fire time exactly at ``start_at`` or ``end_at`` is kept: "start at 09:00" with a
    09:00 cron fires at 09:00, and "end at 17:00" still runs the 17:00 one.
    """

    __slots__ = ("end_at", "inner", "start_at")

    def __init__(self, inner: Schedule, start_at: datetime | None, end_at: datetime | None) -> None:
        self.inner = inner
        self.start_at = None if start_at is None else ensure_utc(start_at, "start_at")
        self.end_at = None if end_at is None else ensure_utc(end_at, "end_at")

    def __repr__(self) -> str:
        return f"Bounded({self.inner!r}, start_at={self.start_at!r}, end_at={self.end_at!r})"

    def next_after(self, after: datetime) -> datetime | None:
        after = ensure_utc(after, "after")
        if self.start_at is not None and after < self.start_at:
            # "strictly after start_at - 1µs" is "at or after start_at" at µs resolution.
            after = self.start_at - EPSILON
        fire = self.inner.next_after(after)
        if fire is None or (self.end_at is not None and fire > self.end_at):
            return None
        return fire

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        start = ensure_utc(start, "start")
        end = ensure_utc(end, "end")
        if self.start_at is not None:
            start = max(start, self.start_at)
        if self.end_at is not None:
            end = min(end, self.end_at + EPSILON)  # end_at itself is a valid fire time
        if end <= start:
            return 0
        return self.inner.count_between(start, end, cap)

    def describe(self) -> str:
        text = self.inner.describe()
        if self.start_at is not None:
            text += f", from {self.start_at.isoformat()}"
        if self.end_at is not None:
            text += f", until {self.end_at.isoformat()}"
        return text
