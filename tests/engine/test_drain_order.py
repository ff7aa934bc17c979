"""The drain's order on one node: ``release`` runs only after the node's last ``finish``
has committed. A completion batch in flight when the drain flushes is waited for (the two
statements change the same running rows, and on PostgreSQL they deadlocked)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

from agentcron.engine.clock import DatabaseClock
from agentcron.engine.completions import CompletionWriter
from agentcron.engine.resilience import StoreHealth
from agentcron.models import Outcome, RunStatus
from agentcron.store import FinishResult, NodeInfo, Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, wait_until


class GatedWriter(CompletionWriter):
    """The real writer and store; its write waits at a gate, as a slow commit does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def run_once(self, outcomes: list[Outcome]) -> FinishResult:
        self.entered.set()
        self.gate.wait(30)
        return super().run_once(outcomes)


def test_flush_waits_for_the_batch_in_flight_before_release(store: Store) -> None:
    add_agent(store, now=T0)
    add_trigger(store, T0, every="1h", overlap="allow")
    at = T0 + timedelta(hours=1)
    store.fire_due(at)
    store.register_node(NodeInfo("n1", "h", 1, "t", 30), at)
    [run] = store.claim_runs("n1", 1, at)

    class Clock(DatabaseClock):
        def store_now(self):  # type: ignore[no-untyped-def]
            return at

    async def main() -> list[str]:
        writer = GatedWriter(store, Clock(), StoreHealth(time.monotonic), "n1",
                             on_written=lambda outcomes, result: None)
        loop_task = asyncio.create_task(writer.loop(lambda: True))
        writer.submit(Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED, output="done"))
        await asyncio.to_thread(wait_until, writer.entered.is_set, 20.0, "a write in flight")
        flushed = asyncio.create_task(writer.flush())
        for _ in range(20):
            await asyncio.sleep(0)
        assert not flushed.done(), "flush returned while a finish was still in flight"
        writer.gate.set()
        await flushed
        released = await asyncio.to_thread(store.release, "n1", at)
        await loop_task
        return released

    assert asyncio.run(main()) == []  # nothing left to release: the outcome was written
    assert store.get_run(run.run_id).status is RunStatus.SUCCEEDED
