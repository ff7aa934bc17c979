"""Surviving database outages: classify errors, back off, and remember when the store
came back (the sweeper waits a zombie timeout after that before judging nodes dead,
because during an outage nobody could heartbeat)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class StoreUnavailable(Exception):
    """The database could not be reached; the caller backs off ``retry_in_s`` and tries
    again."""

    def __init__(self, what: str, retry_in_s: float) -> None:
        super().__init__(what)
        self.retry_in_s = retry_in_s


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class StoreHealth:
    """Shared by a node's loops: whether the store answers, and since when."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self.available = True
        # No outage seen yet: nothing to wait out at start-up.
        self.recovered_at = float("-inf")
        self.failures = 0

    def ok(self) -> None:
        if not self.available:
            log.info("store_recovered", after_failures=self.failures)
            self.recovered_at = self._monotonic()
        self.available = True
        self.failures = 0

    def failed(self, what: str, exc: BaseException) -> float:
        """Record a failure; returns how long to back off (exponential, jittered, <= 10s)."""
        self.available = False
        self.failures += 1
        delay: float = min(10.0, 0.25 * 2.0 ** min(self.failures, 6)) * random.uniform(0.5, 1.0)
        log.warning("store_unavailable", operation=what, error=str(exc).splitlines()[0],
                    retry_in_s=round(delay, 2), failures=self.failures)
        return delay

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
    health.ok()
    return result
