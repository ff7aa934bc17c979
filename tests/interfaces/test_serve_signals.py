"""The first SIGTERM starts the drain whatever the load (guarantee 4): a loop whose
self-pipe is full of ``call_soon_threadsafe`` wake-ups still gets the signal; a second
signal exits at once. And a sync agent's finished runs wake the loop in batches."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable

import pytest

from agentcron.executors.threads import ThreadCalls
from agentcron.server import install_stop_signals
from tests.support.helpers import await_until, wait_until
from tests.support.procs import REPO


def _self_pipe_full(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the loop's self-pipe (CPython's ``_csock``, which ``call_soon_threadsafe``
    and ``add_signal_handler``'s wake-up fd both write to) takes no more bytes."""
    try:
        loop._csock.send(b"\0")  # type: ignore[attr-defined]
    except BlockingIOError:
        return True
    return False


def _fill_self_pipe_then_signal(loop: asyncio.AbstractEventLoop) -> int:
    """Block the loop (as a node behind its work does), fill its self-pipe from a worker
    thread with ``call_soon_threadsafe`` calls, then send this process SIGTERM. Returns how
    many calls it took."""
    sent = 0

    def flood() -> None:
        nonlocal sent
        while not _self_pipe_full(loop) and sent < 10_000_000:
            for _ in range(1000):
                loop.call_soon_threadsafe(lambda: None)
            sent += 1000

    thread = threading.Thread(target=flood)
    thread.start()
    thread.join()
    assert _self_pipe_full(loop), "the self-pipe did not fill up"
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # the loop stays blocked a moment after the signal, as under load
    return sent


def _with_add_signal_handler(loop: asyncio.AbstractEventLoop,
                             on_first: Callable[[int], None]) -> Callable[[], None]:
    """How the node installed its handlers before: kept here to show the scenario loses
    the signal with it."""
    loop.add_signal_handler(signal.SIGTERM, on_first, signal.SIGTERM)
    return lambda: loop.remove_signal_handler(signal.SIGTERM)


def _install_ours(loop: asyncio.AbstractEventLoop,
                  on_first: Callable[[int], None]) -> Callable[[], None]:
    return install_stop_signals(loop, on_first, "test-node")


@pytest.mark.parametrize("install", [
    _install_ours,
    pytest.param(_with_add_signal_handler, marks=[
        pytest.mark.xfail(strict=True, reason="the signal's byte is dropped by the full "
                                              "self-pipe"),
        # CPython reports the dropped byte as an unraisable BlockingIOError: expected here.
        pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]),
], ids=["install_stop_signals", "add_signal_handler"])
def test_the_first_signal_starts_the_drain_when_the_self_pipe_is_full(
        install: Callable[[asyncio.AbstractEventLoop, Callable[[int], None]],
                          Callable[[], None]]) -> None:
    received: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_first(signum: int) -> None:
            received.append(signum)
            stop.set()

        restore = install(loop, on_first)
        try:
            blocked = loop.create_future()
            loop.call_soon(lambda: blocked.set_result(_fill_self_pipe_then_signal(loop)))
            assert await blocked > 0
            await await_until(stop.is_set, timeout=3.0,
                              message="the drain to start after one SIGTERM")
        finally:
            restore()

    asyncio.run(main())
    assert received == [signal.SIGTERM]


_TWO_SIGNALS = textwrap.dedent("""
    import asyncio, os, signal, sys
    from agentcron.server import install_stop_signals

    async def main():
        loop = asyncio.get_running_loop()
        first = asyncio.Event()
        install_stop_signals(loop, lambda signum: first.set(), "n1")
        os.kill(os.getpid(), signal.SIGTERM)
        await first.wait()
        print("drain started", flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.Event().wait()  # a drain that never ends

    asyncio.run(main())
""")


def test_a_second_signal_exits_at_once_even_if_the_drain_hangs() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    proc = subprocess.run([sys.executable, "-c", _TWO_SIGNALS], capture_output=True,
                          text=True, timeout=60, env=env)
    assert proc.stdout.strip() == "drain started"
    assert proc.returncode == 1, proc.stderr
    assert '"event": "second_signal"' in proc.stderr


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

    def fail() -> None:
        raise SystemExit(3)

    async def main() -> None:
        with pytest.raises(SystemExit):
            await calls.run(fail)
        blocker = asyncio.create_task(calls.run(gate.wait))
        queued = asyncio.create_task(calls.run(lambda: "never"))
        await asyncio.sleep(0)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        gate.set()
        assert await blocker is True
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
