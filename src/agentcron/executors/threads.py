"""Sync calls in a thread pool, their results handed back to the event loop in batches.

``loop.run_in_executor`` wakes the loop once per finished call: each one is a
``call_soon_threadsafe``, one byte written into the loop's self-pipe. At thousands of sync
runs a second, with the loop behind its work, that pipe fills up, and a full pipe is where
a signal's wake-up byte gets dropped. ``ThreadCalls`` runs the same calls in the same pool
but queues each result, and wakes the loop once while the queue is non-empty: the loop
takes every result queued by then in one callback. However many runs finish, at most one
wake-up per loop is pending.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import Any

_DROPPED = asyncio.CancelledError("the thread pool dropped this call (shut down)")


class _Inbox:
    """Results of one loop's calls, waiting to be handed to their futures."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.done: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        self.scheduled = False
        self.wakeups = 0  # how many times the loop was woken (tests read it)

    def put(self, future: asyncio.Future[Any], error: BaseException | None, value: Any) -> None:
        """From a worker thread: queue a result; wake the loop only if it was not already
        going to look."""
        with self.lock:
            self.done.append((future, error, value))
            if self.scheduled:
                return
            self.scheduled = True
            self.wakeups += 1
        # A closed loop raises RuntimeError: nobody waits for these results then.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.deliver)

    def deliver(self) -> None:
        """On the loop: hand every queued result to its future."""
        with self.lock:
            done, self.done = self.done, []
            self.scheduled = False
        for future, error, value in done:
            if future.done():  # cancelled while the call ran: the result is discarded
                continue
            if error is _DROPPED:
                future.cancel()
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)


class ThreadCalls:
    """Runs sync callables in ``pool``; ``await calls.run(fn, *args)`` from a loop."""

    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self._pool = pool
        self._inboxes: dict[asyncio.AbstractEventLoop, _Inbox] = {}
        self._lock = threading.Lock()

    def inbox(self, loop: asyncio.AbstractEventLoop) -> _Inbox:
        with self._lock:
            inbox = self._inboxes.get(loop)
            if inbox is None or inbox.loop.is_closed():
                # Forget the inboxes of loops that are gone (tests run many loops).
                self._inboxes = {lp: box for lp, box in self._inboxes.items()
                                 if not lp.is_closed()}
                inbox = self._inboxes[loop] = _Inbox(loop)
            return inbox

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in a pool thread. Cancelling the caller drops a call that has not
        started; one already running finishes in its thread and its result is discarded."""
        loop = asyncio.get_running_loop()
        inbox = self.inbox(loop)
        future: asyncio.Future[Any] = loop.create_future()

        def work() -> None:
            try:
                value = fn(*args)
            except BaseException as exc:  # SystemExit in agent code fails the run, too
                inbox.put(future, exc, None)
            else:
                inbox.put(future, None, value)

        submitted = self._pool.submit(work)
        # A call the pool drops unstarted (shut down with cancel_futures) still ends its
        # caller, as run_in_executor's would.
        submitted.add_done_callback(
            lambda f: inbox.put(future, _DROPPED, None) if f.cancelled() else None)
        try:
            return await future
        except asyncio.CancelledError:
            submitted.cancel()
            raise
