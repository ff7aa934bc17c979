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


class StoreTimeline:
    """Maps the store's time onto this host's ``time.monotonic()``, so a run fired ahead
    starts at its time on the database's clock, whatever this host's wall clock says.

    Each sample is a store time ``store_now`` read between monotonic ``t0`` and ``t1``
    (one round trip). The store read it at some moment in ``[t0, t1]``, so store time
    ``x`` is at monotonic ``t1 + (x - store_now)`` at the latest: waiting until then is
    never early, and late by at most ``t1 - t0``. The narrowest recent sample is the most
    precise. The latest one is kept too: if it shows the narrow one would place a time
    early (the database's clock was stepped back, or runs slow), its own answer is given.
    """

    #: A sample older than this is replaced by any newer one (the database's clock may
    #: have been stepped).
    MAX_AGE_S = 30.0

    def __init__(self) -> None:
        self._sample: tuple[datetime, float, float] | None = None  # (store_now, t1, width)
        self._latest: tuple[datetime, float, float] | None = None  # (store_now, t0, t1)

    @property
    def known(self) -> bool:
        return self._sample is not None

    def observe(self, store_now: datetime, t0: float, t1: float) -> None:
        width = max(0.0, t1 - t0)
        self._latest = (store_now, t0, t1)
        current = self._sample
        if current is None or width <= current[2] or t1 - current[1] > self.MAX_AGE_S:
            self._sample = (store_now, t1, width)

    def monotonic_at(self, store_time: datetime) -> float | None:
        """The monotonic time by which ``store_time`` has surely come; None if unknown."""
        if self._sample is None or self._latest is None:
            return None
        narrow_now, narrow_t1, _ = self._sample
        latest_now, latest_t0, latest_t1 = self._latest
        answer = narrow_t1 + (store_time - narrow_now).total_seconds()
        ahead_of_latest = (store_time - latest_now).total_seconds()
        if latest_t0 + ahead_of_latest > answer:  # the latest sample proves it early
            answer = latest_t1 + ahead_of_latest
        return answer
