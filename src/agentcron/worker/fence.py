"""A worker's fence: a worker cut off from the API stops its runs before the server may
give them to another worker.

The server judges a worker's runs as a node's: once the worker has not beaten for a run's
zombie timeout (the claim says which), the sweeper takes the run over. The worker knows
when it *sent* its last heartbeat that succeeded, and the server stamped that beat no
earlier; so, counting on its own monotonic clock from that sending, it gives a run up at
``rules.fencing.fence_after_s`` (a heartbeat interval and the agent's stop time before the
zombie timeout). A run it gave up is stopped, and the worker reports a retryable
failure for it (fenced on its lease, as a node's fence writes one): the old attempt cannot
be running beside a new one, and a run the server never took over (the beats were slow,
not lost) is retried rather than left to its deadline.

Runs whose outcome is already being sent are left alone: the outcome either lands (the
run was still this worker's) or is refused (409, taken over).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from agentcron.rules.fencing import (
    fence_after_s,
    past_fence,
    proved_throughout,
    seconds_to_fence,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Guarded:
    """A run the fence watches: its key, its zombie timeout, how long stopping it takes,
    and whether it may be stopped (not when its outcome is being sent: it still counts
    towards the worker being fenced)."""

    key: tuple[str, int]
    zombie_timeout_s: float
    stop_grace_s: float
    stoppable: bool = True


class WorkerFence:
    def __init__(self, worker_id: str, heartbeat_interval_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.worker_id = worker_id
        self.heartbeat_interval_s = heartbeat_interval_s
        self.monotonic = monotonic
        # Nothing is held before the first claim, and the claim itself refreshed the
        # worker's row: counting from the start is no later than the truth.
        self.last_beat_sent = monotonic()
        self.fenced = False
        self.given_up = 0
        # Sending times of the beats that succeeded, for judging a claim answered late.
        self.beats: deque[float] = deque([self.last_beat_sent], maxlen=4096)

    def beat_succeeded(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (monotonic) was answered."""
        if sent_at > self.last_beat_sent:
            self.last_beat_sent = sent_at
            self.beats.append(sent_at)
        if self.fenced:
            self.fenced = False
            log.info("worker_rejoined", worker_id=self.worker_id,
                     reason="a heartbeat succeeded again")

    def still_held(self, claim_sent: float, run: Guarded) -> bool:
        """Whether a run handed out by a claim sent at ``claim_sent`` (monotonic) can still
        be this worker's now: no stretch without a beat that got through long enough for
        the server to have taken it over since (``rules.fencing.proved_throughout``)."""
        after = fence_after_s(run.zombie_timeout_s, self.heartbeat_interval_s,
                              run.stop_grace_s)
        return proved_throughout(self.beats, claim_sent, self.monotonic(), after)

    def due(self, runs: Iterable[Guarded]) -> tuple[list[tuple[str, int]], float]:
        """The runs to give up now, and how long until the next one would be due if no
        beat succeeds meanwhile (the heartbeat interval when none is held). The worker is
        fenced once any run it holds is past its fence."""
        now = self.monotonic()
        out: list[tuple[str, int]] = []
        past = False
        next_in = self.heartbeat_interval_s
        for run in runs:
            after = fence_after_s(run.zombie_timeout_s, self.heartbeat_interval_s,
                                  run.stop_grace_s)
            if past_fence(self.last_beat_sent, now, after):
                past = True
                if run.stoppable:
                    out.append(run.key)
            else:
                next_in = min(next_in, seconds_to_fence(self.last_beat_sent, now, after))
        self.given_up += len(out)
        if past and not self.fenced:
            self.fenced = True
            log.error("worker_fenced", worker_id=self.worker_id,
                      silent_s=round(now - self.last_beat_sent, 1), runs=len(out),
                      reason="no heartbeat reached the API for nearly the runs' zombie "
                             "timeout: the server may soon give them to another worker, so "
                             "this worker stopped those still executing (each is reported "
                             "failed, retryable; outcomes already on their way are kept)")
        return out, next_in
