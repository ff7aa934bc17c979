"""Completions: finished attempts are written in batches, one statement per batch.

A run stays in flight (occupying a slot, and covered by the node's heartbeat) until its
outcome is durably written, so an outage of the database delays completions but loses
none: the buffer is retried with backoff until the write succeeds or the run turns out
to have been taken over (the write is fenced and reports it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from agentcron.engine.clock import Clock
from agentcron.engine.resilience import StoreHealth, StoreUnavailable, call_store
from agentcron.engine.waiting import Wakeup
from agentcron.models import Outcome
from agentcron.store import FinishResult, Store

log = structlog.get_logger(__name__)


class CompletionWriter:
    def __init__(self, store: Store, clock: Clock, health: StoreHealth, node_id: str, *,
                 batch: int = 1000, linger_s: float = 0.01,
                 on_written: Callable[[list[Outcome], FinishResult], None]) -> None:
        self.store = store
        self.clock = clock
        self.health = health
        self.node_id = node_id
        self.batch = batch
        self.linger_s = linger_s
        self.on_written = on_written
        self._pending: list[Outcome] = []
        self._writing_now = 0  # outcomes taken out of _pending by the write in flight
        self.wakeup = Wakeup()
        self._retry = Wakeup()
        # One batch written at a time, by the loop or by a drain's flush: flush() returns
        # only once no write is in flight, so the drain's release (next) never runs while a
        # finish on the same run rows has not committed (the two would deadlock).
        self._writing = asyncio.Lock()

    def submit(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self.wakeup.set()

    @property
    def pending(self) -> int:
        """Outcomes not yet durably written, those of a write in flight included: a drain
        that saw 0 while the loop's batch was still committing would release those runs
        first, and the late write would then be fenced (the outcome lost, the run rerun)."""
        return len(self._pending) + self._writing_now

    def run_once(self, outcomes: list[Outcome]) -> FinishResult:
        result = self.store.finish(self.node_id, outcomes, self.clock.store_now())
        fenced = set(result.fenced)
        for outcome in outcomes:
            if outcome.run_id in fenced:
                log.warning("completion_fenced", run_id=outcome.run_id, lease=outcome.lease,
                            node_id=self.node_id,
                            reason="the run was cancelled or taken over; outcome discarded")
        return result

    async def flush(self) -> None:
        """Write everything pending now, and wait for a write in flight (drain uses this)."""
        while self._pending:
            await self._write_batch()
        async with self._writing:
            pass

    async def _write_batch(self) -> None:
        async with self._writing:
            if self._pending:
                await self._write_pending()

    async def _write_pending(self) -> None:
        outcomes, self._pending = self._pending[: self.batch], self._pending[self.batch :]
        self._writing_now = len(outcomes)
        try:
            result = await call_store(self.health, "finish", self.run_once, outcomes)
        except StoreUnavailable as exc:
            self._put_back(outcomes)
            # Its own wake-up: new completions keep arriving during an outage and must not
            # cut the backoff short; the store answering again does.
            await self.health.backoff(self._retry, exc.retry_in_s)
            return
        except Exception:
            self._put_back(outcomes)
            log.exception("completion_write_failed", count=len(outcomes))
            await asyncio.sleep(1.0)
            return
        finally:
            self._writing_now = 0
        self.on_written(outcomes, result)

    def _put_back(self, outcomes: list[Outcome]) -> None:
        """A write that failed: its outcomes are pending again, ahead of newer ones (and
        no longer counted as in flight, before the backoff that follows)."""
        self._pending[:0] = outcomes
        self._writing_now = 0

    async def loop(self, stopping: Callable[[], bool]) -> None:
        while not stopping() or self._pending:
            if not self._pending:
                await self.wakeup.wait(0.5)
                continue
            if len(self._pending) < self.batch and self.linger_s:
                # A short linger turns a burst of completions into one statement.
                await asyncio.sleep(self.linger_s)
            await self._write_batch()
