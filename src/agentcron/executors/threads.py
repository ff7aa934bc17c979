"""Sync calls in a thread pool, their results handed back to the event loop in batches.

``loop.run_in_executor`` wakes the loop once per finished call: each one is a
``call_soon_threadsafe``, one byte written into the loop's self-pipe. At thousands of sync
runs a second, with the loop behind its work, that pipe fills up, and a full pipe is where
a signal's wake-up byte gets dropped. ``ThreadCalls`` runs the same calls in the same pool
but queues each result, and wakes the loop once while the queue is non-empty: the loop
takes every result queued by then in one callback. However many runs finish, at most one
wake-up per loop is pending.

Nor is each call its own pool task: a pool task takes one future, one work item and one
wake-up of a pool thread, and at thousands of short calls a second that hand-off cost more
than the calls (a no-op sync agent: about 140 µs of CPU per run against 50 µs for a no-op
async one; about 105 µs with the queue). Calls wait in one queue instead, and a pool thread
that starts (a taker) takes queued calls one after another until the queue is empty.

Another taker is asked for only when no taker is free to take a waiting call:
- a call is queued while every taker is inside a call;
- or, checked every ``STUCK_AFTER_S`` on the loop while calls wait, calls queued together
  still wait behind one that blocks.

So while the pool has a thread left, a call queued behind calls that block gets a thread
within about 5 ms for each of them, and a burst of short calls is run by one or two
threads. Starting a taker for every call left waiting cost more than it saved: more
threads taking turns at the interpreter lock.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable
from typing import Any

_DROPPED = asyncio.CancelledError("the thread pool dropped this call (shut down)")

#: How long a queued call may wait with every taker inside a call before another is asked
#: for: the most a call queued behind a blocking one waits for a thread the pool has.
STUCK_AFTER_S = 0.005


class _Inbox:
    """Results of one loop's calls, waiting to be handed to their futures."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.done: list[tuple[asyncio.Future[Any], BaseException | None, Any]] = []
        self.scheduled = False
        self.wakeups = 0  # how many times the loop was woken (tests read it)
        self.watching = False  # a ThreadCalls._watch is due on this loop

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


class _Call:
    """One queued call, and where its result goes."""

    __slots__ = ("args", "dropped", "fn", "future", "inbox")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 future: asyncio.Future[Any], inbox: _Inbox) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.inbox = inbox
        self.dropped = False  # its caller was cancelled before a thread took it


class ThreadCalls:
    """Runs sync callables in ``pool``; ``await calls.run(fn, *args)`` from a loop.

    Thread-safe: ``run`` may be awaited from several loops; every queued call is taken by a
    pool thread in the order it was queued, or dropped (its caller cancelled) when the pool
    is shut down with ``cancel_futures``.
    """

    def __init__(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        self._pool = pool
        self._inboxes: dict[asyncio.AbstractEventLoop, _Inbox] = {}
        self._lock = threading.Lock()  # guards everything below, and the inboxes
        self._queue: collections.deque[_Call] = collections.deque()
        self._takers = 0  # pool tasks taking calls from the queue, started or not
        self._free = 0  # of those, the ones not inside a call
        self._closed = False  # the pool dropped a taker: it is shutting down

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
        call = _Call(fn, args, loop.create_future(), self.inbox(loop))
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after the pool shut down")
            self._queue.append(call)
            start = self._free == 0
            if start:
                self._count_taker(+1)
            watch = not call.inbox.watching
            call.inbox.watching = True
        if start:
            self._start_taker()
        if watch:
            loop.call_later(STUCK_AFTER_S, self._watch, call.inbox)
        try:
            return await call.future
        except asyncio.CancelledError:
            call.dropped = True
            raise

    def _watch(self, inbox: _Inbox) -> None:
        """On the loop, while calls are queued: a call still waiting with every taker inside
        a call (one that blocks, say) gets one more taker. Calls queued together while a
        taker was free asked for no other, and would otherwise wait for that call."""
        with self._lock:
            stuck = bool(self._queue) and self._free == 0 and not self._closed
            if stuck:
                self._count_taker(+1)
            inbox.watching = bool(self._queue) and not self._closed
        if stuck:
            with contextlib.suppress(RuntimeError):  # shut down: the queue was dropped
                self._start_taker()
        if inbox.watching:
            inbox.loop.call_later(STUCK_AFTER_S, self._watch, inbox)

    def _count_taker(self, change: int) -> None:
        """Under ``_lock``: a taker is asked for (+1: free until it takes a call) or gone
        (-1: it was free, having left its last call or never started)."""
        self._takers += change
        self._free += change

    def _start_taker(self) -> None:
        try:
            submitted = self._pool.submit(self._take)
        except RuntimeError:  # the pool is shut down: nothing will take what is queued
            self._refused()
            raise
        submitted.add_done_callback(self._check_dropped)

    def _take(self) -> None:
        """In a pool thread: run queued calls until there are none (or the pool closed)."""
        lock, queue = self._lock, self._queue
        while True:
            with lock:
                if not queue or self._closed:
                    self._count_taker(-1)
                    return
                call = queue.popleft()
                if call.dropped:
                    continue
                self._free -= 1
            try:
                value = call.fn(*call.args)
            except BaseException as exc:  # SystemExit in agent code fails the run, too
                call.inbox.put(call.future, exc, None)
            else:
                call.inbox.put(call.future, None, value)
            with lock:
                self._free += 1

    def _check_dropped(self, submitted: concurrent.futures.Future[None]) -> None:
        """A taker the pool dropped unstarted (shut down with ``cancel_futures``): the
        queued calls end their callers, as ``run_in_executor``'s would."""
        if submitted.cancelled():
            self._refused()

    def _refused(self) -> None:
        """A taker the pool will not run (it is shut down): no taker will take the queued
        calls, so each one's caller is cancelled, and later calls are refused."""
        with self._lock:
            self._count_taker(-1)
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
        for call in dropped:
            call.inbox.put(call.future, _DROPPED, None)
