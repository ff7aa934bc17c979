"""Ticker: turns due triggers into runs. It sleeps until the earliest next fire time (less
the lookahead), a notification, or the poll interval, whichever is first; never on a fixed
long loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog

from agentcron.engine.clock import Clock, StoreTimeline
from agentcron.engine.loop import Service
from agentcron.engine.resilience import StoreHealth, call_store
from agentcron.rules.routing import Routing
from agentcron.store import FireResult, Store

log = structlog.get_logger(__name__)

#: Due rows a full node still reads beyond its free slots: the runs it would not start
#: (jittered, skipped, limited by their agent) fire anyway, and it learns it is full.
HOLD_PROBE = 16


class Ticker(Service):
    name = "ticker"

    def __init__(self, store: Store, clock: Clock, health: StoreHealth, *, batch: int,
                 poll_interval_s: float, on_fired: Callable[[FireResult, float], None],
                 claim_for: Callable[[], tuple[str, int] | None] = lambda: None,
                 lookahead_s: float = 0.0, timeline: StoreTimeline | None = None,
                 routing: Routing | None = None, max_slots: int | None = None) -> None:
        """``routing``: the agents whose fresh runs this node claims as it fires them.
        ``max_slots``: the node's slots (``max_inflight``); a full node fires again once a
        quarter of the smaller of that and ``batch`` is free."""
        super().__init__(health, interval_s=poll_interval_s)
        self.routing = routing
        self.store = store
        self.clock = clock
        self.batch = batch
        self.on_fired = on_fired
        self.claim_for = claim_for
        self.lookahead_s = lookahead_s
        self.timeline = timeline or StoreTimeline()
        self.waiting_for_slots = False
        self.refire_slots = max(1, min(batch, max_slots or batch) // 4)

    def slots_freed(self, free: int) -> None:
        """The dispatcher has ``free`` slots: a ticker that held fires back for want of
        slots fires again once a useful batch fits (``refire_slots``), so an overloaded
        node fires in batches, not one statement per finished run."""
        if self.waiting_for_slots and self._worth_firing(free):
            self.waiting_for_slots = False
            self.wakeup.set()

    def _worth_firing(self, free: int) -> bool:
        return free >= self.refire_slots

    def _lookahead(self) -> float:
        """Fire ahead only on the database's clock, once this node knows where that clock
        is (a run fired ahead waits for its time on it)."""
        if self.clock.store_now() is None and self.timeline.known:
            return self.lookahead_s
        return 0.0

    def run_once(self, now: datetime | None = None) -> list[FireResult]:
        """Fire every trigger due at ``now`` (default: the clock's), batch after batch
        until a batch comes back short. Claims nothing: the runs stay queued."""
        results = []
        while True:
            since = self.clock.monotonic()
            result = self.store.fire_due(now or self.clock.store_now(), self.batch)
            results.append(result)
            self._report(result, since)
            if not result.full:
                return results

    def _report(self, result: FireResult, since: float) -> None:
        """Log what a batch fired and hand it, with when (monotonic) its call was made, to
        ``on_fired``."""
        for broken in result.broken:
            # Quarantined by the store in the batch that failed to plan it; it stays out
            # of firing until a user resumes or updates it.
            log.error("trigger_quarantined", trigger_id=broken.trigger_id,
                      agent=broken.agent, reason=broken.reason,
                      fix="change it (PATCH /api/v1/triggers/ID), or fix the cause and "
                          "`agentcron triggers resume ID`")
        for missed in result.missed:
            log.warning(
                "fires_missed", trigger_id=missed.trigger_id, agent=missed.agent,
                count=missed.count, first=missed.first, last=missed.last,
                reason="beyond the catch-up window",
            )
        if result.duplicates:
            log.info("fires_deduplicated", count=result.duplicates)
        if result.triggers:
            self.on_fired(result, since)

    def _delay(self, next_due: datetime | None, now: datetime,
               results: list[FireResult]) -> float:
        """How long to sleep after a firing pass: until the next trigger is due less the
        lookahead; at once if more may be ready to fire ahead; never a spin."""
        if next_due is None:
            return self.interval_s
        if any(r.held_back for r in results):
            # At capacity: fire again when slots free up (``slots_freed``), not on a timer.
            # Slots freed while this pass was at the store would not have woken it.
            claim = self.claim_for()
            if claim is not None and self._worth_firing(claim[1]):
                return 0.0
            self.waiting_for_slots = True
            return self.interval_s
        until_due = (next_due - now).total_seconds()
        # Rows selected to fire ahead but left for later fired nothing.
        fired = any(r.triggers > r.left_for_later for r in results)
        lead = self._lookahead()
        if until_due > lead:
            until_due -= lead  # wake to fire ahead
        elif fired and not any(r.left_for_later for r in results):
            until_due = 0.0  # more may be ready to fire ahead now
        # Otherwise what is next is not ours to fire ahead: wait until it is due.
        delay = max(0.0, min(self.interval_s, until_due))
        if delay == 0.0 and not fired:
            # Due but not ours to take (locked by another node mid-batch): don't spin.
            delay = min(self.interval_s, 0.05)
        return delay

    async def step(self) -> float:
        """Fire one batch per store call, reported (and its claimed runs started) on the
        event loop before the next batch is fired, so a large burst is worked on while it
        is still being fired; then sleep until the next fire is due."""
        results: list[FireResult] = []
        self.waiting_for_slots = False
        while not self.stopping():
            claim = self.claim_for()
            # A full node reads (and locks) only about as many due rows as it can start.
            limit = self.batch if claim is None else min(self.batch, claim[1] + HOLD_PROBE)
            since = self.clock.monotonic()
            result = await call_store(self.health, "fire_due", self.store.fire_due,
                                      self.clock.store_now(), limit, claim,
                                      self._lookahead(), self.routing)
            results.append(result)
            self._report(result, since)
            if not result.full:
                break
        next_due, sample = await call_store(self.health, "next_due_at",
                                            self.store.next_due_at)
        if self.clock.store_now() is None:
            self.timeline.observe(*sample)
        return self._delay(next_due, self.clock.store_now() or sample.now, results)
