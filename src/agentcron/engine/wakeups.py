"""``RunsReady``: one process's "a run may be ready" signal, fanned out to every request
waiting in a worker's long poll.

Who signals: the node's PostgreSQL listener (one per process, ``store/notify.py``) on the
``runs`` topic, and this process's own committed writes (``Store.local_listeners``), which is
the only in-process delivery on SQLite. Who waits: each waiting claim takes ``ticket()``
*before* it tries the store, then ``wait(ticket, timeout)``: a signal that arrives between
the attempt and the wait is not lost, because the ticket is the event that signal sets.
Waiters hold no database connection and no thread while they wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time


class RunsReady:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        #: ``time.monotonic()`` of the last signal (for the wake-up latency metric).
        self.signalled_at = 0.0
        #: Set when a listener of the database's notifications feeds this (on PostgreSQL).
        self.fed_by_listener = False

    def ticket(self) -> asyncio.Event:
        """The event the next signal sets; call it in the event loop, before the attempt."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._event is None:
            self._loop, self._event = loop, asyncio.Event()
        return self._event

    def signal(self) -> None:
        """Wake every waiter. Safe from any thread and from the loop itself."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(self._set)

    def on_topic(self, topic: str) -> None:
        """For a notification listener: runs may be ready on ``runs`` (and after a
        reconnection, when one may have been missed)."""
        if topic in ("runs", "reconnected"):
            self.signal()

    def _set(self) -> None:
        self.signalled_at = time.monotonic()
        event, self._event = self._event, asyncio.Event()
        if event is not None:
            event.set()

    @staticmethod
    async def wait(ticket: asyncio.Event, timeout_s: float) -> bool:
        """True when signalled, False after ``timeout_s``."""
        if ticket.is_set():
            return True
        try:
            await asyncio.wait_for(ticket.wait(), timeout=max(0.0, timeout_s))
        except TimeoutError:
            return False
        return True
