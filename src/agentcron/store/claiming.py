"""Claiming runs, and the fenced writes a worker makes for a claimed run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    String,
    Text,
    func,
    select,
    union_all,
)
from sqlalchemy.engine import Connection

from agentcron.models import AgentSpec, ClaimedRun, Outcome, RunEvent, RunStatus
from agentcron.store import budgets, transitions
from agentcron.store.bulk import bulk_source
from agentcron.store.events import record_events
from agentcron.store.rows import agent_from_row
from agentcron.store.schema import agents, runs
from agentcron.store.secrets import box_of
from agentcron.store.types import UTCDateTime

_QUEUED = RunStatus.QUEUED.value
_RUNNING = RunStatus.RUNNING.value


_OUTCOME_COLUMNS: dict[str, Any] = {
    "id": String(36),
    "lease": Integer(),
    "status": String(16),
    "output": Text(),
    "stderr": Text(),
    "error": Text(),
    "finished_at": UTCDateTime(),
    "run_after": UTCDateTime(),
    "input_tokens": BigInteger(),
    "output_tokens": BigInteger(),
    "cost_usd": Float(),
    "model": String(100),
}


@dataclass(frozen=True)
class AgentSlots:
    """What an agent may start right now, as seen under its row lock."""

    spec: AgentSpec
    free: int  # max_concurrency minus its running runs (never below 0)
    backlog: bool  # whether ready queued runs are already waiting for it


def lock_agents(conn: Connection, names: Any) -> dict[str, AgentSpec]:
    """Lock the named agent rows (a list or a subquery), skipping rows another node holds
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite's write lock already excludes every
    other writer). Returns the specs of the rows this transaction now holds."""
    rows = conn.execute(
        select(agents).where(agents.c.name.in_(names)).with_for_update(skip_locked=True)
    ).mappings()
    box = box_of(conn)
    return {spec.name: spec for spec in (agent_from_row(row, box) for row in rows)}


def agent_slots(conn: Connection, locked: dict[str, AgentSpec], now: datetime
                ) -> dict[str, AgentSlots]:
    """Free slots and backlog of agents locked by ``lock_agents`` in this transaction.

    Must run in a statement after the lock: under READ COMMITTED a new statement sees every
    claim committed by whoever held the lock before, which is what makes the concurrency
    limit hold across nodes (guarantee 3). One statement for any number of agents.
    """
    if not locked:
        return {}
    # Budgets, under the same locks: an agent over budget gets no slot (and its ready runs
    # are skipped); one near its limit gets only the runs the budget rule lets start.
    room = budgets.enforce(conn, locked, now)
    # Correlated subqueries so each count is answered from its partial index
    # (ix_runs_agent_running, ix_runs_ready); an IN-list over both statuses would scan
    # the agent's whole history instead.
    running_count = (
        select(func.count())
        .where(runs.c.agent == agents.c.name, runs.c.status == _RUNNING)
        .scalar_subquery()
    )
    ready_exists = (
        select(func.count())
        .select_from(
            select(runs.c.id)
            .where(runs.c.agent == agents.c.name, runs.c.status == _QUEUED,
                   runs.c.run_after <= now)
            .limit(1)
            .subquery()
        )
        .scalar_subquery()
    )
    counts = {
        row.name: row
        for row in conn.execute(
            select(agents.c.name, running_count.label("running"),
                   ready_exists.label("ready"))
            .where(agents.c.name.in_(list(locked)))
        )
    }
    slots: dict[str, AgentSlots] = {}
    for name, spec in locked.items():
        row = counts.get(name)
        running, ready = (int(row.running), int(row.ready)) if row is not None else (0, 0)
        free = max(0, spec.max_concurrency - running)
        slots[name] = AgentSlots(spec, min(free, room.get(name, free)), ready > 0)
    return slots


def claim_runs(conn: Connection, node_id: str, slots: int, now: datetime) -> list[ClaimedRun]:
    """Move up to ``slots`` ready queued runs to ``running`` on ``node_id``.

    Locks: the agent rows of every agent with a ready run (``lock_agents``), so another
    node claiming for the same agent skips it rather than waits.
    Guarantees: an agent never has more running runs than its ``max_concurrency``
    (``agent_slots``). Each claim increments ``lease`` (the fencing token) and ``attempt``.
    Oldest ready runs first. Three statements, each reading a bounded number of rows
    whatever the length of the queue.
    """
    if slots <= 0:
        return []
    # Agents with a ready run: one index probe per agent (ix_runs_ready), however long the
    # queue is.
    ready_agents = select(agents.c.name).where(
        select(runs.c.id)
        .where(runs.c.agent == agents.c.name, runs.c.status == _QUEUED,
               runs.c.run_after <= now)
        .exists()
    )
    locked = lock_agents(conn, ready_agents.scalar_subquery())
    capacity = {name: s.free for name, s in agent_slots(conn, locked, now).items() if s.free}
    if not capacity:
        return []

    # Each agent's oldest ready runs, at most its free slots, read in the order of its
    # index (ix_runs_ready: agent, run_after) and cut off by LIMIT: the work is bounded by
    # what is claimed, not by the length of the queue (ranking the whole queue made every
    # claim slower as a backlog grew, which grew the backlog: the chaos suite's soak never
    # caught up).
    oldest = [
        select(runs.c.id, runs.c.run_after)
        .where(runs.c.agent == name, runs.c.status == _QUEUED, runs.c.run_after <= now)
        .order_by(runs.c.run_after)
        .limit(min(free, slots))
        .subquery()
        for name, free in sorted(capacity.items())
    ]
    ready = union_all(*(select(sq.c.id, sq.c.run_after) for sq in oldest)).subquery("ready")
    picked = select(ready.c.id).order_by(ready.c.run_after, ready.c.id).limit(slots)
    deadlines = {
        name: now + timedelta(seconds=locked[name].timeout_s) for name in capacity
    }
    claimed = conn.execute(transitions.claim(picked, node_id, now, deadlines)).mappings()
    return [
        ClaimedRun(
            run_id=row["id"],
            lease=row["lease"],
            attempt=row["attempt"],
            agent=locked[row["agent"]],
            trigger_id=row["trigger_id"],
            scheduled_for=row["scheduled_for"],
            started_at=now,
            deadline_at=deadlines[row["agent"]],
            payload=row["payload"],
        )
        for row in claimed
    ]


@dataclass(frozen=True)
class FinishResult:
    applied: list[str]
    fenced: list[str]


def finish(
    conn: Connection, node_id: str, outcomes: list[Outcome], now: datetime
) -> FinishResult:
    """Record finished attempts, many in one statement.

    Fenced: a row is written only if the run is still ``running`` on ``node_id`` with the
    outcome's ``lease``. A worker that was paused past its lease, or whose run was
    cancelled, gets its outcome back in ``fenced`` and nothing changes (guarantee 2).
    One exception: a *success* from the same lease and node overrides the sweeper's
    timeout backstop (``SWEPT_FOR_TIME``, which changes neither). A success means the agent
    finished within its timeout (the engine stops it at its deadline); the sweeper only
    saw a run still ``running`` because the success had not been written yet, e.g. across
    a database outage. Nothing else can have happened to the run meanwhile: that cancel is
    final, and a retry by hand re-queues it (no longer ``cancelled``) and bumps the lease.
    An outcome with ``retry_delay_s`` puts the run back to ``queued`` for its next attempt,
    ready at ``now`` plus that delay. Token and cost usage is added to what earlier attempts
    of the run used.
    Failed attempts are also appended to ``run_events``. Two statements at most.
    """
    if not outcomes:
        return FinishResult([], [])
    rows = [
        {
            "id": o.run_id,
            "lease": o.lease,
            "status": _QUEUED if o.retry_delay_s is not None else o.status.value,
            "output": o.output,
            "stderr": o.stderr,
            "error": o.error,
            "finished_at": None if o.retry_delay_s is not None else now,
            "run_after": (
                None if o.retry_delay_s is None else now + timedelta(seconds=o.retry_delay_s)
            ),
            "input_tokens": o.usage.input_tokens,
            "output_tokens": o.usage.output_tokens,
            "cost_usd": o.usage.cost_usd,
            "model": o.usage.model,
        }
        for o in outcomes
    ]
    source = bulk_source(conn, _OUTCOME_COLUMNS, rows)
    applied_rows = conn.execute(transitions.finish(source, node_id))
    attempts = {run_id: attempt for run_id, attempt in applied_rows}
    record_events(conn, [
        RunEvent(o.run_id, now, "retry" if o.retry_delay_s is not None else o.status.value,
                 attempts[o.run_id], node_id, o.error)
        for o in outcomes
        if o.run_id in attempts and o.status is not RunStatus.SUCCEEDED
    ])
    return FinishResult(
        applied=[o.run_id for o in outcomes if o.run_id in attempts],
        fenced=[o.run_id for o in outcomes if o.run_id not in attempts],
    )


def record_progress(
    conn: Connection, run_id: str, lease: int, node_id: str, now: datetime, progress: str | None
) -> bool:
    """A worker's progress beat for one run. Fenced like ``finish``; False when the run is
    no longer this worker's (the worker should stop)."""
    result = conn.execute(transitions.progress(run_id, lease, node_id, now, progress))
    return result.rowcount == 1
