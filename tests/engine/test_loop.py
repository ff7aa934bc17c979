"""The loop every periodic service of a node runs (``engine.loop.Service``): a pass, a
wait that a wake-up ends early, a capped back-off on store outages that ends as soon as
the store answers again, and test signals to await instead of sleeping."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy.exc import OperationalError

from agentcron.engine.clock import DatabaseClock
from agentcron.engine.heartbeat import Heartbeat
from agentcron.engine.loop import Service, Signal
from agentcron.engine.resilience import (
    MAX_LOOP_BACKOFF_S,
    StoreHealth,
    StoreUnavailable,
    call_store,
)
from agentcron.store import NodeInfo, Store


def _down() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("connection refused"))


class _Scripted(Service):
    """Each pass takes the next action: "ok" (a store call that succeeds), "down" (one
    that fails to connect), "again" (go again at once), "bug" (a bug in the pass)."""

    name = "scripted"

    def __init__(self, health: StoreHealth, actions: list[str], interval_s: float = 60.0
                 ) -> None:
        super().__init__(health, interval_s=interval_s)
        self.actions = actions
        self.passes = 0

    async def step(self) -> float | None:
        self.passes += 1
        action = self.actions.pop(0) if self.actions else "ok"
        if action == "bug":
            raise ValueError("a bug in a pass")
        if action == "again":
            return None
        await call_store(self.health, "scripted", self._call, action == "down")
        return self.interval_s

    @staticmethod
    def _call(down: bool) -> None:
        if down:
            raise _down()


def test_a_wakeup_ends_the_wait_after_a_pass() -> None:
    async def main() -> list[float | None]:
        service = _Scripted(StoreHealth(time.monotonic), [])
        service.test_signals.init()
        task = asyncio.create_task(service.loop(lambda: False))
        waits = [await service.test_signals.stepped.wait()]  # now waiting 60 s
        service.wakeup.set()
        waits.append(await service.test_signals.stepped.wait())
        task.cancel()
        return waits

    assert asyncio.run(main()) == [60.0, 60.0]


def test_again_at_once_keeps_a_pending_wakeup() -> None:
    """A pass that asks to go again (the dispatcher after a full claim) does not consume a
    wake-up that arrived meanwhile: the pass after it does not wait out its interval."""

    async def main() -> tuple[list[float | None], int]:
        service = _Scripted(StoreHealth(time.monotonic), ["again", "ok", "ok"])
        service.test_signals.init()
        service.wakeup.set()
        task = asyncio.create_task(service.loop(lambda: False))
        waits = [await service.test_signals.stepped.wait() for _ in range(3)]
        passes = service.passes
        task.cancel()
        return waits, passes

    assert asyncio.run(main()) == ([None, 60.0, 60.0], 3)


def test_a_loop_backing_off_tries_again_when_another_loop_gets_through() -> None:
    async def main() -> list[float]:
        health = StoreHealth(time.monotonic)
        for _ in range(10):  # a long outage: this operation's back-off is at its cap
            health.failed("scripted", _down())
        service = _Scripted(health, ["down", "down"])
        service.test_signals.init()
        task = asyncio.create_task(service.loop(lambda: False))
        backoffs = [await service.test_signals.backed_off.wait()]
        health.ok("heartbeat")  # another loop got through: try now, not in 5-10 s
        backoffs.append(await service.test_signals.backed_off.wait(timeout=2.0))
        health.poke()  # the LISTEN connection is back: the same
        assert await service.test_signals.stepped.wait(timeout=2.0) == 60.0
        task.cancel()
        return backoffs

    first, second = asyncio.run(main())
    assert MAX_LOOP_BACKOFF_S / 2 <= first <= MAX_LOOP_BACKOFF_S
    assert second <= 0.5  # the failure count started again when the store answered


def test_the_loop_backoff_is_capped() -> None:
    health = StoreHealth(time.monotonic)
    delays = [health.failed("claim_runs", _down()) for _ in range(50)]
    assert max(delays) <= MAX_LOOP_BACKOFF_S
    assert delays[-1] >= MAX_LOOP_BACKOFF_S / 2


def test_a_service_may_cap_its_own_backoff(sqlite_store: Store) -> None:
    """The heartbeat backs off at most one beat: its zombie timeout counts beats."""
    beat = Heartbeat(sqlite_store, DatabaseClock(), StoreHealth(time.monotonic),
                     NodeInfo("n1", "h", 1, "t", 30), interval_s=0.5, leases=list,
                     revoke=lambda attempt, reason: None)
    assert beat.backoff_s(StoreUnavailable("heartbeat", 8.0)) == 0.5
    assert beat.backoff_s(StoreUnavailable("heartbeat", 0.2)) == 0.2


def test_a_bug_ends_the_loop_and_reaches_its_runner() -> None:
    """Only store outages are absorbed; a crash is for the supervisor to see."""

    async def main() -> None:
        service = _Scripted(StoreHealth(time.monotonic), ["ok", "bug"])
        service.wakeup.set()
        await asyncio.wait_for(service.loop(lambda: False), 5.0)

    with pytest.raises(ValueError, match="a bug in a pass"):
        asyncio.run(main())


def test_the_loop_stops_before_a_pass() -> None:
    async def main() -> int:
        service = _Scripted(StoreHealth(time.monotonic), ["again", "again", "again"])
        await asyncio.wait_for(service.loop(lambda: service.passes >= 2), 5.0)
        return service.passes

    assert asyncio.run(main()) == 2


def test_a_signal_is_silent_until_a_test_inits_it() -> None:
    async def main() -> list[int]:
        signal: Signal[int] = Signal()
        signal.signal(1)  # nobody listens: dropped
        signal.init()
        signal.signal(2)
        signal.signal(3)
        return [await signal.wait(), await signal.wait()]

    assert asyncio.run(main()) == [2, 3]
