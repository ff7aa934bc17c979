"""The loop every periodic service of a node runs: one pass, then a wait that a wake-up
ends early; on a store outage, a back-off that ends as soon as the store answers again.

A service says what one pass does (``step``) and how long to wait after it; the base
owns the rest, so every loop behaves the same way in an outage (README guarantee 5):

- a pass the store cannot serve raises ``StoreUnavailable``; the loop backs off that
  long (exponential in that operation's own failures, at most ``MAX_LOOP_BACKOFF_S``,
  see ``resilience.StoreHealth.failed``);
- a loop backing off is woken the moment any store call succeeds or the LISTEN
  connection is back (``StoreHealth.poke``), and by its own wake-up;
- any other exception ends the loop and reaches whoever runs it (the node logs it).
  Restarting a crashed loop is a supervisor's job: it wraps ``Service.loop`` from the
  outside (``engine/supervisor.py``), the loop itself never swallows a bug.

Tests await a service's ``test_signals`` instead of sleeping (River's test signals):
they are off, and cost one attribute check per pass, until a test calls ``init()``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar

from agentcron.engine.resilience import StoreHealth, StoreUnavailable
from agentcron.engine.waiting import Wakeup

T = TypeVar("T")


class Signal(Generic[T]):
    """One point of a loop a test can wait for. ``signal`` does nothing until ``init``;
    after it, every value is queued and ``wait`` returns them in order."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[T] | None = None

    def init(self) -> None:
        self._queue = asyncio.Queue()

    def signal(self, value: T) -> None:
        if self._queue is not None:
            self._queue.put_nowait(value)

    async def wait(self, timeout: float = 10.0) -> T:
        """The next value signalled; TimeoutError if none comes within ``timeout``."""
        if self._queue is None:
            raise RuntimeError("init() the signal before the loop runs")
        return await asyncio.wait_for(self._queue.get(), timeout)


class LoopSignals:
    """What every service loop signals: ``stepped`` after each pass that ended normally
    (with the wait it chose, None for "again at once"), ``backed_off`` after each pass
    the store could not serve (with the back-off)."""

    def __init__(self) -> None:
        self.stepped: Signal[float | None] = Signal()
        self.backed_off: Signal[float] = Signal()

    def init(self) -> None:
        self.stepped.init()
        self.backed_off.init()


class Service(ABC):
    """A periodic loop of a node. Subclasses set ``name`` (also the name of its task)
    and implement ``step``."""

    name: ClassVar[str]

    def __init__(self, health: StoreHealth, *, interval_s: float) -> None:
        self.health = health
        self.interval_s = interval_s
        #: Set by producers (notifications, local events, drain) to end a wait early.
        self.wakeup = Wakeup()
        self.test_signals = LoopSignals()
        self._stopping: Callable[[], bool] = lambda: False
        #: While true, the loop runs no pass (the node is fenced, ``engine/fence.py``): it
        #: checks again after each wait, which a wake-up ends early.
        self.held: Callable[[], bool] = lambda: False

    @abstractmethod
    async def step(self) -> float | None:
        """One pass. Returns how long to wait before the next one (a wake-up ends the
        wait early), or None to go again at once, after letting other tasks run, and
        without consuming a pending wake-up. Raises ``StoreUnavailable`` when the store
        cannot serve the pass."""

    def backoff_s(self, exc: StoreUnavailable) -> float:
        """How long to back off after ``exc``: by default what the store health says."""
        return exc.retry_in_s

    def stopping(self) -> bool:
        """Whether the loop has been asked to stop (for passes that do several calls)."""
        return self._stopping()

    async def loop(self, stopping: Callable[[], bool]) -> None:
        """Run passes until ``stopping()`` is true when a pass is about to start."""
        self._stopping = stopping
        while not stopping():
            if self.held():
                await self.wakeup.wait(self.interval_s)
                continue
            try:
                delay = await self.step()
            except StoreUnavailable as exc:
                backoff = self.backoff_s(exc)
                self.test_signals.backed_off.signal(backoff)
                await self.health.backoff(self.wakeup, backoff)
                continue
            self.test_signals.stepped.signal(delay)
            if delay is None:
                await asyncio.sleep(0)
            else:
                await self.wakeup.wait(delay)
