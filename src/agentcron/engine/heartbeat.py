"""Heartbeat: proves this node is alive (one statement per beat, however many runs it
holds) and learns which of its runs are no longer its own."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from agentcron.engine.attempt import Attempt
from agentcron.engine.clock import Clock
from agentcron.engine.loop import Service
from agentcron.engine.resilience import StoreHealth, StoreUnavailable, call_store
from agentcron.store import HeartbeatResult, NodeInfo, Store

log = structlog.get_logger(__name__)


class Heartbeat(Service):
    name = "heartbeat"

    def __init__(self, store: Store, clock: Clock, health: StoreHealth, node: NodeInfo, *,
                 interval_s: float, leases: Callable[[], list[Attempt]],
                 revoke: Callable[[Attempt, str], None],
                 on_beat: Callable[[float], None] = lambda sent_at: None) -> None:
        """``on_beat(sent_at)``: told after each beat that succeeded, with the monotonic
        time it was sent (before the store call: the store's stamp is no earlier)."""
        super().__init__(health, interval_s=interval_s)
        self.store = store
        self.clock = clock
        self.node = node
        self.leases = leases
        self.revoke = revoke
        self.on_beat = on_beat

    def run_once(self, leases: list[Attempt] | None = None) -> HeartbeatResult:
        """Beat; if the node row was gone (declared dead during a pause), register again.
        ``leases``: the in-flight attempts, read on the event loop's thread (the loop
        changes that set; this runs in a worker thread)."""
        if leases is None:
            leases = self.leases()
        judged = self.judged(leases)
        result = self.store.heartbeat(self.node.id, list(judged.items()),
                                      self.clock.store_now())
        if not result.known:
            log.warning("node_was_declared_dead", node_id=self.node.id,
                        reason="no heartbeat within the zombie timeout (paused or cut off?); "
                               "registering again, runs taken over meanwhile are abandoned")
            self.store.register_node(self.node, self.clock.store_now())
        return result

    @staticmethod
    def judged(leases: list[Attempt]) -> dict[str, int]:
        """The lease the store is asked about for each run: the newest in flight. (Two
        attempts of one run are in flight together only while the older one's outcome,
        already written, waits to be forgotten, or after a pause made it stale: the
        store's verdict on the newer one is the one that matters.)"""
        newest: dict[str, int] = {}
        for run_id, lease in leases:
            newest[run_id] = max(lease, newest.get(run_id, lease))
        return newest

    def apply(self, leases: list[Attempt], result: HeartbeatResult) -> list[Attempt]:
        """Revoke the attempts the store judged lost; ``leases`` are those the beat sent.
        The store names runs, and it judged the lease sent for each: that attempt, not
        whichever attempt of the run is in flight by now, is revoked. Returns them."""
        judged = self.judged(leases)
        revoked = [Attempt(run_id, judged[run_id]) for run_id in result.revoked
                   if run_id in judged]
        for attempt in revoked:
            self.revoke(attempt, "cancelled or taken over by another node")
        return revoked

    async def beat(self) -> list[Attempt]:
        """One beat off the event loop, then revoke what the store judged lost; returns
        those attempts. Raises StoreUnavailable."""
        leases = self.leases()
        sent_at = self.clock.monotonic()
        result = await call_store(self.health, "heartbeat", self.run_once, leases)
        self.on_beat(sent_at)
        return self.apply(leases, result)

    async def step(self) -> float:
        await self.beat()
        return self.interval_s

    def backoff_s(self, exc: StoreUnavailable) -> float:
        # Never longer than a beat: the zombie timeout counts beats, not back-offs.
        return min(exc.retry_in_s, self.interval_s)
