"""Fixed-period schedules: ``anchor + k * every`` for k = 0, 1, 2, ...

All arithmetic is on integer microseconds since the Unix epoch, so the k-th fire time is
exact however large k is: nothing accumulates, nothing drifts, and nothing depends on
the time zone (an interval is a real duration, not a wall-clock pattern).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from agentcron.errors import ValidationError
from agentcron.schedule.durations import format_duration
from agentcron.schedule.zones import ensure_utc

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
# The last representable instant; fire times beyond it mean "exhausted".
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICRO

HINT = "give a period of at least 1ms in whole milliseconds, e.g. 30s, 5m, 1h"


def to_us(value: datetime) -> int:
    """Exact microseconds from the Unix epoch to an aware datetime."""
    return (value - _EPOCH) // _MICRO


def from_us(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=micros)


class IntervalSchedule:
    """Fires at ``anchor + k * every_s`` for every integer k >= 0 (the anchor itself is the
    first fire time).

    ``every_s`` must be finite, at least 0.001 and a whole number of milliseconds
    (``ValidationError`` on field ``every`` otherwise). ``next_after`` and ``count_between``
    are O(1).
    """

    __slots__ = ("_anchor_us", "_every_us", "anchor", "every_s")

    def __init__(self, every_s: float, anchor: datetime) -> None:
        if isinstance(every_s, bool) or not isinstance(every_s, int | float):
            raise ValidationError("every", f"{every_s!r} is not a number of seconds", HINT)
        if not math.isfinite(every_s) or every_s < 0.001:
            raise ValidationError("every", f"{every_s!r}s is shorter than 1ms", HINT)
        millis = round(every_s * 1000)
        # Floats like 0.1 are not exact in binary; allow that rounding noise, nothing more.
        if abs(every_s * 1000 - millis) > 1e-9 * max(1.0, abs(every_s * 1000)):
            raise ValidationError("every", f"{every_s!r}s is not a whole number of ms", HINT)
        self.every_s = millis / 1000
        self.anchor = ensure_utc(anchor, "anchor")
        self._every_us = millis * 1000
        self._anchor_us = to_us(self.anchor)

    def __repr__(self) -> str:
        return f"IntervalSchedule({self.every_s!r}, anchor={self.anchor.isoformat()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IntervalSchedule):
            return NotImplemented
        return (self._every_us, self._anchor_us) == (other._every_us, other._anchor_us)

    def __hash__(self) -> int:
        return hash((self._every_us, self._anchor_us))

    def fire_time(self, k: int) -> datetime | None:
        """The k-th fire time (k >= 0), or None past the end of ``datetime``."""
        micros = self._anchor_us + k * self._every_us
        return from_us(micros) if micros <= _MAX_US else None

    def next_after(self, after: datetime) -> datetime | None:
        """The first ``anchor + k*every`` strictly after ``after``."""
        delta = to_us(ensure_utc(after, "after")) - self._anchor_us
        k = 0 if delta < 0 else delta // self._every_us + 1
        return self.fire_time(k)

    def _first_index_at_or_after(self, instant: datetime) -> int:
        delta = to_us(ensure_utc(instant)) - self._anchor_us
        return 0 if delta <= 0 else -(-delta // self._every_us)  # ceiling division

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        """Fire times in ``[start, end)``, at most ``cap``: two divisions, no iteration."""
        if cap <= 0:
            return 0
        count = self._first_index_at_or_after(end) - self._first_index_at_or_after(start)
        return max(0, min(count, cap))

    def describe(self) -> str:
        return f"Every {format_duration(self.every_s)} from {self.anchor.isoformat()}"
