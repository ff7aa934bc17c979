"""What the chaos suite's database scenario found, one focused test each.

- One failure count for all of a node's loops made every loop back off 5-10 s after a few
  seconds' outage, so finished runs sat unwritten long after the database was back.
- The LISTEN reconnection woke the ticker and dispatcher but not the completion writer.
- The sweeper's timeout backstop cancelled runs whose success was still waiting to be
  written, and the success was then fenced: a run that had worked ended ``cancelled``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy.exc import OperationalError

from agentcron.engine.clock import DatabaseClock
from agentcron.engine.completions import CompletionWriter
from agentcron.engine.resilience import StoreHealth
from agentcron.engine.waiting import Wakeup
from agentcron.models import Outcome, RunStatus
from agentcron.store import FinishResult, NodeInfo, Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, await_until


def _down() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("connection refused"))


# -- backoff per operation, woken when the store answers ---------------------------------------


def test_each_operation_backs_off_on_its_own_failures() -> None:
    health = StoreHealth(time.monotonic)
    for _ in range(6):
        health.failed("claim_runs", _down())
    assert health.failed("claim_runs", _down()) >= 5.0  # a long run of failures: long backoff
    assert health.failed("finish", _down()) <= 0.5  # another operation's first failure: short
    health.ok("heartbeat")
    assert health.available and health.failures == 0
    assert health.failed("claim_runs", _down()) <= 0.5  # the outage is over: counts start again


def test_a_loop_backing_off_is_woken_when_the_store_answers_again() -> None:
    async def main() -> tuple[float, float]:
        health = StoreHealth(time.monotonic)
        health.failed("finish", _down())
        waiting = asyncio.create_task(health.backoff(Wakeup(), 30.0))
        await asyncio.sleep(0)  # let it start waiting
        began = time.monotonic()
        health.ok("heartbeat")  # another loop got through
        await asyncio.wait_for(waiting, 5.0)
        woken_after = time.monotonic() - began
        # The LISTEN connection coming back wakes loops backing off too.
        health.failed("finish", _down())
        waiting = asyncio.create_task(health.backoff(Wakeup(), 30.0))
        await asyncio.sleep(0)
        began = time.monotonic()
        health.poke()
        await asyncio.wait_for(waiting, 5.0)
        return woken_after, time.monotonic() - began

    after_ok, after_poke = asyncio.run(main())
    assert after_ok < 1.0 and after_poke < 1.0


class _FlakyStore:
    """Just enough of a Store for the completion writer: ``finish`` fails while ``down``."""

    def __init__(self) -> None:
        self.down = True
        self.attempted = threading.Event()
        self.written: list[Outcome] = []

    def finish(self, node_id: str, outcomes: list[Outcome], now: datetime | None
               ) -> FinishResult:
        self.attempted.set()
        if self.down:
            raise _down()
        self.written.extend(outcomes)
        return FinishResult([o.run_id for o in outcomes], [])


def test_completions_are_written_as_soon_as_the_store_is_back() -> None:
    """The writer had failed for a while (its backoff is now 5-10 s); the moment another loop
    gets through, the pending completion is written, not at the end of that backoff."""

    async def main() -> float:
        health = StoreHealth(time.monotonic)
        for _ in range(6):
            health.failed("finish", _down())
        store = _FlakyStore()
        written = asyncio.Event()
        writer = CompletionWriter(store, DatabaseClock(), health, "node-1",  # type: ignore[arg-type]
                                  on_written=lambda outcomes, result: written.set())
        task = asyncio.create_task(writer.loop(lambda: False))
        writer.submit(Outcome("run-1", 1, RunStatus.SUCCEEDED))
        assert await asyncio.to_thread(store.attempted.wait, 10.0)
        store.down = False
        began = time.monotonic()
        health.ok("heartbeat")
        await asyncio.wait_for(written.wait(), 10.0)
        took = time.monotonic() - began
        task.cancel()
        return took

    assert asyncio.run(main()) < 2.0
    # (before: the writer slept out its own 5-10 s backoff)


# -- a success waiting to be written beats the sweeper's timeout backstop --------------------------


def _running_run(store: Store) -> tuple[str, int, datetime]:
    """One run claimed by node n1 of an agent with a 10 s timeout; (run id, lease, claim)."""
    add_agent(store, now=T0, timeout="10s", zombie_timeout="30s")
    add_trigger(store, T0, every="1h", overlap="allow")
    at = T0 + timedelta(hours=1)
    store.fire_due(at)
    store.register_node(NodeInfo("n1", "h", 1, "t", 30), at)
    [run] = store.claim_runs("n1", 1, at)
    return run.run_id, run.lease, at


def _swept_for_time(store: Store, at: datetime) -> list[str]:
    # The node is alive (it beat), its run is far past its 10 s deadline: the backstop fires.
    later = at + timedelta(seconds=25)
    store.heartbeat("n1", [], later)
    return store.sweep(later, default_zombie_timeout_s=30, timeout_grace_s=5).timed_out


def test_a_success_written_after_the_timeout_backstop_is_kept(store: Store) -> None:
    run_id, lease, at = _running_run(store)
    assert _swept_for_time(store, at) == [run_id]
    assert store.get_run(run_id).status is RunStatus.CANCELLED
    done = store.finish("n1", [Outcome(run_id, lease, RunStatus.SUCCEEDED, output="worked")],
                        at + timedelta(seconds=26))
    assert done.applied == [run_id] and done.fenced == []
    row = store.get_run(run_id)
    assert (row.status, row.output, row.error) == (RunStatus.SUCCEEDED, "worked", None)
    assert row.reason is not None and "after the sweeper had cancelled it" in row.reason


def test_only_a_success_of_the_same_lease_and_node_overrides_it(store: Store) -> None:
    run_id, lease, at = _running_run(store)
    _swept_for_time(store, at)
    later = at + timedelta(seconds=26)
    failed = store.finish("n1", [Outcome(run_id, lease, RunStatus.FAILED, error="boom",
                                         retry_delay_s=1.0)], later)
    other_node = store.finish("n2", [Outcome(run_id, lease, RunStatus.SUCCEEDED)], later)
    other_lease = store.finish("n1", [Outcome(run_id, lease + 1, RunStatus.SUCCEEDED)], later)
    assert failed.fenced == other_node.fenced == other_lease.fenced == [run_id]
    assert store.get_run(run_id).status is RunStatus.CANCELLED


def test_a_run_cancelled_by_hand_stays_cancelled(store: Store) -> None:
    run_id, lease, at = _running_run(store)
    store.cancel_run(run_id, at + timedelta(seconds=1))
    done = store.finish("n1", [Outcome(run_id, lease, RunStatus.SUCCEEDED)],
                        at + timedelta(seconds=2))
    assert done.fenced == [run_id]
    assert store.get_run(run_id).status is RunStatus.CANCELLED


def test_a_run_retried_by_hand_after_the_backstop_is_not_overwritten(store: Store) -> None:
    run_id, lease, at = _running_run(store)
    _swept_for_time(store, at)
    store.retry_run(run_id, at + timedelta(seconds=26))
    done = store.finish("n1", [Outcome(run_id, lease, RunStatus.SUCCEEDED)],
                        at + timedelta(seconds=27))
    assert done.fenced == [run_id]
    assert store.get_run(run_id).status is RunStatus.QUEUED


# -- the sweeper never judges before the nodes could beat again ------------------------------


class _SweepCounter:
    """Just enough of a Store for the sweeper: counts sweeps."""

    def __init__(self) -> None:
        self.sweeps = 0

    def sweep(self, now: datetime | None, **kwargs: float) -> object:
        from agentcron.store import SweepResult

        self.sweeps += 1
        return SweepResult([], [], [], [])


def test_the_sweeper_does_not_sweep_while_the_store_has_not_answered() -> None:
    """Its own backoff ended before any other loop got through: the sweep would have been
    the first call to succeed after the outage, and judged every node dead (CI, PostgreSQL
    restart: a run retried although its node was alive). It waits for another loop to get
    through, then a zombie timeout."""
    from agentcron.engine.sweeper import Sweeper

    async def main() -> tuple[int, int, int]:
        health = StoreHealth(time.monotonic)
        health.failed("sweep", _down())
        store = _SweepCounter()
        sweeper = Sweeper(store, DatabaseClock(), health,  # type: ignore[arg-type]
                          zombie_timeout_s=2.0, interval_s=0.02, timeout_grace_s=1.0)
        task = asyncio.create_task(sweeper.loop(lambda: False))
        await asyncio.sleep(0.2)  # ten sweep intervals: every one of them a chance to sweep
        while_down = store.sweeps
        recovered = time.monotonic()
        health.ok("heartbeat")  # the store is back
        await asyncio.sleep(0.2)
        within_zombie_timeout = store.sweeps if time.monotonic() - recovered < 2.0 else 0
        # Then it sweeps again, once the zombie timeout is over.
        await await_until(lambda: store.sweeps, 10, "a sweep after the zombie timeout")
        task.cancel()
        return while_down, within_zombie_timeout, store.sweeps

    while_down, within, later = asyncio.run(main())
    assert (while_down, within) == (0, 0) and later > 0
