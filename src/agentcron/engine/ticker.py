"""Ticker: turns due triggers into runs. It sleeps until the earliest next fire time, a
notification, or the poll interval, whichever is first; never on a fixed long loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from agentcron.engine.clock import Clock
from agentcron.engine.resilience import StoreHealth, StoreUnavailable, call_store
from agentcron.engine.waiting import Wakeup
from agentcron.store import FireResult, Store

log = structlog.get_logger(__name__)


class Ticker:
    def __init__(self, store: Store, clock: Clock, health: StoreHealth, *, batch: int,
                 poll_interval_s: float, on_fired: Callable[[FireResult], None],
                 claim_for: Callable[[], tuple[str, int] | None] = lambda: None) -> None:
        self.store = store
        self.clock = clock
        self.health = health
        self.batch = batch
        self.poll_interval_s = poll_interval_s
        self.on_fired = on_fired
        self.claim_for = claim_for
        self.wakeup = Wakeup()

    def run_once(self, now: datetime | None = None) -> list[FireResult]:
        """Fire every trigger due at ``now`` (default: the clock's), batch after batch
        until a batch comes back short. Claims nothing: the runs stay queued."""
        results = []
        while True:
            result = self.store.fire_due(now or self.clock.store_now(), self.batch)
            results.append(result)
            self._report(result)
            if not result.full:
                return results

    def _report(self, result: FireResult) -> None:
        for missed in result.missed:
            log.warning(
                "fires_missed", trigger_id=missed.trigger_id, agent=missed.agent,
                count=missed.count, first=missed.first, last=missed.last,
                reason="beyond the catch-up window",
            )
        if result.duplicates:
            log.info("fires_deduplicated", count=result.duplicates)
        if result.triggers:
            self.on_fired(result)

    async def loop(self, stopping: Callable[[], bool]) -> None:
        """One batch per step, reported (and its claimed runs started) on the event loop
        before the next batch is fired, so a large burst is worked on while it is still
        being fired."""
        while not stopping():
            try:
                results: list[FireResult] = []
                while not stopping():
                    result = await call_store(self.health, "fire_due", self.store.fire_due,
                                              self.clock.store_now(), self.batch,
                                              self.claim_for())
                    results.append(result)
                    self._report(result)
                    if not result.full:
                        break
                next_due, store_now = await call_store(self.health, "next_due_at",
                                                       self.store.next_due_at)
            except StoreUnavailable as exc:
                await self.health.backoff(self.wakeup, exc.retry_in_s)
                continue
            delay = self.poll_interval_s
            if next_due is not None:
                now = self.clock.store_now() or store_now
                delay = max(0.0, min(delay, (next_due - now).total_seconds()))
                if delay == 0.0 and not any(r.triggers for r in results):
                    # Due but not ours to take (locked by another node mid-batch): don't spin.
                    delay = min(self.poll_interval_s, 0.05)
            await self.wakeup.wait(delay)
