"""Dispatcher: claims ready runs up to this node's free slots and runs each one.

The concurrency limit of an agent is enforced by the store when claiming (across all
nodes); this node's own limit is ``max_inflight`` runs executing at once, and a slot is
claimed again as soon as its run ends (batched over ``REFILL_LINGER_S``). A run leaves the
in-flight set only after its outcome is written, or when the store says it is no longer
ours (revoked); a run whose outcome only waits to be written no longer takes a slot, but
the in-flight set as a whole stays under twice ``max_inflight``.

The in-flight set is keyed by ``Attempt`` (run id and lease): a revoke or a forget meant
for one attempt never touches the next attempt of the same run.

Between passes the dispatcher sleeps the poll interval, or less when it knows a queued run
becomes ready sooner (``ready_in``): a run fired with jitter, or a retry after its backoff,
is claimed when its time comes, not up to a poll interval later. (Without this, an idle
node's start lag was the time to its next poll: up to ``poll_interval``, 0.95 of it at p95, for
jittered and retried runs.)
"""

from __future__ import annotations

import asyncio
import heapq
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import structlog

from agentcron.engine.attempt import Attempt
from agentcron.engine.clock import Clock, StoreTimeline
from agentcron.engine.follow_ups import FollowUpBuilder, without_follow_ups
from agentcron.engine.loop import Service
from agentcron.engine.resilience import StoreHealth, call_store
from agentcron.executors import Executors, RunContext
from agentcron.executors.follow_ups import NOT_SUCCEEDED, refused_all
from agentcron.models import ClaimedRun, ExecutionResult, FollowUp, Outcome, RunStatus, Usage
from agentcron.rules.retry import MAX_RETRY_DELAY_S, backoff_delay_s
from agentcron.rules.routing import Routing
from agentcron.store import Store

log = structlog.get_logger(__name__)

#: How long a freed slot waits for others before the dispatcher claims again.
REFILL_LINGER_S = 0.005


@dataclass
class InFlight:
    run: ClaimedRun
    ctx: RunContext
    task: asyncio.Task[None] | None = None
    revoked: bool = False

    @property
    def attempt(self) -> Attempt:
        return Attempt.of(self.run)


def outcome_for(run: ClaimedRun, result: ExecutionResult) -> Outcome:
    """Success, a retry (retryable failure with attempts left) or a final failure.

    A retry waits the agent's backoff, or the ``retry_after_s`` the agent's server asked
    for if that is longer (capped at ``MAX_RETRY_DELAY_S``, like the backoff itself).
    """
    usage = result.usage or Usage()
    if result.ok:
        return Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED, output=result.output,
                       usage=usage, stderr=result.stderr)
    delay: float | None = None
    if result.retryable and run.attempt < run.agent.max_attempts:
        delay = backoff_delay_s(run.attempt, run.agent.retry_backoff_s)
        if result.retry_after_s is not None:
            delay = max(delay, min(result.retry_after_s, MAX_RETRY_DELAY_S))
    return Outcome(
        run.run_id, run.lease, RunStatus.FAILED, output=result.output, error=result.error,
        usage=usage, stderr=result.stderr, retry_delay_s=delay,
    )


