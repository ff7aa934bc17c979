"""Sweeper: recovers runs of silent nodes and cancels runs far past their deadline.

Every node sweeps; the store makes concurrent sweeps safe. After the database comes back
from an outage the sweeper waits one zombie timeout before judging anyone: during the
outage no node could heartbeat, and all of them would otherwise look dead at once. While
the store has not answered since a failure it does not sweep at all: its sweep would be
the first call to get through, judging nodes before anyone could beat again.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from agentcron.engine.clock import Clock
from agentcron.engine.loop import Service
from agentcron.engine.resilience import StoreHealth, StoreUnavailable, call_store
from agentcron.store import Store, SweepResult

log = structlog.get_logger(__name__)


class Sweeper(Service):
    name = "sweeper"

    def __init__(self, store: Store, clock: Clock, health: StoreHealth, *,
                 zombie_timeout_s: float, interval_s: float, timeout_grace_s: float,
                 on_swept: Callable[[SweepResult], None] | None = None) -> None:
        super().__init__(health, interval_s=interval_s)
        self.store = store
        self.clock = clock
        self.zombie_timeout_s = zombie_timeout_s
        self.timeout_grace_s = timeout_grace_s
        self.on_swept = on_swept

    def run_once(self) -> SweepResult:
        result = self.store.sweep(
            self.clock.store_now(), default_zombie_timeout_s=self.zombie_timeout_s,
            timeout_grace_s=self.timeout_grace_s,
        )
        if result.retried or result.failed:
            log.warning("lost_runs_recovered", retried=len(result.retried),
                        failed=len(result.failed), run_ids=(result.retried + result.failed)[:20])
        if result.timed_out:
            log.warning("runs_timed_out", count=len(result.timed_out),
                        run_ids=result.timed_out[:20])
        if result.nodes_removed:
            log.info("dead_nodes_removed", node_ids=result.nodes_removed)
        if self.on_swept is not None:
            self.on_swept(result)
        return result

    async def step(self) -> float:
        if not self.health.available:
            # Back off as if the sweep had failed (without counting it): woken when
            # another loop (the heartbeat, at the latest) gets through.
            raise StoreUnavailable("the store has not answered since it failed",
                                   self.interval_s)
        if self.health.seconds_since_recovery() < self.zombie_timeout_s:
            return self.interval_s
        await call_store(self.health, "sweep", self.run_once)
        return self.interval_s
