"""Surviving database outages: classify errors, back off (each operation on its own, woken
as soon as the store answers again), and remember when the store came back (the sweeper
waits a zombie timeout after that before judging nodes dead, because during an outage
nobody could heartbeat)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import structlog

from agentcron.engine.waiting import Wakeup
from agentcron.store.errors import is_connection_error

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class StoreUnavailable(Exception):
    """The database could not be reached; the caller backs off ``retry_in_s`` and tries
    again."""

    def __init__(self, what: str, retry_in_s: float) -> None:
        super().__init__(what)
        self.retry_in_s = retry_in_s


#: The longest a node's loop backs off after its store calls fail (an outage): short,
#: because a loop backing off is also woken the moment the store answers again.
MAX_LOOP_BACKOFF_S = 10.0


class StoreHealth:
    """Shared by a node's loops: whether the store answers, since when, and how long each
    operation backs off.

    Each operation (``fire_due``, ``finish``, ``heartbeat``...) keeps its own failure count:
    with one count for all of them, a few seconds' outage made every loop back off 5-10 s,
    and finished runs sat unwritten for that long after the database was back. And as soon
    as the store answers again (any loop's call succeeds, or the LISTEN connection is back:
    ``poke``), every loop that is backing off is woken to try at once.
    """

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self.available = True
        # No outage seen yet: nothing to wait out at start-up.
        self.recovered_at = float("-inf")
        self._failures: dict[str, int] = {}
        self._backing_off: set[Wakeup] = set()

    @property
    def failures(self) -> int:
        """Failed calls since the store last answered, all operations together."""
        return sum(self._failures.values())

    def ok(self, what: str | None = None) -> None:
        if what is not None:
            self._failures.pop(what, None)
        if not self.available:
            log.info("store_recovered", after_failures=self.failures)
            self.recovered_at = self._monotonic()
            self.available = True
            self._failures.clear()
            self.poke()

    def failed(self, what: str, exc: BaseException) -> float:
        """Record a failure of ``what``; returns how long that operation backs off
        (exponential in its own failures, jittered, at most ``MAX_LOOP_BACKOFF_S``)."""
        self.available = False
        count = self._failures[what] = self._failures.get(what, 0) + 1
        delay: float = (min(MAX_LOOP_BACKOFF_S, 0.25 * 2.0 ** min(count, 6))
                        * random.uniform(0.5, 1.0))
        log.warning("store_unavailable", operation=what, error=str(exc).splitlines()[0],
                    retry_in_s=round(delay, 2), failures=count)
        return delay

    async def backoff(self, wakeup: Wakeup, delay: float) -> None:
        """Wait ``delay`` seconds, or until ``wakeup`` is set: by its loop's own producers,
        or by ``poke`` when the store answers again."""
        self._backing_off.add(wakeup)
        try:
            await wakeup.wait(delay)
        finally:
            self._backing_off.discard(wakeup)

    def poke(self) -> None:
        """The database answers again: wake every loop that is backing off."""
        for wakeup in list(self._backing_off):
            wakeup.set()

    def recovered(self) -> None:
        """The store answers again after an outage no call saw fail (calls that hung on a
        link dropping packets, then went through): the sweeper waits a zombie timeout from
        now, as after an outage it saw (this node was fenced meanwhile: ``engine/fence.py``)."""
        self.recovered_at = self._monotonic()

    def seconds_since_recovery(self) -> float:
        return self._monotonic() - self.recovered_at


async def call_store(health: StoreHealth, what: str, fn: Callable[P, T], *args: P.args,
                     **kwargs: P.kwargs) -> T:
    """Run a blocking store call in a worker thread. Connection errors become
    StoreUnavailable (after recording them); other errors propagate."""
    try:
        result = await asyncio.to_thread(fn, *args, **kwargs)
    except Exception as exc:
        if is_connection_error(exc):
            raise StoreUnavailable(what, health.failed(what, exc)) from exc
        raise
    health.ok(what)
    return result
