"""The one supervisor of a node's loops (README guarantee 6: no input stops the node).

Every loop of a node (ticker, dispatcher, completion writer, heartbeat, sweeper, pruner,
listener) runs under ``Supervisor.run``. A store outage never ends a loop (the loop base
backs off by itself, ``engine/loop.py``); anything else that escapes a loop is a crash:

- it is logged with its exception and traceback (``loop_crashed``) and counted in
  ``agentcron_loop_crashes_total{loop}`` (``EngineMetrics.loop_crashes``);
- the loop is down until it is restarted: ``down()`` names it (``/readyz`` answers 503 and
  the dashboard's overview shows this node unhealthy while any loop is down);
- it is restarted after a back-off: ``RestartPolicy.first_s`` doubled per crash in a row, at
  most ``max_s``; a loop that then ran ``healthy_after_s`` without crashing starts again
  from ``first_s``.

A loop that returns normally (it was asked to stop) is not restarted, nor is one whose
``stopping()`` became true while it was down: the drain waits for some loops to end (the
heartbeat), and must not wait out a back-off of up to ``max_s`` for a loop that would stop
at once. Cancelling the task ends supervision at once, also during a back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from agentcron.engine.loop import Signal
from agentcron.engine.metrics import EngineMetrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """How long a crashed loop stays down before its restart, in seconds."""

    first_s: float = 0.5
    max_s: float = 30.0
    #: A loop that ran this long since its last restart is healthy: the back-off resets.
    healthy_after_s: float = 60.0

    def delay(self, crashes_in_a_row: int) -> float:
        """The back-off before the restart that follows the ``crashes_in_a_row``-th crash
        (1 for the first)."""
        return float(min(self.max_s, self.first_s * 2 ** max(0, crashes_in_a_row - 1)))


@dataclass(frozen=True)
class LoopDown:
    """A loop that crashed and is not running yet: the error (one line) and when."""

    loop: str
    error: str
    since: datetime
    restart_in_s: float


class SupervisorSignals:
    """Test signals: ``crashed`` with each ``LoopDown``, ``restarted`` with the loop's
    name when it runs again."""

    def __init__(self) -> None:
        self.crashed: Signal[LoopDown] = Signal()
        self.restarted: Signal[str] = Signal()

    def init(self) -> None:
        self.crashed.init()
        self.restarted.init()


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for logs, listings and health answers."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class Supervisor:
    def __init__(self, node_id: str, monotonic: Callable[[], float],
                 metrics: EngineMetrics | None = None,
                 policy: RestartPolicy | None = None) -> None:
        self.node_id = node_id
        self.metrics = metrics
        self.policy = policy or RestartPolicy()
        self._monotonic = monotonic
        self._down: dict[str, LoopDown] = {}
        self._woken = asyncio.Event()
        self.test_signals = SupervisorSignals()

    def down(self) -> list[LoopDown]:
        """The loops that crashed and have not been restarted yet, by name."""
        return [self._down[name] for name in sorted(self._down)]

    def healthy(self) -> bool:
        return not self._down

    async def run(self, name: str, start: Callable[[], Coroutine[Any, Any, None]],
                  stopping: Callable[[], bool] = lambda: False) -> None:
        """Run ``start()`` until it returns; restart it after each crash (see module doc)
        unless ``stopping()`` is true by then. ``start`` is called again for each restart:
        a coroutine runs only once."""
        crashes = 0
        while True:
            started = self._monotonic()
            try:
                await start()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._monotonic() - started >= self.policy.healthy_after_s:
                    crashes = 0
                crashes += 1
                delay = self.policy.delay(crashes)
                down = LoopDown(name, one_line(exc), datetime.now(UTC), delay)
                self._down[name] = down
                log.exception("loop_crashed", loop=name, node_id=self.node_id,
                              error=down.error, crashes_in_a_row=crashes, restart_in_s=delay)
                if self.metrics is not None:
                    self.metrics.loop_crashes.labels(loop=name).inc()
                self.test_signals.crashed.signal(down)
            try:
                await self._back_off(delay, stopping)
            finally:
                # Cancelled while down (a drain): the loop is not coming back either way.
                self._down.pop(name, None)
            if stopping():
                log.info("loop_not_restarted", loop=name, node_id=self.node_id,
                         reason="stopping")
                return
            log.info("loop_restarted", loop=name, node_id=self.node_id)
            self.test_signals.restarted.signal(name)

    def wake(self) -> None:
        """A stop condition changed (the node calls this as its drain proceeds): every loop
        that is down looks at its ``stopping()`` again now."""
        woken, self._woken = self._woken, asyncio.Event()
        woken.set()

    async def _back_off(self, delay: float, stopping: Callable[[], bool]) -> None:
        """Sleep ``delay`` seconds, ending early once ``stopping()`` is true (looked at
        again on each ``wake``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        while not stopping() and (left := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), left)
