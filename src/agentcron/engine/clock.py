"""Clocks the engine takes, so tests and fault injection control time.

The engine never decides what is due from its own clock: ``store_now()`` returns None in
production, which tells the store to use the database's clock. A test clock returns an
explicit time instead, and a skewed clock shows that a node's wrong local time changes
nothing about what fires when.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def store_now(self) -> datetime | None:
        """The time store operations act at; None means the database's clock."""

    def local_now(self) -> datetime:
        """This host's idea of now, for logs and waits only."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back."""


class DatabaseClock:
    """Production: the database decides what time it is."""

    def __init__(self, local_offset_s: float = 0.0) -> None:
        self._offset = timedelta(seconds=local_offset_s)

    def store_now(self) -> datetime | None:
        return None

    def local_now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """Tests: time moves only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 0.0

    def store_now(self) -> datetime | None:
        return self._now

    def local_now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds
        return self._now
