"""A schedule with exactly one fire time."""

from __future__ import annotations

from datetime import datetime

from agentcron.schedule.zones import ensure_utc


class OnceSchedule:
    """Fires once, at ``at`` (any aware datetime; kept and returned in UTC)."""

    __slots__ = ("at",)

    def __init__(self, at: datetime) -> None:
        self.at = ensure_utc(at, "at")

    def __repr__(self) -> str:
        return f"OnceSchedule({self.at.isoformat()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OnceSchedule):
            return NotImplemented
        return self.at == other.at

    def __hash__(self) -> int:
        return hash(self.at)

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if self.at > ensure_utc(after, "after") else None

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        inside = ensure_utc(start, "start") <= self.at < ensure_utc(end, "end")
        return 1 if inside and cap > 0 else 0

    def describe(self) -> str:
        return f"Once at {self.at.isoformat()}"
