"""Pruner: deletes finished runs older than the retention, in bounded batches so it never
holds long locks."""

from __future__ import annotations

from datetime import timedelta

import structlog

from agentcron.engine.clock import Clock
from agentcron.engine.loop import Service
from agentcron.engine.resilience import StoreHealth, call_store
from agentcron.store import Store

log = structlog.get_logger(__name__)

WEBHOOK_DELIVERY_RETENTION = timedelta(hours=1)


class Pruner(Service):
    name = "pruner"

    def __init__(self, store: Store, clock: Clock, health: StoreHealth, *, retention_s: float,
                 interval_s: float, batch: int = 5000,
                 skipped_retention_s: float | None = None) -> None:
        super().__init__(health, interval_s=interval_s)
        self.store = store
        self.clock = clock
        self.retention = timedelta(seconds=retention_s)
        # Skipped runs never go past the general retention (None: no shorter window).
        self.skipped_retention = timedelta(
            seconds=min(retention_s, skipped_retention_s
                        if skipped_retention_s is not None else retention_s))
        self.batch = batch

    def run_once(self) -> int:
        """Delete finished runs older than the retention, then skipped runs older than the
        (shorter) skipped retention; returns how many runs were deleted."""
        now = self.clock.store_now() or self.store.now()
        total = 0
        passes = [(self.store.prune, now - self.retention)]
        if self.skipped_retention < self.retention:
            passes.append((self.store.prune_skipped, now - self.skipped_retention))
        for prune, cutoff in passes:
            while True:
                deleted = prune(cutoff, self.batch)
                total += deleted
                if deleted < self.batch:
                    break
        if total:
            log.info("runs_pruned", count=total, older_than=str(now - self.retention))
        # Webhook delivery ids only matter while their signed timestamp is acceptable
        # (5 minutes); an hour is a wide margin.
        self.store.prune_webhook_deliveries(now - WEBHOOK_DELIVERY_RETENTION)
        # Sent (or given up) alerts are kept as long as runs are.
        self.store.prune_alerts(now - self.retention)
        self.store.prune_pool_starts(now)
        return total

    async def step(self) -> float:
        await call_store(self.health, "prune", self.run_once)
        return self.interval_s
