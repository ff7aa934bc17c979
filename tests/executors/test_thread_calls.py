"""Sync calls in the thread pool (``executors/threads.py``): results wake the loop in
batches, a burst of calls takes a few pool tasks rather than one each, a call that blocks
never holds up a queued one while the pool has a thread left, and cancellation and a pool
shut down end their callers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import pytest

from agentcron.executors.threads import ThreadCalls
from tests.support.helpers import await_until, wait_until


class CountingPool(concurrent.futures.ThreadPoolExecutor):
    """A real pool that counts the tasks it is given."""

    submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
               ) -> concurrent.futures.Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def test_sync_calls_wake_the_loop_once_per_batch_not_once_per_call() -> None:
    """2,000 sync calls that finish while the loop is busy elsewhere come back with a few
    wake-ups, not 2,000 (each would be a byte in the self-pipe)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    calls = ThreadCalls(pool)
    lock = threading.Lock()
    finished = 0

    def work(i: int) -> int:
        nonlocal finished
        with lock:
            finished += 1
        return i * 2

    async def main() -> tuple[list[int], int]:
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(calls.run(work, i)) for i in range(2000)]
        await asyncio.sleep(0)  # one pass of the loop: every call submitted
        # The loop stays busy (blocked here) until every call has finished in its thread.
        wait_until(lambda: finished == 2000, message="every call to finish")
        results = await asyncio.gather(*tasks)
        return results, calls.inbox(loop).wakeups

    try:
        results, wakeups = asyncio.run(main())
    finally:
        pool.shutdown()
    assert results == [i * 2 for i in range(2000)]
    assert wakeups <= 5


def test_sync_call_errors_and_cancellation_reach_the_caller() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    calls = ThreadCalls(pool)
    gate = threading.Event()
    ran: list[str] = []

    def fail() -> None:
        raise SystemExit(3)

    async def main() -> None:
        with pytest.raises(SystemExit):
            await calls.run(fail)
        blocker = asyncio.create_task(calls.run(gate.wait))
        queued = asyncio.create_task(calls.run(lambda: ran.append("never")))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.set()
        assert await blocker is True
        # Taken by the same thread, after the blocker: a later call runs, the cancelled
        # one never does.
        assert await calls.run(lambda: ran.append("later")) is None
        assert ran == ["later"]
        # A pool shut down with calls still queued ends their callers (cancelled).
        gate.clear()
        started = threading.Event()

        def hold() -> bool:
            started.set()
            return gate.wait()

        running = asyncio.create_task(calls.run(hold))
        await asyncio.sleep(0)
        wait_until(started.is_set, message="the first call to run")
        dropped = asyncio.create_task(calls.run(lambda: "dropped"))
        await asyncio.sleep(0)
        pool.shutdown(wait=False, cancel_futures=True)
        with pytest.raises(asyncio.CancelledError):
            await dropped
        gate.set()
        assert await running is True

    asyncio.run(main())


def test_a_burst_of_calls_takes_two_pool_tasks_not_one_each() -> None:
    """2,000 calls queued behind one that blocks: the blocked taker, and one more asked for
    when the burst began (it found every taker inside a call), run them all. One pool task
    per call was the hand-off that cost a no-op sync agent 100 µs a run."""
    pool = CountingPool(max_workers=1)
    calls = ThreadCalls(pool)
    gate = threading.Event()

    async def main() -> list[Any]:
        blocker = asyncio.create_task(calls.run(gate.wait))
        await asyncio.sleep(0)
        burst = [asyncio.create_task(calls.run(lambda i=i: i * 2)) for i in range(2000)]
        await asyncio.sleep(0)  # one pass of the loop: every call queued
        gate.set()
        assert await blocker is True
        return list(await asyncio.gather(*burst))

    try:
        results = asyncio.run(main())
    finally:
        pool.shutdown()
    assert results == [i * 2 for i in range(2000)]
    assert pool.submitted == 2


def test_a_call_that_blocks_does_not_hold_up_a_queued_one() -> None:
    """With a thread left in the pool, a call queued behind a blocked one runs at once."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    calls = ThreadCalls(pool)
    gate = threading.Event()
    started = threading.Event()

    def hold() -> bool:
        started.set()
        return gate.wait(30)

    async def main() -> None:
        blocked = asyncio.create_task(calls.run(hold))
        await await_until(started.is_set, timeout=10, message="the blocking call to start")
        assert await asyncio.wait_for(calls.run(lambda: "next"), 10) == "next"
        assert not blocked.done()
        gate.set()
        assert await blocked is True

    try:
        asyncio.run(main())
    finally:
        gate.set()
        pool.shutdown()


def test_calls_queued_together_that_block_run_side_by_side() -> None:
    """Three calls queued in one pass, each waiting for the other two: one taker was asked
    for when they were queued, and each call it takes with others still waiting asks for
    one more, so all three run at once (with one taker they would wait for each other until
    the barrier broke)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
    # Its three threads started and idle, so queueing a call never waits for a new thread
    # to start (which would let the first taker take its call before the others queue).
    warm = threading.Barrier(3, timeout=20)
    for done in [pool.submit(warm.wait) for _ in range(3)]:
        done.result()
    calls = ThreadCalls(pool)
    barrier = threading.Barrier(3, timeout=20)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*[calls.run(barrier.wait) for _ in range(3)]))

    try:
        arrivals = asyncio.run(main())
    finally:
        barrier.abort()
        pool.shutdown()
    assert sorted(arrivals) == [0, 1, 2]

