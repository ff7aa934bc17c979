"""A node: every engine service wired together, and the graceful drain.

Lifecycle: register -> run the loops -> on stop: drain (stop claiming and firing, and
wait for a firing or claiming pass in flight to end, let
in-flight runs finish up to ``drain_timeout``, cancel the rest, write what finished,
release what did not back to the queue with the attempt given back, deregister).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from agentcron import __version__
from agentcron.engine.alerts import AlertSender
from agentcron.engine.attempt import Attempt
from agentcron.engine.clock import Clock, DatabaseClock, StoreTimeline
from agentcron.engine.completions import CompletionWriter
from agentcron.engine.dispatcher import Dispatcher, outcome_for
from agentcron.engine.fence import Fence
from agentcron.engine.follow_ups import FollowUpBuilder, without_follow_ups
from agentcron.engine.heartbeat import Heartbeat
from agentcron.engine.loop import Service
from agentcron.engine.metrics import EngineMetrics
from agentcron.engine.pruner import Pruner
from agentcron.engine.resilience import StoreHealth, StoreUnavailable, call_store
from agentcron.engine.settings import NodeSettings
from agentcron.engine.supervisor import Supervisor
from agentcron.engine.sweeper import Sweeper
from agentcron.engine.ticker import Ticker
from agentcron.engine.wakeups import RunsReady
from agentcron.executors import Executors
from agentcron.models import ClaimedRun, ExecutionResult, Outcome, RunStatus
from agentcron.rules.ids import new_node_id
from agentcron.store import FinishResult, FireResult, NodeInfo, Store
from agentcron.store.notify import Listener

log = structlog.get_logger(__name__)

FAILURE_LOG_CHARS = 500
"""Most of a run's error a failure's log line carries (``runs show`` has all of it)."""


class Node:
    def __init__(self, store: Store, settings: NodeSettings, executors: Executors,
                 clock: Clock | None = None, metrics: EngineMetrics | None = None,
                 follow_ups: FollowUpBuilder = without_follow_ups) -> None:
        """``follow_ups``: what turns runs' follow-up requests into trigger rows (the
        trigger service's validator, injected by ``server.run_node``); without it every
        request is refused (``engine/follow_ups.py``)."""
        self.store = store
        self.metrics = metrics
        self.settings = settings
        self.executors = executors
        self.clock = clock or DatabaseClock()
        self.health = StoreHealth(self.clock.monotonic)
        # Shared: the ticker samples the store's clock, the dispatcher starts runs fired
        # ahead by it.
        self.timeline = StoreTimeline()
        self.info = NodeInfo(
            id=settings.node_id or new_node_id(), hostname=socket.gethostname(),
            pid=os.getpid(), version=__version__, zombie_timeout_s=settings.zombie_timeout_s,
            routing=settings.routing,
        )
        self.id = self.info.id
        self._claiming = True
        self._beating = True
        self._running = True
        self.registered = asyncio.Event()
        self.drained = asyncio.Event()
        self.completions = CompletionWriter(store, self.clock, self.health, self.id,
                                            on_written=self._on_written)
        self.dispatcher = Dispatcher(
            store, self.clock, self.health, executors, self.id,
            max_inflight=settings.max_inflight, claim_batch=settings.claim_batch,
            poll_interval_s=settings.poll_interval_s, submit=self.completions.submit,
            on_progress=self._on_progress, timeline=self.timeline, routing=settings.routing,
            follow_ups=follow_ups,
        )
        self.ticker = Ticker(store, self.clock, self.health, batch=settings.fire_batch,
                             poll_interval_s=settings.poll_interval_s, on_fired=self._on_fired,
                             claim_for=self._claim_for, lookahead_s=settings.fire_lookahead_s,
                             timeline=self.timeline, routing=settings.routing,
                             max_slots=settings.max_inflight)
        self.dispatcher.on_slots_freed = self.ticker.slots_freed
        # Self-fencing (engine/fence.py): a timer of its own, fed by the heartbeat.
        self.fence = Fence(self.clock.monotonic, self.id,
                           zombie_timeout_s=settings.zombie_timeout_s,
                           heartbeat_interval_s=settings.heartbeat_interval_s,
                           executing=self._executing, give_up=self._give_up,
                           on_change=self._on_fence_change)
        self.dispatcher.admit = self._admit
        self.heartbeat = Heartbeat(store, self.clock, self.health, self.info,
                                   interval_s=settings.heartbeat_interval_s,
                                   leases=self.dispatcher.leases, revoke=self.dispatcher.revoke,
                                   on_beat=self._on_beat)
        self.sweeper = Sweeper(store, self.clock, self.health,
                               zombie_timeout_s=settings.zombie_timeout_s,
                               interval_s=settings.effective_sweep_interval_s,
                               timeout_grace_s=settings.effective_timeout_grace_s,
                               on_swept=metrics.on_swept if metrics is not None else None)
        # Fenced: no firing, no claiming (a pass in flight ends; the next one waits), and no
        # sweeping: this node's view of who is alive is as stale as its own beats.
        self.ticker.held = self.dispatcher.held = self.sweeper.held = self.fenced
        self.pruner = Pruner(store, self.clock, self.health, retention_s=settings.retention_s,
                             skipped_retention_s=settings.skipped_retention_s,
                             interval_s=settings.prune_interval_s)
        self.alerts = AlertSender(store, self.clock, self.health, self.id,
                                  interval_s=settings.alert_interval_s,
                                  lease_s=settings.alert_lease_s,
                                  retry_s=settings.alert_retry_s,
                                  max_attempts=settings.alert_max_attempts,
                                  base_url=settings.dashboard_url)
        self.supervisor = Supervisor(self.id, self.clock.monotonic, metrics)
        #: Wakes remote workers' long polls (the API's): fed by this node's notification
        #: listener and by its own writes that queue runs.
        self.runs_ready = RunsReady()
        # On PostgreSQL this node's own listener (started with the node) feeds it, so the
        # API it is handed to never starts a second one.
        self.runs_ready.fed_by_listener = store.backend == "postgresql"
        store.local_listeners.append(self.runs_ready.on_topic)
        self._tasks: list[asyncio.Task[None]] = []

    # -- wiring -----------------------------------------------------------------------------

    def _claim_for(self) -> tuple[str, int] | None:
        """The firing node claims what it fires, up to its free slots (not while draining);
        with none free it holds its due runs back (``Store.fire_due``)."""
        if not self._claiming or self.fence.fenced:
            return None
        return self.id, self.dispatcher.free_slots()

    def fenced(self) -> bool:
        return self.fence.fenced

    def _executing(self) -> list[ClaimedRun]:
        """Runs whose attempt still executes here (not those only waiting for their
        outcome to be written: nothing of theirs runs any more)."""
        return [entry.run for entry in self.dispatcher.inflight.values()
                if not entry.revoked and entry.task is not None and not entry.task.done()]

    def _give_up(self, run: ClaimedRun, why: str) -> None:
        """The fence gave ``run`` up: cancel its attempt (as a revoke does: nothing of it
        is written), and write instead a retryable failure, fenced on its lease like any
        outcome. Taken over meanwhile, the run refuses it; if the database came back before
        anyone took the run over, it goes back to the queue (or fails for good when out of
        attempts) now, rather than stay ``running`` under a node that no longer runs it."""
        attempt = Attempt.of(run)
        entry = self.dispatcher.inflight.get(attempt)
        usage = entry.ctx.usage if entry is not None else None
        self.dispatcher.revoke(attempt, why)
        self.completions.submit(outcome_for(run, ExecutionResult(
            ok=False, error=why, retryable=True, usage=usage)))
        if self.metrics is not None:
            self.metrics.runs_given_up.inc()

    def _admit(self, run: ClaimedRun, since: float) -> bool:
        """Whether a run claimed by a call made at ``since`` may start: not if its answer
        was held up (a link dropping packets, then healed) past a silence long enough for
        another node to have taken it over. Such a run gets a retryable failure instead,
        fenced on its lease: refused if it was taken over, else retried."""
        if self.fence.still_held(since, run):
            return True
        why = ("claimed by a call answered only after a silence long enough for another "
               "node to take the run over: not started")
        log.warning("claim_answered_late", run_id=run.run_id, lease=run.lease, reason=why)
        self.completions.submit(outcome_for(run, ExecutionResult(
            ok=False, error=why, retryable=True)))
        return False

    def _on_beat(self, sent_at: float) -> None:
        self.fence.beat_succeeded(sent_at)
        if self.fence.fenced:
            # That beat was sent too long ago (it hung) to lift the fence: beat again now.
            self.heartbeat.wakeup.set()

    def _on_fence_change(self, fenced: bool) -> None:
        if self.metrics is not None:
            self.metrics.fenced.set(1 if fenced else 0)
        if not fenced:
            # Its calls may have hung rather than failed: judge no node dead for a zombie
            # timeout, as after any outage (every node's beats may have been held up too).
            self.health.recovered()
            self.dispatcher.wakeup.set()
            self.ticker.wakeup.set()

    def _on_fired(self, result: FireResult, since: float) -> None:
        if self.metrics is not None:
            self.metrics.on_fired(result)
        for run in result.claimed:
            if self._admit(run, since):
                self.dispatcher.start(run)
        for delay_s in sorted(result.ready_in_s)[:Dispatcher.READY_HINTS]:
            self.dispatcher.ready_in(delay_s)  # jittered runs: claimed at their time
        if result.queued > len(result.claimed):
            self.dispatcher.wakeup.set()

    def _on_written(self, outcomes: list[Outcome], result: FinishResult) -> None:
        if self.metrics is not None:
            inflight = self.dispatcher.inflight
            self.metrics.on_written(
                (entry.run.agent.name if (entry := inflight.get(Attempt.of(o))) else None, o)
                for o in outcomes)
        applied = set(result.applied)
        for outcome in outcomes:
            if outcome.status is RunStatus.FAILED and outcome.run_id in applied:
                self._log_failure(outcome)
        self.dispatcher.forget(*[Attempt.of(outcome) for outcome in outcomes])
        for outcome in outcomes:
            if outcome.retry_delay_s is not None:
                # Claim the retry when its backoff is over, not at the next poll.
                self.dispatcher.ready_in(outcome.retry_delay_s)

    def _log_failure(self, outcome: Outcome) -> None:
        """One line per failed attempt, so whoever watches ``serve`` sees a broken job: a
        warning while it will be retried, an error when the run ends failed for good."""
        entry = self.dispatcher.inflight.get(Attempt.of(outcome))
        run = entry.run if entry is not None else None
        retrying = outcome.retry_delay_s is not None
        error = outcome.error or ""
        if len(error) > FAILURE_LOG_CHARS:
            error = error[:FAILURE_LOG_CHARS] + "..."
        fields: dict[str, Any] = {
            "agent": run.agent.name if run else None,
            "trigger_id": run.trigger_id if run else None,
            "run_id": outcome.run_id,
            "attempt": run.attempt if run else None,
            "max_attempts": run.agent.max_attempts if run else None,
            "error": error,
            "will_retry": retrying,
        }
        if retrying:
            log.warning("run_attempt_failed", retry_in_s=outcome.retry_delay_s, **fields)
        else:
            log.error("run_failed", **fields,
                      hint=f"agentcron runs show {outcome.run_id}; "
                           f"agentcron runs retry {outcome.run_id}")

    def _on_progress(self, run: ClaimedRun, progress: str | None) -> None:
        """A RunContext.heartbeat() from agent code: fenced progress write, off the loop."""

        def write() -> None:
            try:
                if not self.store.record_progress(run.run_id, run.lease, self.id, progress,
                                                  self.clock.store_now()):
                    self.dispatcher_revoke_threadsafe(Attempt.of(run))
            except Exception as exc:  # progress is best effort; the node beat covers liveness
                log.warning("progress_write_failed", run_id=run.run_id, error=str(exc))

        self._loop.call_soon_threadsafe(
            lambda: self._loop.run_in_executor(None, write)
        )

    def dispatcher_revoke_threadsafe(self, attempt: Attempt) -> None:
        self._loop.call_soon_threadsafe(self.dispatcher.revoke, attempt, "lease lost")

    def _on_topic(self, topic: str) -> None:
        self.runs_ready.on_topic(topic)
        if topic == "reconnected":
            # The database answers again: every loop backing off (the completion writer and
            # the sweeper too, not only the ones a notification would wake) tries now.
            self.health.poke()
        if topic in ("runs", "reconnected"):
            self.dispatcher.wakeup.set()
        if topic in ("triggers", "reconnected"):
            self.ticker.wakeup.set()
        if topic == "cancel":
            self.heartbeat.wakeup.set()

    def claims_stopped(self) -> bool:
        return not self._claiming

    def stopped(self) -> bool:
        return not self._running

    def beats_stopped(self) -> bool:
        return not self._beating

    def _spawn(self, name: str, start: Callable[[], Coroutine[Any, Any, None]],
               stopping: Callable[[], bool] = lambda: False) -> None:
        """Run a loop as a task under the node's supervisor (``engine/supervisor.py``): a
        crash is logged, counted and the loop restarted after a back-off, unless
        ``stopping()`` is true by then."""
        task = asyncio.create_task(self.supervisor.run(name, start, stopping), name=name)
        self._tasks.append(task)

    def _spawn_service(self, service: Service, stopping: Callable[[], bool]) -> None:
        self._spawn(service.name, lambda: service.loop(stopping), stopping)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Register (waiting out a database outage) and start every loop."""
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                sent_at = self.clock.monotonic()
                await call_store(self.health, "register", self.store.register_node, self.info,
                                 self.clock.store_now())
                self.fence.beat_succeeded(sent_at)  # registering stamps the node row too
                break
            except StoreUnavailable as exc:
                await asyncio.sleep(exc.retry_in_s)
        self.registered.set()
        log.info("node_started", node_id=self.id, backend=self.store.backend,
                 zombie_timeout_s=self.settings.zombie_timeout_s,
                 drain_timeout_s=self.settings.drain_timeout_s)
        for service in (self.ticker, self.dispatcher, self.sweeper, self.pruner, self.alerts):
            self._spawn_service(service, self.claims_stopped)
        self._spawn("completions", lambda: self.completions.loop(self.stopped), self.stopped)
        self._spawn_service(self.heartbeat, self.beats_stopped)
        self._spawn(self.fence.name, lambda: self.fence.loop(self.stopped), self.stopped)
        if self.store.backend == "postgresql":
            listener = Listener(self.store.url, self._on_topic)
            self._spawn("listener", listener.run)

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        await stop.wait()
        await self.drain()

    async def drain(self) -> None:
        """Graceful stop (guarantee 4). Returns when the node is deregistered."""
        timeout = self.settings.drain_timeout_s
        began = self.clock.monotonic()
        self._claiming = False
        self.supervisor.wake()
        for service in (self.ticker, self.dispatcher, self.sweeper, self.pruner, self.alerts):
            service.wakeup.set()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.set_draining, self.id)
        await self._stop_claiming(timeout)
        log.info("node_draining", node_id=self.id, in_flight=self.dispatcher.running,
                 drain_timeout_s=timeout)
        executing = self.dispatcher.executing_tasks()
        if executing:
            # One drain timeout in all: waiting for a pass in flight used some of it.
            left = max(0.0, timeout - (self.clock.monotonic() - began))
            await asyncio.wait(executing, timeout=left)
        cancelled = await self.dispatcher.cancel_all("node draining", wait_s=10.0)
        if cancelled:
            log.warning("drain_timeout_cancelled_runs", node_id=self.id, count=len(cancelled))
        await self._flush_completions(deadline=self.clock.monotonic() + max(timeout, 10.0))
        await self._stop_heartbeat()
        released: list[str] = []
        for _ in range(20):
            try:
                released = await call_store(self.health, "release", self.store.release, self.id,
                                            self.clock.store_now())
                break
            except StoreUnavailable as exc:
                await asyncio.sleep(exc.retry_in_s)
        if released:
            log.info("runs_released", node_id=self.id, count=len(released))
        self._running = False
        self.supervisor.wake()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.executors.aclose()
        await self.alerts.close()
        log.info("node_stopped", node_id=self.id)
        self.drained.set()

    async def _stop_claiming(self, timeout: float) -> None:
        """Wait for a firing or claiming pass in flight to end (bounded by the drain
        timeout): a ``fire_due`` that claims for this node, still running in its thread
        when the drain began, would otherwise commit its runs as running here after
        ``release`` (they would be left to the sweeper, as if the node had died). What such
        a pass claimed is started or handed back to the queue like every other run."""
        names = {self.ticker.name, self.dispatcher.name}
        loops = [task for task in self._tasks if task.get_name() in names and not task.done()]
        if loops:
            await asyncio.wait(loops, timeout=timeout)

    async def _stop_heartbeat(self) -> None:
        """Stop beating, and wait for a beat in flight to end, before release deletes the
        node row: a beat that ran after the delete would find no row and register the node
        again, leaving a stale row behind. (A beat is one store call, bounded by the
        database timeouts.)"""
        self._beating = False
        self.supervisor.wake()
        self.heartbeat.wakeup.set()
        beating = [task for task in self._tasks if task.get_name() == self.heartbeat.name]
        if beating:
            await asyncio.wait(beating)

    async def _flush_completions(self, deadline: float) -> None:
        while self.completions.pending and self.clock.monotonic() < deadline:
            await self.completions.flush()
