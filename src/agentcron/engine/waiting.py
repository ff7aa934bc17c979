"""Waiting for the next thing to do: a timeout or a wake-up, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib


class Wakeup:
    """An edge-triggered wake-up that several producers can set.

    ``wait(timeout)`` returns as soon as ``set()`` has been called since the last wait
    returned, or after ``timeout`` seconds. Notifications, local events and tests use it
    so loops never poll on a fixed long interval and tests never sleep.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float | None) -> bool:
        """True when woken, False on timeout."""
        woken = False
        if timeout is None or timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
                woken = True
        woken = woken or self._event.is_set()
        self._event.clear()
        return woken
