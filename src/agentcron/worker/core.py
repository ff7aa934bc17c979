"""``Worker``: pulls runs of one remote agent over HTTP and runs them with the local
executors (python, command), as a node would run a local agent.

Loops, all on one event loop:

- **claim**: while it has a free slot (``concurrency`` less the runs executing) and is not
  draining, a long-poll claim for up to that many runs; each run starts at once.
- **heartbeat** and **fence** (``worker/liveness.py``): beats keep the held runs alive
  and stop those the server revokes; when no beat gets through for nearly a held run's
  zombie timeout, the run is stopped before the server may give it to another worker and
  reported failed, retryable; a fenced worker claims nothing until a beat gets through.
- **runs**: each run executes with a ``RunContext`` (progress, cancellation, usage as on a
  node); its outcome is sent with ``complete``, batched with the outcomes of runs that end
  with it (``worker/outbox.py``), retried through an outage. A 409 (the run
  was taken over meanwhile) is logged and dropped.

An outage (network error, timeout, 5xx) shorter than the fence never drops a held run: the
run goes on, the heartbeat and the completion are retried with backoff. One that nears the
run's zombie timeout stops it (the fence) and reports it failed, retryable: the server
takes the run over after its zombie timeout if the worker stays silent (the report is then
refused), or retries it at the report if the worker's beats were only slow (they may have
reached the server all along, and then nothing else would end the run but its deadline).
A completion already on its way is kept: if it arrives late it is refused (409) and
dropped, and the new attempt's result stands.

Drain (``drain()``, the first SIGTERM or SIGINT): stop claiming (a claim in flight is let
answer, and what it hands out is released at once), tell the server (``draining`` in the
heartbeat), let the runs held finish up to ``drain_timeout_s``, then stop the rest and
release them (back to the queue, their attempt given back). A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from agentcron.executors import Executors, RunContext
from agentcron.executors.command import stop_grace_s
from agentcron.executors.registry import add_import_paths, resolve_target
from agentcron.models import ClaimedRun, ExecutionResult
from agentcron.rules.claims import MAX_CLAIM
from agentcron.worker.fence import Guarded, WorkerFence
from agentcron.worker.liveness import Liveness
from agentcron.worker.outbox import Outbox
from agentcron.worker.protocol import (
    ClaimedWork,
    Outage,
    Protocol,
    Refused,
    Stale,
    follow_up_bodies,
    retry,
)
from agentcron.worker.settings import WorkerSettings, local_spec

log = structlog.get_logger(__name__)

REFILL_LINGER_S = 0.005
#: Longest a run may take when the claim gives no deadline (the server cancels it anyway).
NO_DEADLINE_S = 24 * 3600.0


def default_worker_id() -> str:
    """``host-pid-xxxx``: unique per process, readable in listings."""
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return f"{host[:40] or 'worker'}-{os.getpid()}-{secrets.token_hex(2)}"


@dataclass
class Held:
    """A run this worker holds: its claim, its context, and the task running it."""

    work: ClaimedWork
    ctx: RunContext
    task: asyncio.Task[None] | None = None
    revoked: bool = False
    releasing: bool = False
    sending: bool = False  # its outcome is being sent: let it be, even past the drain
    progress: str | None = None  # the agent's latest progress line
    progress_sent: str | None = None  # the last one a heartbeat carried

    @property
    def key(self) -> tuple[str, int]:
        return (self.work.id, self.work.lease)


@dataclass
class WorkerStats:
    """What this worker did, for tests and the log line it ends with."""

    claimed: int = 0
    completed: int = 0
    stale: int = 0
    released: int = 0
    revoked: int = 0
    given_up: int = 0  # by the fence
    outcomes: dict[str, str] = field(default_factory=dict)  # run id -> status sent


class Worker:
    """A remote worker for one agent. ``function`` (Python only): run this callable, no
    import path needed. ``transport`` (tests): replaces the network."""

    def __init__(self, settings: WorkerSettings, *,
                 function: Callable[..., Any] | None = None,
                 transport: Any = None) -> None:
        self.settings = settings.validate(has_function=function is not None)
        self.worker_id = settings.worker_id or default_worker_id()
        self.executors = Executors(thread_pool_size=max(4, settings.concurrency))
        target = settings.python
        if function is not None:
            # Found in the registry by this name before any import is tried.
            target = "agentcron_worker:function"
            self.executors.registry.register(target, function)
        self.spec = local_spec(settings, target)
        if function is None and target is not None:
            # Refused now, not run by run: each run would fail for good (retry false).
            add_import_paths(os.getcwd())
            resolve_target(target)
        self._give_up = asyncio.Event()  # after the drain: outages end calls, not retry
        self.protocol = Protocol(settings.url, settings.token, self.worker_id,
                                 transport=transport)
        # Outcomes ride on the next claim while this worker still claims.
        self.outbox = Outbox(self.protocol, self._give_up,
                             claims_carry=lambda: not self.draining.is_set())
        self.held: dict[tuple[str, int], Held] = {}
        self.stats = WorkerStats()
        self.draining = asyncio.Event()
        self.stopped = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._completions: set[asyncio.Task[None]] = set()
        self.fatal: Refused | None = None
        self.fence = WorkerFence(self.worker_id, settings.heartbeat_interval_s)
        self.stop_grace_s = stop_grace_s(self.spec)  # the fence's reserve for stopping a run
        self.liveness = Liveness(self)

    # -- running ---------------------------------------------------------------------------

    def run_forever(self) -> int:
        """Run until drained (the first SIGTERM or SIGINT drains, a second exits at once).
        Returns the process exit code: 0, or 2 when the server refused the worker."""
        return asyncio.run(self._main_with_signals())

    async def _main_with_signals(self) -> int:
        loop = asyncio.get_running_loop()
        seen = 0

        def on_signal(signum: int) -> None:
            nonlocal seen
            seen += 1
            if seen == 1:
                log.info("worker_signal", signal=signal.Signals(signum).name,
                         action="draining", worker_id=self.worker_id)
                self.drain()
                return
            log.warning("second_signal", action="exiting now", worker_id=self.worker_id)
            os._exit(1)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await self.run()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return 2 if self.fatal is not None else 0

    async def run(self) -> None:
        """Claim, run and complete until ``drain()`` (or a refusal), then drain and return."""
        add_import_paths(os.getcwd())
        log.info("worker_started", worker_id=self.worker_id, agent=self.settings.agent,
                 concurrency=self.settings.concurrency, url=self.settings.url)
        loops = [asyncio.create_task(self.liveness.heartbeat_loop(), name="worker-heartbeat"),
                 asyncio.create_task(self.liveness.fence_loop(), name="worker-fence")]
        try:
            await self._claim_loop()
            await self._finish_drain()
        finally:
            for task in [*loops, *self._completions]:
                task.cancel()
            for task in [*loops, *self._completions]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.outbox.aclose()
            await self.executors.aclose()
            await self.protocol.aclose()
            self.stopped.set()
            log.info("worker_stopped", worker_id=self.worker_id, claimed=self.stats.claimed,
                     completed=self.stats.completed, released=self.stats.released,
                     stale=self.stats.stale, revoked=self.stats.revoked,
                     given_up=self.stats.given_up)

    def drain(self) -> None:
        """Stop claiming; finish what is held up to the drain timeout, release the rest."""
        if not self.draining.is_set():
            self.draining.set()
            self._slot_free.set()

    def free_slots(self) -> int:
        """Runs it may start now: ``concurrency`` less the runs executing. A run whose
        outcome is being sent holds no slot (it is still held, and beaten for, until the
        server has it), so the next claim overlaps the completion."""
        executing = sum(1 for h in self.held.values() if not h.sending)
        return max(0, self.settings.concurrency - executing)

    # -- claiming --------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        draining = asyncio.create_task(self.draining.wait())
        try:
            while not self.draining.is_set():
                if self.fence.fenced:
                    # It cannot prove it holds what a claim would hand it, and would only
                    # give it up again: no claim until a beat gets through.
                    self.liveness.answered.clear()
                    answered = asyncio.create_task(self.liveness.answered.wait())
                    await asyncio.wait({answered, draining},
                                       return_when=asyncio.FIRST_COMPLETED)
                    answered.cancel()
                    continue
                free = self.free_slots()
                if free == 0:
                    self._slot_free.clear()
                    await self._slot_free.wait()
                    # Runs often end together: one claim for the slots freed within a few
                    # milliseconds, not one claim per slot.
                    await asyncio.sleep(REFILL_LINGER_S)
                    continue
                claim = asyncio.create_task(self._claim(free))
                await asyncio.wait({claim, draining}, return_when=asyncio.FIRST_COMPLETED)
                if not claim.done():
                    # The drain began while a claim waits: the drain goes on at once, and
                    # whatever the claim still hands out is released as it arrives.
                    self.track_completion(self._hand_back(claim))
                    return
                claimed, sent_at = claim.result()
                for work in claimed:
                    self._start(work, sent_at)
        finally:
            draining.cancel()

    async def _claim(self, free: int) -> tuple[list[ClaimedWork], float]:
        """One claim for up to ``free`` runs, retried through an outage until the drain,
        and when (monotonic) the call that answered was sent. It carries the outcomes
        waiting to be sent (``Outbox.take_for_claim``) and then waits for no run: their
        runs' callers learn their answers at once."""
        carried = self.outbox.take_for_claim()
        sent = [self.fence.monotonic()]
        try:
            try:
                claimed, answers = await self._claim_call(free, carried, sent)
            except Refused:
                if not carried:
                    raise
                # Perhaps for one of the outcomes (its run deleted, say): they go on their
                # own, one by one if need be, and the claim is made again without them.
                self.outbox.give_back(carried, refused=True)
                carried = []
                claimed, answers = await self._claim_call(free, carried, sent)
        except Outage:
            self.outbox.give_back(carried, refused=False)
            return [], sent[0]  # draining while the server is away: nothing was handed out
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # not the protocol
            log.error("worker_claim_unreadable", error=str(exc)[:300])
            self.outbox.give_back(carried, refused=True)
            await asyncio.sleep(1.0)
            return [], sent[0]
        except Refused as exc:
            self.fatal = exc
            log.error("worker_refused", call="claim", error=str(exc),
                      fix="check --url, --token (a worker token for this agent) and "
                          "--agent (a remote agent)")
            self.drain()
            return [], sent[0]
        except BaseException:
            self.outbox.give_back(carried, refused=False)
            raise
        self.outbox.settle(carried, answers)
        self.stats.claimed += len(claimed)
        return claimed, sent[0]

    async def _claim_call(self, free: int, carried: list[tuple[dict[str, Any], Any]],
                          sent: list[float]
                          ) -> tuple[list[ClaimedWork], list[tuple[str, str]]]:
        """The claim, retried through an outage; ``sent[0]`` is set to when each try was
        sent, so it ends as the sending of the one that was answered."""
        async def once() -> tuple[list[ClaimedWork], list[tuple[str, str]]]:
            sent[0] = self.fence.monotonic()
            return await self.protocol.claim(
                [self.settings.agent], min(free, MAX_CLAIM),
                0.0 if carried else self.settings.wait_s, [body for body, _ in carried])

        return await retry(once, "claim", give_up=self.draining)

    async def _hand_back(self, claim: asyncio.Task[tuple[list[ClaimedWork], float]]
                         ) -> None:
        try:
            claimed, _ = await claim
        except Exception as exc:  # e.g. the client closed under it at the drain's end
            log.warning("worker_claim_abandoned", error=str(exc)[:200],
                        note="runs it was handed are recovered after their zombie timeout")
            return
        for work in claimed:
            await self._release(work)

    def _start(self, work: ClaimedWork, claim_sent: float) -> None:
        if work.zombie_timeout_s is not None and not self.fence.still_held(
                claim_sent, Guarded((work.id, work.lease), work.zombie_timeout_s,
                                    self.stop_grace_s)):
            # The answer was held up by the link for so long that the server may already
            # have given the run to another worker: hand it back instead of running it
            # beside the next attempt (a 409 if it was taken over meanwhile).
            log.warning("worker_claim_stale", run_id=work.id, lease=work.lease,
                        note="answered too late to be still this worker's: released")
            self.track_completion(self._release(work))
            return
        # The deadline is on the server's clock; this host's may differ a little. The
        # server cancels a run far past its deadline whatever this worker does.
        now = datetime.now(UTC)
        deadline = work.deadline_at or now + timedelta(seconds=NO_DEADLINE_S)
        timeout_s = max(1.0, (deadline - now).total_seconds())
        run = ClaimedRun(run_id=work.id, lease=work.lease, attempt=work.attempt,
                         agent=self.spec, trigger_id=work.trigger_id,
                         scheduled_for=work.scheduled_for, started_at=now,
                         deadline_at=deadline, payload=work.payload)
        key = (work.id, work.lease)
        held = Held(work, RunContext(run, on_heartbeat=lambda line: self._progress(key, line)))
        self.held[key] = held
        held.task = asyncio.create_task(self._execute(held, run, timeout_s),
                                        name=f"run-{work.id}")

    def _progress(self, key: tuple[str, int], line: str | None) -> None:
        """``ctx.heartbeat(line)``, called on this loop (where the context was made): the
        next beat carries the line."""
        held = self.held.get(key)
        if held is not None and line is not None:
            held.progress = line

    async def _execute(self, held: Held, run: ClaimedRun, timeout_s: float) -> None:
        executor = self.executors.for_agent(self.spec)
        try:
            async with asyncio.timeout(timeout_s):
                result = await executor.execute(run, held.ctx)
        except TimeoutError:
            held.ctx.cancel("timeout")
            result = ExecutionResult(ok=False, error=f"timed out after {timeout_s:.3g}s",
                                     retryable=True, usage=held.ctx.usage)
        except asyncio.CancelledError:
            return  # revoked (the server knows) or drained (released by the drain)
        except Exception as exc:  # an executor bug fails the run, not the worker
            result = ExecutionResult(
                ok=False, error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
                retryable=True, usage=held.ctx.usage)
        if held.revoked:
            return
        held.sending = True
        self._slot_free.set()
        await self._complete(held, result)

    # -- outcomes --------------------------------------------------------------------------

    async def _complete(self, held: Held, result: ExecutionResult) -> None:
        work = held.work
        usage = result.usage
        status = "succeeded" if result.ok else "failed"
        body: dict[str, Any] = {
            "lease": work.lease, "status": status, "output": result.output,
            "error": None if result.ok else result.error,
            "retry": (not result.ok) and result.retryable,
        }
        if result.ok and result.schedule:
            body["schedule"] = follow_up_bodies(work.id, result.schedule)
        if usage is not None:
            body["usage"] = {"input_tokens": usage.input_tokens,
                             "output_tokens": usage.output_tokens,
                             "cost_usd": usage.cost_usd, "model": usage.model}
        try:
            # Held while it is sent: the heartbeat keeps beating for it through an outage.
            # Batched with the outcomes of runs that end with it (``worker/outbox.py``).
            answer = await self.outbox.send(work.id, body)
            self.stats.completed += 1
            self.stats.outcomes[work.id] = status
            log.info("worker_run_completed", run_id=work.id, attempt=work.attempt,
                     status=status, run_status=answer)
        except Stale as exc:
            self.stats.stale += 1
            log.warning("worker_run_taken_over", run_id=work.id, lease=work.lease,
                        detail=str(exc)[:200],
                        note="the outcome is dropped: the run was taken over or cancelled")
        except Refused as exc:
            log.error("worker_refused", call="complete", run_id=work.id, error=str(exc))
        except Outage as exc:
            log.error("worker_outcome_lost", run_id=work.id, error=str(exc)[:200],
                      note="the server was away past the drain; it recovers the run")
        finally:
            self._forget(held)

    def _forget(self, held: Held) -> None:
        if self.held.get(held.key) is held:
            del self.held[held.key]
        self._slot_free.set()

    async def _release(self, work: ClaimedWork) -> None:
        try:
            await retry(lambda: self.protocol.release(work.id, work.lease), "release",
                        give_up=self._give_up)
            self.stats.released += 1
            log.info("worker_run_released", run_id=work.id, attempt=work.attempt)
        except Stale:
            self.stats.stale += 1
        except (Refused, Outage) as exc:
            log.error("worker_release_failed", run_id=work.id, error=str(exc)[:200],
                      note="the server recovers the run after its zombie timeout")

    def track_completion(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._completions.add(task)
        task.add_done_callback(self._completions.discard)

    def stop(self, held: Held, reason: str) -> bool:
        """Stop a held run whose outcome is not to be written; False if its outcome is
        already being sent (perhaps written, carried by a claim): the answer to it says
        what became of the run, and cancelling the send would lose that answer."""
        if held.sending:
            return False
        held.revoked = True
        held.ctx.cancel(reason)
        if held.task is not None and not held.task.done():
            held.task.cancel()
        self._forget(held)
        return True

    # -- drain -----------------------------------------------------------------------------

    async def _finish_drain(self) -> None:
        """Let held runs finish up to the drain timeout, stop and release the rest, then
        deliver what is still being sent (bounded: an outage past it gives up)."""
        timeout = self.settings.drain_timeout_s
        log.info("worker_draining", worker_id=self.worker_id, held=len(self.held),
                 drain_timeout_s=timeout)
        running = [h.task for h in self.held.values() if h.task is not None]
        if running:
            await asyncio.wait(running, timeout=timeout)
        for held in list(self.held.values()):
            if (held.task is not None and not held.task.done() and not held.releasing
                    and not held.sending):
                held.releasing = True
                held.ctx.cancel("drain")
                held.task.cancel()
                self.track_completion(self._release_held(held))
        pending = list(self._completions) + [h.task for h in self.held.values()
                                             if h.task is not None]
        if pending:
            # Completions and releases still retrying through an outage get one more
            # drain timeout, then give up: the server recovers their runs anyway.
            done, _ = await asyncio.wait(pending, timeout=max(timeout, 1.0))
            if len(done) < len(pending):
                self._give_up.set()
                await asyncio.wait(pending, timeout=BACKOFF_GRACE_S)

    async def _release_held(self, held: Held) -> None:
        if held.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await held.task
        try:
            await self._release(held.work)
        finally:
            self._forget(held)


BACKOFF_GRACE_S = 6.0
"""After giving up, how long calls in their backoff get to notice it and end."""
