"""The node's supervisor: a loop that crashes is logged, counted, reported by /readyz and the
dashboard while it is down, and restarted; the node's other loops keep working meanwhile.

A real node on a real database; the crash is injected by a store whose ``prune`` raises
(a bug in a pass, not an outage), so the pruner's loop crashes on each of its first passes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from agentcron.api.app import create_app
from agentcron.engine.node import Node
from agentcron.engine.supervisor import RestartPolicy
from agentcron.executors import Executors
from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.services.access import Access
from agentcron.store import FireResult, HeartbeatResult, Store
from tests.support.helpers import await_until
from tests.support.nodes import agent_runs, node_settings, python_agent

BASE = "http://node.test"


class CrashingPruneStore(Store):
    """A store whose first ``crashes`` prunes raise a bug (not a connection error)."""

    def __init__(self, url: str, crashes: int) -> None:
        super().__init__(url)
        self.crashes_left = crashes
        self.prunes_ok = 0
        self._lock = threading.Lock()

    def prune(self, before: datetime, limit: int) -> int:
        with self._lock:
            if self.crashes_left > 0:
                self.crashes_left -= 1
                raise RuntimeError("prune blew up\nsecond line not shown")
        deleted = super().prune(before, limit)
        with self._lock:
            self.prunes_ok += 1
        return deleted


def _crashes(node: Node, loop: str) -> float:
    assert node.metrics is not None
    value = node.metrics.registry.get_sample_value("agentcron_loop_crashes_total",
                                                   {"loop": loop})
    return value or 0.0


def test_a_crashed_loop_is_counted_reported_and_restarted_while_others_work(
        store: Store) -> None:
    from agentcron.engine.metrics import EngineMetrics

    python_agent(store, "ok", "tests.support.agents:usage")
    Services(store).add_trigger(TriggerInput(agent="ok", every="1s"))
    _, token = Access(store).create_token("dash", "read")
    crashing = CrashingPruneStore(store.url, crashes=2)

    async def main() -> None:
        node = Node(crashing, node_settings(store, prune_interval_s=0.05), Executors(),
                    metrics=EngineMetrics())
        # Long enough to look at the node while the pruner is down, short enough for a test.
        node.supervisor.policy = RestartPolicy(first_s=1.0, max_s=2.0, healthy_after_s=60.0)
        node.supervisor.test_signals.init()
        app = create_app(store, node.id, metrics=node.metrics, supervisor=node.supervisor)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        await node.start()
        try:
            down = await node.supervisor.test_signals.crashed.wait(timeout=20)
            assert down.loop == "pruner"
            assert down.error == "RuntimeError: prune blew up"
            assert _crashes(node, "pruner") == 1
            ready = await client.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.json()["loops_down"] == ["pruner"]
            assert "loop pruner is down: RuntimeError: prune blew up" in ready.json()["reason"]

            assert await node.supervisor.test_signals.restarted.wait(timeout=10) == "pruner"
            # It crashes again at once: the back-off doubles, and the dashboard says so.
            second = await node.supervisor.test_signals.crashed.wait(timeout=10)
            assert second.restart_in_s == 2.0 and _crashes(node, "pruner") == 2
            await client.post("/login", data={"token": token}, headers={"Origin": BASE})
            page = await client.get("/")
            assert page.status_code == 200
            assert 'id="node-unhealthy"' in page.text and "unhealthy" in page.text
            assert "pruner" in page.text

            assert await node.supervisor.test_signals.restarted.wait(timeout=10) == "pruner"
            await await_until(lambda: crashing.prunes_ok >= 1,
                              message="the restarted pruner to prune")
            assert node.supervisor.healthy() and _crashes(node, "pruner") == 2
            assert (await client.get("/readyz")).status_code == 200
            page = await client.get("/")
            assert 'id="node-unhealthy"' not in page.text
            # The ticker, dispatcher and completion writer never stopped.
            await await_until(lambda: len([r for r in agent_runs(store, "ok")
                                           if r.status is RunStatus.SUCCEEDED]) >= 2,
                              message="runs to keep succeeding")
        finally:
            await client.aclose()
            await node.drain()
            crashing.close()

    asyncio.run(main())


def test_restart_back_off_doubles_up_to_its_cap() -> None:
    policy = RestartPolicy(first_s=0.5, max_s=30.0)
    assert [policy.delay(n) for n in (1, 2, 3, 7, 8, 50)] == [0.5, 1.0, 2.0, 30.0, 30.0, 30.0]


class CrashingBeatStore(Store):
    """A store whose first heartbeat raises a bug."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.crashed = False

    def heartbeat(self, node_id: str, inflight: list[tuple[str, int]],
                  now: datetime | None = None) -> HeartbeatResult:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("beat blew up")
        return super().heartbeat(node_id, inflight, now)


def test_a_drain_does_not_wait_out_the_back_off_of_a_crashed_loop(store: Store) -> None:
    """The drain waits for the heartbeat loop to end; a heartbeat that crashed and is down
    for its back-off must not hold the drain for that long, nor be restarted."""
    crashing = CrashingBeatStore(store.url)

    async def main() -> None:
        node = Node(crashing, node_settings(store), Executors())
        node.supervisor.policy = RestartPolicy(first_s=120.0)
        node.supervisor.test_signals.init()
        await node.start()
        try:
            down = await node.supervisor.test_signals.crashed.wait(timeout=20)
            assert down.loop == "heartbeat" and not node.supervisor.healthy()
            started = time.monotonic()
            await asyncio.wait_for(node.drain(), timeout=30)
            assert time.monotonic() - started < 10
            assert node.supervisor.healthy()
            with pytest.raises(TimeoutError):
                await node.supervisor.test_signals.restarted.wait(timeout=0.01)
        finally:
            crashing.close()

    asyncio.run(main())


class CrashingFireStore(Store):
    """A store whose first ``fire_due`` raises a bug: the ticker's pass, as a poison row
    used to make it."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.crashed = False

    def fire_due(self, *args: Any, **kwargs: Any) -> FireResult:
        if not self.crashed:
            self.crashed = True
            raise ValueError("time data '999-01-01' does not match format")
        return super().fire_due(*args, **kwargs)


def test_a_crashed_ticker_is_restarted_and_firing_goes_on(store: Store) -> None:
    python_agent(store, "ok", "tests.support.agents:usage")
    trigger = Services(store).add_trigger(TriggerInput(agent="ok", every="1s"))
    crashing = CrashingFireStore(store.url)

    async def main() -> None:
        from agentcron.engine.metrics import EngineMetrics

        node = Node(crashing, node_settings(store), Executors(), metrics=EngineMetrics())
        node.supervisor.policy = RestartPolicy(first_s=0.1)
        node.supervisor.test_signals.init()
        await node.start()
        try:
            down = await node.supervisor.test_signals.crashed.wait(timeout=20)
            assert down.loop == "ticker" and _crashes(node, "ticker") == 1
            assert await node.supervisor.test_signals.restarted.wait(timeout=10) == "ticker"
            await await_until(lambda: len([r for r in agent_runs(store, "ok")
                                           if r.trigger_id == trigger.id
                                           and r.status is RunStatus.SUCCEEDED]) >= 2,
                              message="the trigger to fire after the ticker came back")
            assert _crashes(node, "ticker") == 1 and node.supervisor.healthy()
        finally:
            await node.drain()
            crashing.close()

    asyncio.run(main())