class Dispatcher(Service):
    name = "dispatcher"

    def __init__(self, store: Store, clock: Clock, health: StoreHealth, executors: Executors,
                 node_id: str, *, max_inflight: int, claim_batch: int, poll_interval_s: float,
                 submit: Callable[[Outcome], None],
                 on_progress: Callable[[ClaimedRun, str | None], None],
                 timeline: StoreTimeline | None = None, routing: Routing | None = None,
                 follow_ups: FollowUpBuilder = without_follow_ups) -> None:
        """``routing``: the agents whose runs this node claims (``rules.routing``);
        ``follow_ups``: turns a succeeded attempt's follow-up requests into the rows its
        outcome carries (``engine/follow_ups.py``)."""
        super().__init__(health, interval_s=poll_interval_s)
        self.follow_ups = follow_ups
        self.routing = routing
        self.store = store
        self.clock = clock
        self.executors = executors
        self.node_id = node_id
        self.max_inflight = max_inflight
        self.claim_batch = claim_batch
        self.submit = submit
        self.on_progress = on_progress
        self.timeline = timeline or StoreTimeline()
        self.inflight: dict[Attempt, InFlight] = {}
        self.started = 0
        self.running = 0  # tasks of runs not finished executing (a counter: read per fire)
        self._refill: asyncio.TimerHandle | None = None
        self._ready: list[float] = []  # monotonic times queued runs become ready (a heap)
        # Told how many slots are free whenever some free up (the node's ticker, which
        # holds fires back while the node is full).
        self.on_slots_freed: Callable[[int], None] = lambda free: None
        #: Whether a run a claim made at a monotonic time may start (the node's fence says
        #: no to one answered after too long a silence: ``Node._admit``).
        self.admit: Callable[[ClaimedRun, float], bool] = lambda run, since: True

    READY_HINTS = 1024
    """At most this many ready times are remembered; beyond them the poll finds the runs."""

    def ready_in(self, delay_s: float) -> None:
        """A queued run becomes ready ``delay_s`` from now (its ``run_after``, counted from
        when it was written): claim again then rather than at the next poll."""
        if len(self._ready) < self.READY_HINTS:
            heapq.heappush(self._ready, time.monotonic() + max(0.0, delay_s))
            self.wakeup.set()  # the current sleep may be longer than that

    def _idle_s(self, claimed_at: float) -> float:
        """How long to sleep after a pass that claimed at ``claimed_at`` (monotonic): the
        poll interval, or until the next run known to become ready after that pass."""
        while self._ready and self._ready[0] <= claimed_at:
            heapq.heappop(self._ready)  # the pass's claim already saw it ready
        if not self._ready:
            return self.interval_s
        return max(0.0, min(self.interval_s, self._ready[0] - time.monotonic()))

    def free_slots(self) -> int:
        """Runs this node may start now: ``max_inflight`` less those executing (or waiting
        for their time), and never more than would take the in-flight set, outcomes not yet
        written included, past twice ``max_inflight``."""
        return max(0, min(self.max_inflight - self.running,
                          2 * self.max_inflight - len(self.inflight)))

    def leases(self) -> list[Attempt]:
        """The attempts in flight (executing or waiting for their outcome to be written)."""
        return list(self.inflight)

    def holds(self, run_id: str) -> bool:
        """Whether any attempt of this run is in flight here."""
        return any(attempt.run_id == run_id for attempt in self.inflight)

    def run_once(self, slots: int | None = None) -> list[ClaimedRun]:
        """Claim up to ``slots`` runs (default: as many as this node may start now)."""
        if slots is None:
            slots = min(self.free_slots(), self.claim_batch)
        return self.store.claim_runs(self.node_id, slots, self.clock.store_now(),
                                     self.routing)

    def start(self, run: ClaimedRun) -> None:
        ctx = RunContext(run, on_heartbeat=lambda progress: self.on_progress(run, progress),
                         clock=self.clock.local_now)
        entry = InFlight(run=run, ctx=ctx)
        self.inflight[entry.attempt] = entry
        entry.task = asyncio.create_task(self._execute(entry), name=f"run-{run.run_id}")
        self.started += 1
        self.running += 1
        # A done callback, not a finally: a task cancelled before its first step never
        # runs its coroutine's finally.
        entry.task.add_done_callback(self._run_done)

    def _run_done(self, _task: asyncio.Task[None]) -> None:
        self.running -= 1
        # A freed slot is refilled at once, not after the outcome's write: one wake-up per
        # REFILL_LINGER_S however many runs end in it, so a burst of endings is one claim.
        if self._refill is None and not self.stopping():
            self._refill = asyncio.get_running_loop().call_later(REFILL_LINGER_S, self._wake)

    def _wake(self) -> None:
        self._refill = None
        self.wakeup.set()
        self.on_slots_freed(self.free_slots())

    async def _execute(self, entry: InFlight) -> None:
        run = entry.run
        timeout = max(0.001, (run.deadline_at - run.started_at).total_seconds())
        executor = self.executors.for_agent(run.agent)
        try:
            if run.start_at is not None:
                await self._wait_for_start(run.start_at)
            # asyncio.timeout, not wait_for: no extra task per run.
            async with asyncio.timeout(timeout):
                result = await executor.execute(run, entry.ctx)
        except TimeoutError:
            entry.ctx.cancel("timeout")
            result = ExecutionResult(ok=False, error=f"timed out after {timeout:g}s",
                                     retryable=True, usage=entry.ctx.usage)
        except asyncio.CancelledError:
            # Revoked (cancelled by a user, taken over) or drained: the store already
            # knows, or drain's release will tell it. Writing an outcome here would be
            # fenced anyway.
            raise
        except Exception as exc:  # an executor bug must fail the run, not the node
            result = ExecutionResult(
                ok=False, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
                retryable=True, usage=entry.ctx.usage,
            )
        if entry.revoked:
            self.forget(entry.attempt)
            return
        outcome = outcome_for(run, result)
        if entry.ctx.progress is not None:
            outcome = replace(outcome, progress=entry.ctx.progress)
        if result.schedule:  # most runs ask for nothing: no call, no thread
            outcome = replace(outcome, follow_ups=await self._follow_ups(run, outcome,
                                                                         result.schedule))
        self.submit(outcome)

    async def _follow_ups(self, run: ClaimedRun, outcome: Outcome, requests: tuple[Any, ...]
                          ) -> tuple[FollowUp, ...]:
        """The rows a finished attempt's follow-up requests become. Only a succeeded
        attempt's are built (a failed one will be retried and ask again, or it failed for
        good); the builder runs in a thread, as it may read an agent from the store."""
        if outcome.status is not RunStatus.SUCCEEDED:
            return refused_all(requests, NOT_SUCCEEDED)
        now = self.clock.store_now() or self.clock.local_now()
        try:
            return await asyncio.to_thread(self.follow_ups, run, requests, now)
        except Exception as exc:  # a builder bug must not lose the run's outcome
            log.exception("follow_ups_failed", run_id=run.run_id, count=len(requests))
            return refused_all(requests, f"could not be checked ({type(exc).__name__}: "
                                         f"{str(exc)[:200]})")

    async def _wait_for_start(self, start_at: datetime) -> None:
        """A run fired ahead: sleep until its time has surely come on the store's clock."""
        wake = self.timeline.monotonic_at(start_at)
        if wake is None:
            # Not sampled yet (the node's ticker samples before it fires ahead; this is a
            # caller firing ahead by hand): the store's explicit time, else this host's.
            now = self.clock.store_now() or self.clock.local_now()
            wake = time.monotonic() + (start_at - now).total_seconds()
        # Checked again after each sleep: a timer may fire a clock tick early. (A time to
        # wait for, not an event: hence the loop.)
        while (delay := wake - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(delay)

    def forget(self, *attempts: Attempt) -> None:
        """Drop attempts from the in-flight set (their outcomes are written or they were
        revoked). Another attempt of the same run stays. A batch of outcomes is one
        wake-up, not one per run."""
        freed = False
        for attempt in attempts:
            freed = self.inflight.pop(attempt, None) is not None or freed
        if freed:
            self.wakeup.set()
            self.on_slots_freed(self.free_slots())

    def revoke(self, attempt: Attempt, reason: str) -> None:
        """The store says this attempt is no longer ours: stop it, write nothing. Does
        nothing if that attempt is not in flight, even if another attempt of the same run
        is (the store's verdict was about that lease only)."""
        entry = self.inflight.get(attempt)
        if entry is None:
            return
        log.warning("run_revoked", run_id=attempt.run_id, lease=attempt.lease,
                    agent=entry.run.agent.name, reason=reason, node_id=self.node_id)
        entry.revoked = True
        entry.ctx.cancel(reason)
        if entry.task is not None and not entry.task.done():
            entry.task.cancel()
        self.forget(attempt)

    async def cancel_all(self, reason: str, wait_s: float) -> list[Attempt]:
        """Cancel every attempt still executing (drain past its timeout); returns them.
        They stay in the in-flight set: release() hands them back to the queue."""
        cancelled = []
        tasks = []
        for attempt, entry in self.inflight.items():
            if entry.task is not None and not entry.task.done():
                entry.ctx.cancel(reason)
                entry.task.cancel()
                tasks.append(entry.task)
                cancelled.append(attempt)
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)
        return cancelled

    def executing_tasks(self) -> list[asyncio.Task[None]]:
        return [e.task for e in self.inflight.values() if e.task is not None and not e.task.done()]

    async def step(self) -> float | None:
        """Claim what this node may start now and start it; sleep until woken (a run is
        queued, an outcome written) or the poll interval."""
        free = min(self.free_slots(), self.claim_batch)
        if free <= 0:
            return self.interval_s  # a finished run wakes it (forget)
        claimed_at = time.monotonic()
        since = self.clock.monotonic()
        claimed = await call_store(self.health, "claim_runs", self.run_once, free)
        if self.stopping():
            # Claimed while a drain began: hand straight back via release() (the loop
            # ends before its next pass).
            for run in claimed:
                self.inflight[Attempt.of(run)] = InFlight(run, RunContext(run))
            return None
        for run in claimed:
            if self.admit(run, since):
                self.start(run)
        if len(claimed) == free:
            return None  # more may be ready: claim again once the runs have started
        return self._idle_s(claimed_at)
