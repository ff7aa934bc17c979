"""Heartbeat: proves this node is alive (one statement per beat, however many runs it
holds) and learns which of its runs are no longer its own."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from agentcron.engine.clock import Clock
from agentcron.engine.resilience import StoreHealth, StoreUnavailable, call_store
from agentcron.engine.waiting import Wakeup
from agentcron.store import HeartbeatResult, NodeInfo, Store

log = structlog.get_logger(__name__)


class Heartbeat:
    def __init__(self, store: Store, clock: Clock, health: StoreHealth, node: NodeInfo, *,
                 interval_s: float, leases: Callable[[], list[tuple[str, int]]],
                 revoke: Callable[[str, str], None]) -> None:
        self.store = store
        self.clock = clock
        self.health = health
        self.node = node
        self.interval_s = interval_s
        self.leases = leases
        self.revoke = revoke
        self.wakeup = Wakeup()
        self.last_beat: float | None = None

    def run_once(self, leases: list[tuple[str, int]] | None = None) -> HeartbeatResult:
        """Beat; if the node row was gone (declared dead during a pause), register again.
        ``leases``: the in-flight runs, read on the event loop's thread (the loop changes
        that set; this runs in a worker thread)."""
        if leases is None:
            leases = self.leases()
        result = self.store.heartbeat(self.node.id, leases, self.clock.store_now())
        if not result.known:
            log.warning("node_was_declared_dead", node_id=self.node.id,
                        reason="no heartbeat within the zombie timeout (paused or cut off?); "
                               "registering again, runs taken over meanwhile are abandoned")
            self.store.register_node(self.node, self.clock.store_now())
        return result

    def apply(self, result: HeartbeatResult) -> None:
        for run_id in result.revoked:
            self.revoke(run_id, "cancelled or taken over by another node")

    async def loop(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            try:
                result = await call_store(self.health, "heartbeat", self.run_once,
                                          self.leases())
            except StoreUnavailable as exc:
                await self.health.backoff(self.wakeup, min(exc.retry_in_s, self.interval_s))
                continue
            self.last_beat = self.clock.monotonic()
            self.apply(result)
            await self.wakeup.wait(self.interval_s)
