"""The remote-worker operations of ``Store`` (kept here so ``store.py`` stays one screenful
per concern): a worker's claim, beat, outcomes and release, fenced like a node's (see
``store.workers``). Each method is one transaction, like every ``Store`` method."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy.engine import Connection

from agentcron.models import Outcome, Worker
from agentcron.store import claiming, pricing, workers
from agentcron.store.claiming import FinishResult
from agentcron.store.database import db_now
from agentcron.store.notify import notify
from agentcron.store.workers import ClaimResult, RunHead, WorkerCall


class WorkerOperations:
    """Mixed into ``Store``; ``_write`` and ``_read`` are its transactions."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def worker_claim(self, call: WorkerCall, agent_names: list[str], limit: int,
                     now: datetime | None = None) -> ClaimResult:
        """Claim up to ``limit`` ready runs of the remote agents ``agent_names`` for the
        worker, refreshing its row; see ``workers.claim``."""
        with self._write() as conn:
            return workers.claim(conn, call, agent_names, limit, db_now(conn, now))

    def worker_beat(self, call: WorkerCall, inflight: list[tuple[str, int]],
                    draining: bool = False, now: datetime | None = None) -> list[str]:
        """The worker's beat; returns the runs of ``inflight`` it must stop."""
        with self._write() as conn:
            return workers.beat(conn, call, inflight, db_now(conn, now), draining)

    def run_head(self, run_id: str) -> RunHead | None:
        with self._read() as conn:
            return workers.run_head(conn, run_id)

    def run_heads(self, run_ids: list[str]) -> dict[str, RunHead]:
        with self._read() as conn:
            return workers.run_heads(conn, run_ids)

    def worker_finish(self, node_id: str, outcome: Outcome, now: datetime | None = None
                      ) -> FinishResult:
        """A worker's outcome for one run; see ``worker_finish_many``."""
        return self.worker_finish_many(node_id, [outcome], now)

    def worker_finish_many(self, node_id: str, outcomes: list[Outcome],
                           now: datetime | None = None) -> FinishResult:
        """A worker's outcomes, in one transaction, each fenced on (run, lease, worker) like
        a node's (``claiming.finish``); when any changed a run, wakes waiting workers if
        that can give them work (a retry is queued, or ready runs of an agent wait for the
        slots freed)."""
        with self._write() as conn:
            at = db_now(conn, now)
            priced = pricing.price_outcomes(conn, outcomes)
            result = claiming.finish(conn, node_id, priced, at)
            applied = set(result.applied)
            done = [o for o in outcomes if o.run_id in applied]
            if done and (any(o.retry_delay_s is not None for o in done)
                         or workers.agents_have_ready_runs(conn, [o.run_id for o in done], at)):
                notify(conn, "runs")
            return result

    def worker_release(self, node_id: str, run_id: str, lease: int,
                       now: datetime | None = None) -> bool:
        """Hand a run back to the queue; False (nothing changed) for a stale lease."""
        with self._write() as conn:
            return workers.release_run(conn, node_id, run_id, lease, db_now(conn, now))

    def list_workers(self, default_zombie_timeout_s: float = 60.0) -> list[Worker]:
        with self._read() as conn:
            return workers.list_workers(conn, default_zombie_timeout_s)
