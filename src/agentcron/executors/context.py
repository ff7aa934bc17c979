"""``RunContext``: what agent code receives for one attempt of one run.

It carries the run's identity and payload, lets the agent report progress (``heartbeat``) and
token usage (``record_usage``), ask for follow-up runs (``schedule``), and tells it when to
stop (``cancelled`` / ``cancel_event``).
Every method is safe to call from any thread: sync Python agents run in a worker thread while
the engine's event loop owns the run.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from agentcron.executors import follow_ups
from agentcron.models import ClaimedRun, Usage
from agentcron.rules.scheduling import MAX_FOLLOW_UPS

_log: FilteringBoundLogger = structlog.get_logger(__name__)

PROGRESS_LIMIT = 1000
"""Progress strings longer than this are cut: progress is a status line, not output."""


class RunContext:
    """The per-attempt handle agent code uses. Built by the engine, one per attempt.

    ``on_heartbeat`` is the engine's (fenced) progress write. When the context is created
    inside a running event loop, ``on_heartbeat`` is always invoked on that loop's thread, so
    it may touch asyncio objects; calls made from worker threads are handed over with
    ``call_soon_threadsafe`` (in order, without blocking the agent). Created outside a loop,
    it is called directly in the caller's thread, one call at a time.
    """

    def __init__(
        self, run: ClaimedRun, on_heartbeat: Callable[[str | None], None] | None = None,
        clock: Callable[[], datetime] = follow_ups.utc_now,
    ) -> None:
        """``clock``: this host's time, which ``schedule(in_=...)`` counts from."""
        self.run = run
        self._clock = clock
        self._follow_ups: list[dict[str, Any]] | None = None
        # Made on first use (a threading.Event costs a Condition and two locks, and most
        # runs never wait on it): see ``cancel_event``.
        self._cancel_event: threading.Event | None = None
        self._on_heartbeat = on_heartbeat
        #: The last progress line the agent reported, written with the outcome too: a report
        #: still on its way when the attempt ends would otherwise be fenced out by the finish.
        self.progress: str | None = None
        self._lock = threading.Lock()
        self._heartbeat_lock = threading.Lock()
        self._usage = Usage()
        self._cancel_reason: str | None = None
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._log: FilteringBoundLogger | None = None

    @property
    def log(self) -> FilteringBoundLogger:
        """A logger bound with the run's ids (made on first use: most runs never log)."""
        if self._log is None:
            run = self.run
            self._log = _log.bind(run_id=run.run_id, agent=run.agent.name,
                                  trigger_id=run.trigger_id, attempt=run.attempt)
        return self._log

    # -- identity --------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts of the same run: use it to make side effects idempotent."""
        return self.run.run_id

    @property
    def attempt(self) -> int:
        return self.run.attempt

    @property
    def agent(self) -> str:
        """The agent's name."""
        return self.run.agent.name

    @property
    def trigger_id(self) -> str | None:
        """None for a run fired by hand."""
        return self.run.trigger_id

    @property
    def scheduled_for(self) -> datetime:
        return self.run.scheduled_for

    @property
    def deadline_at(self) -> datetime:
        """When the engine cancels this attempt for running too long."""
        return self.run.deadline_at

    @property
    def payload(self) -> Any:
        return self.run.payload

    # -- cancellation ----------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once the run was cancelled, timed out, taken over or the node is draining."""
        return self._cancel_reason is not None

    @property
    def cancel_event(self) -> threading.Event:
        """Set when the run is cancelled (see ``cancelled``): a sync agent can wait on it."""
        event = self._cancel_event
        if event is None:
            with self._lock:
                if self._cancel_event is None:
                    self._cancel_event = threading.Event()
                    if self._cancel_reason is not None:
                        self._cancel_event.set()
                event = self._cancel_event
        return event

    @property
    def cancel_reason(self) -> str | None:
        return self._cancel_reason

    def cancel(self, reason: str) -> None:
        """Ask the agent to stop (engine side). The first reason wins; later calls are no-ops."""
        with self._lock:
            if self._cancel_reason is not None:
                return
            self._cancel_reason = reason
            event = self._cancel_event
        if event is not None:
            event.set()
        self.log.info("run cancel requested", reason=reason)

    # -- progress and usage ----------------------------------------------------------------

    def heartbeat(self, progress: str | None = None) -> None:
        """Report that the agent is alive, optionally with a short progress line.

        Never raises into agent code: a failing ``on_heartbeat`` is logged and dropped, because
        a progress report must not fail the work it reports on.
        """
        if progress is not None:
            progress = str(progress)[:PROGRESS_LIMIT]
            self.progress = progress
        if self._on_heartbeat is None:
            return
        loop = self._loop
        if loop is None or _running_loop() is loop:
            self._deliver(progress)
            return
        try:
            loop.call_soon_threadsafe(self._deliver, progress)
        except RuntimeError:  # the loop is closed: the run is over, nobody listens any more
            self.log.debug("heartbeat dropped, event loop closed")

    def _deliver(self, progress: str | None) -> None:
        assert self._on_heartbeat is not None
        try:
            with self._heartbeat_lock:
                self._on_heartbeat(progress)
        except Exception:
            self.log.exception("heartbeat callback failed")

    def record_usage(
        self,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        model: str | None = None,
    ) -> None:
        """Add token usage and cost to this attempt's total (``usage``). Calls accumulate.

        Raises ``ValueError`` naming the argument for a negative, non-integer or non-finite
        value; nothing is added in that case.
        """
        _check_count("input_tokens", input_tokens)
        _check_count("output_tokens", output_tokens)
        if cost_usd is not None:
            if isinstance(cost_usd, bool) or not isinstance(cost_usd, int | float):
                raise ValueError(f"cost_usd must be a number, got {cost_usd!r}")
            if not math.isfinite(cost_usd) or cost_usd < 0:
                raise ValueError(f"cost_usd must be a finite number >= 0, got {cost_usd!r}")
            cost_usd = float(cost_usd)
        if model is not None and not isinstance(model, str):
            raise ValueError(f"model must be a string, got {model!r}")
        added = Usage(input_tokens, output_tokens, cost_usd, model)
        with self._lock:
            self._usage = self._usage + added

    @property
    def usage(self) -> Usage:
        """Everything recorded so far (a snapshot)."""
        with self._lock:
            return self._usage

    # -- follow-ups ------------------------------------------------------------------------

    def schedule(self, *, at: datetime | str | None = None, in_: str | float | None = None,
                 cron: str | None = None, every: str | float | None = None,
                 tz: str | None = None, payload: Any = None, name: str | None = None,
                 agent: str | None = None) -> None:
        """Ask for a trigger to be created when this run's outcome is written: exactly one of
        ``at`` (an aware datetime or ISO time), ``in_`` (a duration such as ``"20m"``,
        counted from this call), ``cron`` (with ``tz``) or ``every``; ``agent`` defaults to
        this run's agent.

        The trigger is written in the same transaction as the outcome, and only if that
        write is this attempt's (a stale or retried attempt schedules nothing), under the
        target agent's guardrails; a request that is refused there is recorded on the run
        as a ``follow_up_refused`` event, it does not fail the run. Follow-ups are kept
        only from an attempt that succeeds. Raises ``ValueError`` naming the argument for a
        call that can never be valid (none or two of the times, a naive ``at``, a payload
        that is not JSON) and past ``MAX_FOLLOW_UPS`` requests in one run.
        """
        made = follow_ups.request(at=at, in_=in_, cron=cron, every=every, tz=tz,
                                  payload=payload, name=name, agent=agent, now=self._clock())
        with self._lock:
            if self._follow_ups is None:
                self._follow_ups = []
            if len(self._follow_ups) >= MAX_FOLLOW_UPS:
                raise ValueError(f"a run may schedule at most {MAX_FOLLOW_UPS} "
                                 "follow-ups")
            self._follow_ups.append(made)

    @property
    def follow_ups(self) -> tuple[dict[str, Any], ...]:
        """The requests made with ``schedule`` so far (a snapshot), in call order."""
        with self._lock:
            return tuple(self._follow_ups) if self._follow_ups else ()


def _check_count(name: str, value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
