"""``Liveness``: a worker's proof that it still holds its runs, and what it does without it.

- **heartbeat**: every ``heartbeat_interval_s``, one call for every run held (and for the
  worker itself when it holds none), on connections of its own and without waiting for
  the last call's answer (up to ``BEATS_IN_FLIGHT`` at once: a beat proves the worker alive
  from when it was sent, however late its answer), carrying each run's progress line when
  it changed; the runs an answer revokes (cancelled, taken over) are stopped at once and
  nothing is written for them.
- **fence** (``worker/fence.py``): when no beat has got through for nearly a held run's
  zombie timeout, the run is stopped before the server may give it to another worker, and
  a retryable failure is sent for it, fenced on its lease, as a node's fence writes one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import structlog

from agentcron.worker.fence import Guarded
from agentcron.worker.protocol import BEATS_IN_FLIGHT, ClaimedWork, Outage, Refused, Stale

if TYPE_CHECKING:
    from agentcron.worker.core import Worker

log = structlog.get_logger(__name__)

GIVEN_UP = ("worker fenced: no heartbeat reached the API for nearly the run's zombie "
            "timeout, so the worker stopped the run before the server could give it to "
            "another worker")


class Liveness:
    """The heartbeat and fence loops of one ``Worker``; ``answered`` is set by each beat
    that gets through (a fenced worker waits for it before it claims again)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.answered = asyncio.Event()

    async def heartbeat_loop(self) -> None:
        """A beat every interval, not waiting for the last one's answer (up to
        ``BEATS_IN_FLIGHT`` at once)."""
        interval = self.worker.settings.heartbeat_interval_s
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                if len(in_flight) < BEATS_IN_FLIGHT:
                    beat = asyncio.create_task(
                        self.beat(max(1.0, BEATS_IN_FLIGHT * interval)))
                    in_flight.add(beat)
                    beat.add_done_callback(in_flight.discard)
                await asyncio.sleep(interval)
        finally:
            for beat in list(in_flight):
                beat.cancel()

    async def beat(self, timeout_s: float) -> None:
        beating = list(self.worker.held.values())
        lines = {id(h): h.progress if h.progress != h.progress_sent else None
                 for h in beating}
        sent_at = self.worker.fence.monotonic()
        try:
            revoked = set(await self.worker.protocol.heartbeat(
                [(*h.key, lines[id(h)]) for h in beating], self.worker.draining.is_set(),
                timeout_s=timeout_s))
        except Outage as exc:
            # The next beat is the retry: the runs go on meanwhile.
            log.warning("worker_call_failed", call="heartbeat", error=str(exc)[:300],
                        held=len(self.worker.held))
            return
        except (Stale, Refused) as exc:
            log.error("worker_refused", call="heartbeat", error=str(exc))
            return
        self.worker.fence.beat_succeeded(sent_at)
        self.answered.set()
        for h in beating:
            if lines[id(h)] is not None:
                h.progress_sent = lines[id(h)]
        # By (run, lease) as this beat sent them: a run handed back and claimed again since
        # is another attempt, not the one the answer speaks of.
        self.revoke({h.key for h in beating if h.work.id in revoked})

    def revoke(self, keys: set[tuple[str, int]]) -> None:
        for held in list(self.worker.held.values()):
            if held.key in keys and self.worker.stop(held, "revoked"):
                self.worker.stats.revoked += 1
                log.warning("worker_run_revoked", run_id=held.work.id, lease=held.work.lease,
                            note="cancelled or taken over: stopped, nothing written")

    async def fence_loop(self) -> None:
        """Give up held runs past their fence; check again when the next one would be due
        (at least once per heartbeat interval, so a run claimed meanwhile is watched)."""
        while True:
            keys, next_in = self.worker.fence.due(
                Guarded(h.key, h.work.zombie_timeout_s, self.worker.stop_grace_s,
                        stoppable=not h.sending)
                for h in self.worker.held.values() if h.work.zombie_timeout_s is not None)
            for key in keys:
                held = self.worker.held.get(key)
                if held is not None and self.worker.stop(held, "fenced"):
                    self.worker.stats.given_up += 1
                    log.warning("worker_run_given_up", run_id=held.work.id,
                                lease=held.work.lease,
                                note="fenced: stopped before the server may give it to "
                                     "another worker; a retryable failure is sent for it")
                    self.worker.track_completion(self.report_given_up(held.work))
            await asyncio.sleep(max(0.02, next_in))

    async def report_given_up(self, work: ClaimedWork) -> None:
        """As a node's fence does (``engine/node.py``): a run given up gets a retryable
        failure, fenced on its lease. Taken over meanwhile, the run refuses it (409); if the
        server never took it over (the beats were slow, not lost: they may have reached it
        all along), the run is retried now rather than stay ``running`` until its deadline
        under a worker that no longer runs it."""
        body = {"lease": work.lease, "status": "failed", "error": GIVEN_UP, "retry": True}
        try:
            await self.worker.outbox.send(work.id, body)
        except Stale:
            self.worker.stats.stale += 1
        except (Refused, Outage) as exc:
            log.error("worker_outcome_lost", run_id=work.id, error=str(exc)[:200],
                      note="the server recovers the run after its zombie timeout")
