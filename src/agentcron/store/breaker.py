"""The circuit breaker: a trigger paused after N consecutive failed runs.

A trigger counts its runs' final failures (``failed``, after the last retry) since its last
success in ``consecutive_failures``; when the count reaches its ``pause_after_failures``
(else its agent's), the trigger is paused with ``paused_reason`` saying why. Both happen in
the transaction that writes the outcome (``claiming.finish``), so a node that dies after
writing a failure cannot leave the count behind, and two nodes finishing runs of one
trigger at once count both. A resume (``catalog.update_trigger`` with ``paused`` false)
clears the reason and the count.

Lock order: trigger rows before run rows (``transitions``). ``lock_triggers`` takes the
rows of the triggers a finish batch will count, in id order, *before* the batch's runs
are updated; firing and webhook deliveries take trigger rows first as well, and the claim
path never waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import case, or_, select, update
from sqlalchemy.engine import Connection

from agentcron.store.bulk import one_of
from agentcron.store.schema import agents, runs, triggers

log = structlog.get_logger(__name__)

#: Most characters of a failed run's error quoted in ``paused_reason``.
ERROR_QUOTED = 200


@dataclass(frozen=True)
class FinalOutcome:
    """A run's last word for the breaker: it failed (after its retries) or succeeded."""

    run_id: str
    trigger_id: str
    failed: bool
    error: str | None = None


@dataclass(frozen=True)
class Tripped:
    """A trigger the breaker paused: its agent, the run whose failure tripped it, why."""

    trigger_id: str
    agent: str
    run_id: str
    reason: str


def lock_triggers(conn: Connection, run_ids: Sequence[str], failing: Sequence[str]
                  ) -> set[str]:
    """The ids of the triggers whose count the outcomes of ``run_ids`` (``failing``
    among them) may change: those of a failing run, and those with failures to reset.
    On PostgreSQL their rows are locked (``FOR UPDATE``, in id order). One statement."""
    if not run_ids:
        return set()
    of_runs = select(runs.c.trigger_id).where(one_of(conn, runs.c.id, run_ids),
                                              runs.c.trigger_id.is_not(None))
    of_failing = select(runs.c.trigger_id).where(one_of(conn, runs.c.id, failing))
    stmt = (select(triggers.c.id)
            .where(triggers.c.id.in_(of_runs.scalar_subquery()),
                   or_(triggers.c.consecutive_failures != 0,
                       triggers.c.id.in_(of_failing.scalar_subquery())))
            .order_by(triggers.c.id))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return set(conn.execute(stmt).scalars())


def count_outcomes(conn: Connection, locked: set[str], outcomes: Sequence[FinalOutcome],
                   now: datetime) -> list[Tripped]:
    """Count ``outcomes`` (in the order they were written) on their triggers (those in
    ``locked``), and pause every trigger whose count reached its threshold. Returns the
    triggers it paused. One statement, two when one trips."""
    reset: set[str] = set()
    added: dict[str, int] = {}
    last: dict[str, FinalOutcome] = {}
    for outcome in outcomes:
        tid = outcome.trigger_id
        if tid not in locked:
            continue
        if outcome.failed:
            added[tid] = added.get(tid, 0) + 1
            last[tid] = outcome
        else:  # a success: only the failures after it count
            reset.add(tid)
            added.pop(tid, None)
            last.pop(tid, None)
    touched = sorted(reset | set(added))
    if not touched:
        return []
    base = case((triggers.c.id.in_(sorted(reset)), 0),
                else_=triggers.c.consecutive_failures) if reset else \
        triggers.c.consecutive_failures
    more = case(added, value=triggers.c.id, else_=0) if added else 0
    threshold = (select(agents.c.pause_after_failures)
                 .where(agents.c.name == triggers.c.agent).scalar_subquery())
    counted = conn.execute(
        update(triggers).where(triggers.c.id.in_(touched))
        .values(consecutive_failures=base + more)
        .returning(triggers.c.id, triggers.c.agent, triggers.c.paused,
                   triggers.c.consecutive_failures, triggers.c.pause_after_failures,
                   threshold.label("agent_threshold"))
    ).all()
    reasons: dict[str, str] = {}
    paused: list[Tripped] = []
    for row in counted:
        limit = row.pause_after_failures if row.pause_after_failures is not None \
            else row.agent_threshold
        if row.id not in last or row.paused or limit is None \
                or row.consecutive_failures < limit:
            continue
        reasons[row.id] = paused_reason(row.consecutive_failures, limit, last[row.id])
        paused.append(Tripped(row.id, row.agent, last[row.id].run_id, reasons[row.id]))
    if reasons:
        conn.execute(update(triggers).where(triggers.c.id.in_(sorted(reasons)))
                     .values(paused=True, paused_reason=case(reasons, value=triggers.c.id),
                             updated_at=now))
        log.warning("triggers_paused_by_breaker", triggers=sorted(reasons))
    return paused


def paused_reason(count: int, limit: int, last: FinalOutcome) -> str:
    """What ``paused_reason`` says of a trigger the breaker paused."""
    error = (last.error or "").strip().splitlines()
    quoted = f": {error[0][:ERROR_QUOTED]}" if error else ""
    return (f"circuit breaker: {count} consecutive failed runs (pause_after_failures = "
            f"{limit}); the last, run {last.run_id}, failed{quoted}")
