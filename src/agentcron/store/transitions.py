"""Every way a run's status changes: the one place that writes to ``runs``.

Each operation below keeps its own transaction, locks and reads in the module that owns it
(the "operation" column), and builds its write here, so this file shows every transition a
run can make. A builder returns the statement and its caller executes it, which keeps each
operation's statement count what its docstring promises; ``replace`` is the exception, run
here whole because two operations share its effects.

==========  ======================================  ==========================  ============
transition  from -> to                              operation (module)          locks held
==========  ======================================  ==========================  ============
insert      none -> queued (running if claimed)     fire_due (firing)           due triggers,
                                                                                shards (d)
            none -> queued                          deliver (webhooks)          the trigger
            none -> queued                          fire_now (history)          -
            none -> queued (retry of a succeeded)   retry_run (history)         -
            none -> queued (a past time)            backfill (backfilling)      -
skip        none -> skipped (overlap rule)          fire_due, deliver           as insert
            queued -> skipped (over budget)         budgets.enforce in claims   shards (d)
claim       queued -> running                       claim_runs (claiming)       shards (d)
wait        queued -> queued (waiting_reason set)   claim_runs (claiming/pools) shards, pools
quarantine  running -> failed (row unreadable)      claim_runs (claiming)       shards (d)
finish      running -> succeeded/failed/cancelled   finish (claiming)           fenced (a)
            cancelled for time -> succeeded         finish (claiming)           fenced (a)
retry       running -> queued (after a delay)       finish (claiming)           fenced (a)
            failed/cancelled/skipped -> queued      retry_run (history)         fenced (b)
lose        running -> queued or failed             sweep, register (liveness)  run rows (c)
time out    running -> cancelled (past deadline)    sweep (liveness)            -
release     running -> queued (attempt given back)  release (liveness)          run rows (d)
            running -> queued (attempt given back)  release_run (workers)       fenced (a)
cancel      queued/running -> cancelled (by user)   cancel_run (history)        fenced (b)
            queued -> cancelled (agent removed)     delete_agent (catalog)      -
replace     queued/running -> cancelled (overlap)   fire_due, deliver           the triggers
prune       finished -> deleted, with its events    prune (history)             -
==========  ======================================  ==========================  ============

Locks: "due triggers" are the trigger rows ``fire_due`` selected ``FOR UPDATE SKIP LOCKED``;
(d) "shards" the concurrency shards of the claimed runs' agents (``slots.hold_shards``:
advisory locks taken with a try, never waited for), and the queued runs being claimed
(``FOR UPDATE SKIP LOCKED``); on SQLite ``BEGIN IMMEDIATE`` already excludes every other
writer. (a) fenced on (run, lease, node): a write from a stale
attempt changes nothing. (b) fenced on the status (and lease) the operation read. (c) ``FOR
UPDATE SKIP LOCKED`` on the running runs, and fenced on the lease read, so two sweepers
never change a run twice. (d) the node's running rows, ``FOR UPDATE`` in id order.
"Finished" is succeeded, failed, cancelled or skipped. A remote worker's claim, complete
and release (``workers``) go through ``claim_runs``, ``finish`` and ``release_one``, under
its own id in ``node_id``, so they are fenced exactly as a node's are.

Lock order (PostgreSQL; SQLite has one writer at a time): a transaction that takes more
than one kind of row lock takes them in this order, so no two wait on each other in a
cycle: agents rows (by name: ``lock_agents``, ``declaring``) -> trigger rows (``fire_due``,
``deliver``, ``declaring``) -> run rows -> the node's row. The claim and fire paths never
wait for a lock (``SKIP LOCKED``). One exception: ``delete_agent`` (an agent removed by
hand or by a sync) cancels the agent's queued runs before it deletes its triggers and its
row. ``finish`` locks the trigger rows whose failure count it will change (the circuit
breaker, ``store/breaker.py``) before it updates its runs, in id order; a ``finish``
batch with follow-ups locks their target agents' rows (by name:
``follow_ups.lock_targets``) before those, and creating an agent-made trigger locks its
agent's row first (``guardrails.lock_policies``). On one node,
``release`` runs only after the node's firing and claiming passes and its last ``finish``
have ended (``engine/node.py`` ``drain``, ``CompletionWriter.flush``): a ``finish`` batch
and ``release`` both change many running rows of the same node, in whatever order each
statement meets them, and were the drain's deadlock.

Two writes change no status: ``progress`` (a running run's beat and progress text, fenced
like ``finish``), and ``set_keys`` (queued runs' concurrency keys, re-rendered when their
agent's key policy changes: ``keys.rekey_queued``, with the agent's row being written).
A claim (d) also holds the keys of keyed agents it claims for (``keys.pick_keyed``:
advisory locks taken with a try, like shards). Every transition that leaves a trace
also records run events (``events.record_events``) in the same transaction; ``finish``
records failed attempts and retries, not successes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Delete,
    Insert,
    String,
    Update,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import JSON

from agentcron.models import ACTIVE_STATUSES, TERMINAL_STATUSES, RunEvent, RunStatus
from agentcron.rules.overlap import REPLACED
from agentcron.store.bulk import BulkSource
from agentcron.store.database import dialect_insert
from agentcron.store.events import record_events
from agentcron.store.notify import notify
from agentcron.store.schema import run_events, runs

_QUEUED = RunStatus.QUEUED.value
_RUNNING = RunStatus.RUNNING.value
_SUCCEEDED = RunStatus.SUCCEEDED.value
_CANCELLED = RunStatus.CANCELLED.value
_SKIPPED = RunStatus.SKIPPED.value
_ACTIVE = [s.value for s in sorted(ACTIVE_STATUSES)]
_TERMINAL = [s.value for s in sorted(TERMINAL_STATUSES)]

SWEPT_FOR_TIME = "timeout: still running past its deadline"
"""The ``reason`` of a run the sweeper cancelled as still running past its deadline."""
UNREADABLE = "unreadable: a stored value of this run does not read back"
"""The ``reason`` of a run quarantined at claim time."""
LATE_SUCCESS = ("succeeded: its success was written after the sweeper had cancelled it as "
                "past its deadline")


# -- insert (and skip at insert) -------------------------------------------------------------

def insert_fired(conn: Connection, source: BulkSource, names: list[str]) -> Insert:
    """insert: the runs of a ``fire_due`` batch, in whatever state the overlap rule and the
    fire-time claim gave them, from ``source`` (one bulk parameter); ``ON CONFLICT
    (trigger_id, scheduled_for) DO NOTHING``, so a time fired twice is one run. Returns
    (RETURNING) the ids actually inserted."""
    columns = [
        cast(source[name], JSON) if name == "payload" and conn.dialect.name == "postgresql"
        else source[name]
        for name in names
    ]
    select_rows = select(*columns).select_from(source.from_clause)
    if conn.dialect.name == "sqlite":
        # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT to parse it.
        select_rows = select_rows.where(and_(True))
    return (
        dialect_insert(conn, runs)
        .from_select(names, select_rows)
        .on_conflict_do_nothing(index_elements=["trigger_id", "scheduled_for"])
        .returning(runs.c.id)
    )


def insert_one(**values: Any) -> Insert:
    """insert: one run (a webhook delivery's, or a manual fire's with no trigger)."""
    return insert(runs).values(**values)


def set_keys(source: BulkSource) -> Update:
    """No transition: each run in ``source`` (id, concurrency_key) still ``queued`` gets
    that key (its agent's key policy changed; ``keys.rekey_queued``)."""
    return (update(runs)
            .where(runs.c.id == source["id"], runs.c.status == _QUEUED)
            .values(concurrency_key=source["concurrency_key"]))


# -- skip (over budget) ----------------------------------------------------------------------

def skip_over_budget(reasons: dict[str, str], now: datetime) -> Update:
    """skip: the ready queued runs of the agents in ``reasons`` (name -> reason), which are
    over budget, -> ``skipped``. Returns each skipped run's agent."""
    return (
        update(runs)
        .where(runs.c.agent.in_(list(reasons)), runs.c.status == _QUEUED,
               runs.c.run_after <= now)
        .values(status=_SKIPPED, finished_at=now, node_id=None,
                reason=case(reasons, value=runs.c.agent))
        .returning(runs.c.agent)
    )


# -- claim -----------------------------------------------------------------------------------

def claim(source: BulkSource, node_id: str, now: datetime) -> Update:
    """claim: each run in ``source`` (id, shard, deadline_at) still ``queued`` -> ``running``
    on ``node_id`` in that shard of its agent's limit, with a new lease, the next attempt
    and that deadline."""
    return (
        update(runs)
        .where(runs.c.id == source["id"], source.key_in(runs.c.id), runs.c.status == _QUEUED)
        .values(
            status=_RUNNING,
            node_id=node_id,
            lease=runs.c.lease + 1,
            attempt=runs.c.attempt + 1,
            started_at=now,
            heartbeat_at=now,
            progress=None,  # a new attempt has reported nothing yet
            waiting_reason=None,  # it waits no more
            deadline_at=source["deadline_at"],
            shard=source["shard"],
        )
        .returning(
            runs.c.id, runs.c.lease, runs.c.attempt, runs.c.agent, runs.c.trigger_id,
            # As stored: the caller reads each row on its own (``quarantine`` for one that
            # does not read back), so one bad row cannot fail every claim.
            type_coerce(runs.c.scheduled_for, String).label("scheduled_for"),
            type_coerce(runs.c.payload, String).label("payload"),
        )
    )


def waiting(agent: str, reason: str, now: datetime, limit: int) -> Update:
    """wait: the ``limit`` oldest ready queued runs of ``agent`` stay queued, saying why
    (a pool or rate is full; ``store/pools.py``); only those that do not say so already
    are written. ``claim`` clears it."""
    oldest = (select(runs.c.id)
              .where(runs.c.agent == agent, runs.c.status == _QUEUED, runs.c.run_after <= now)
              .order_by(runs.c.run_after).limit(limit))
    return (update(runs)
            .where(runs.c.id.in_(oldest.scalar_subquery()),
                   or_(runs.c.waiting_reason.is_(None), runs.c.waiting_reason != reason))
            .values(waiting_reason=reason))


def quarantine(run_id: str, lease: int, problem: str, now: datetime) -> Update:
    """quarantine: a run just claimed (``running`` under ``lease``) whose stored values do not
    read back -> ``failed``, with ``problem`` as its error: retrying could only fail the
    same way, and leaving it queued would fail every claim that picks it."""
    return (
        update(runs)
        .where(runs.c.id == run_id, runs.c.lease == lease, runs.c.status == _RUNNING)
        .values(status=RunStatus.FAILED.value, reason=UNREADABLE, error=problem,
                finished_at=now)
    )


# -- finish and retry ------------------------------------------------------------------------

def _accumulate(column: Any, value: Any) -> Any:
    """column + value, where an unknown (NULL) value leaves the column as it is."""
    return case((value.is_(None), column), else_=func.coalesce(column, 0) + value)


def finish(source: BulkSource, node_id: str) -> Update:
    """finish / retry: each outcome in ``source`` (id, lease, status, output, stderr, error,
    progress (kept when null), finished_at, run_after, usage) applied to a run still
    ``running`` on ``node_id`` under that lease; status ``queued`` is a retry (the node is
    cleared, ``run_after`` set). A success also lands on a run the sweeper cancelled for
    time (``SWEPT_FOR_TIME``), whose reason becomes ``LATE_SUCCESS``. Usage adds up over
    attempts. Returns (id, attempt, agent, trigger_id, started_at) of the runs changed."""
    retrying = source["status"] == _QUEUED
    swept_for_time = and_(runs.c.status == _CANCELLED, runs.c.reason == SWEPT_FOR_TIME)
    return (
        update(runs)
        .where(
            runs.c.id == source["id"],
            source.key_in(runs.c.id),
            runs.c.lease == source["lease"],
            runs.c.node_id == node_id,
            or_(runs.c.status == _RUNNING,
                and_(source["status"] == _SUCCEEDED, swept_for_time)),
        )
        .values(
            reason=case((swept_for_time, LATE_SUCCESS), else_=runs.c.reason),
            status=source["status"],
            output=source["output"],
            stderr=source["stderr"],
            error=source["error"],
            progress=func.coalesce(source["progress"], runs.c.progress),
            finished_at=source["finished_at"],
            run_after=func.coalesce(source["run_after"], runs.c.run_after),
            node_id=case((retrying, None), else_=runs.c.node_id),
            # Usage adds up over attempts: a retried run cost what all its attempts cost.
            input_tokens=_accumulate(runs.c.input_tokens, source["input_tokens"]),
            output_tokens=_accumulate(runs.c.output_tokens, source["output_tokens"]),
            cost_usd=_accumulate(runs.c.cost_usd, source["cost_usd"]),
            model=func.coalesce(source["model"], runs.c.model),
        )
        .returning(runs.c.id, runs.c.attempt, runs.c.agent, runs.c.trigger_id,
                   runs.c.started_at)
    )


def retry_by_user(run_id: str, status: RunStatus, now: datetime) -> Update:
    """retry: a finished run that did not succeed (still in ``status``, as read) ->
    ``queued`` as a fresh set of attempts, ready now. Its usage is kept and adds up with the
    new attempts' (they are all billed). A succeeded run is never re-queued: its retry is a
    new run (``insert_one`` with ``retry_of``), so its output stays."""
    return (
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == status.value)
        .values(status=_QUEUED, attempt=0, run_after=now, node_id=None,
                finished_at=None, started_at=None, deadline_at=None, reason=None,
                error=None, output=None, stderr=None, progress=None)
    )


def progress(run_id: str, lease: int, node_id: str, now: datetime, text: str | None
             ) -> Update:
    """No transition: a running run's beat and progress text, fenced like ``finish``."""
    return (
        update(runs)
        .where(runs.c.id == run_id, runs.c.lease == lease, runs.c.node_id == node_id,
               runs.c.status == _RUNNING)
        .values(heartbeat_at=now, progress=text)
    )


# -- lose, time out, release -----------------------------------------------------------------

def _not_before_its_time(run_after: Any) -> Any:
    """``run_after``, or the run's own if that is later: a run fired ahead and handed back
    before its time (lost, drained) must still not start before it."""
    return case((runs.c.run_after > run_after, runs.c.run_after), else_=run_after)


def lose(source: BulkSource) -> Update:
    """lose: each run in ``source`` (id, lease, status, run_after, finished_at, error) still
    ``running`` under that lease -> ``queued`` (retried after ``run_after``) or ``failed``.
    Returns (id, attempt, node_id) of the runs changed."""
    return (
        update(runs)
        .where(runs.c.id == source["id"], source.key_in(runs.c.id),
               runs.c.lease == source["lease"], runs.c.status == _RUNNING)
        .values(status=source["status"], run_after=_not_before_its_time(source["run_after"]),
                finished_at=source["finished_at"], error=source["error"])
        .returning(runs.c.id, runs.c.attempt, runs.c.node_id)
    )


def time_out(cutoff: datetime, now: datetime) -> Update:
    """time out: runs still ``running`` with a deadline before ``cutoff`` -> ``cancelled``
    (reason ``SWEPT_FOR_TIME``). Returns (id, attempt, node_id)."""
    return (
        update(runs)
        .where(runs.c.status == _RUNNING, runs.c.deadline_at < cutoff)
        .values(status=_CANCELLED, finished_at=now, reason=SWEPT_FOR_TIME,
                error="cancelled by the sweeper: the run exceeded its agent's timeout")
        .returning(runs.c.id, runs.c.attempt, runs.c.node_id)
    )


def release(node_id: str, now: datetime) -> Update:
    """release: every run ``running`` on ``node_id`` -> ``queued``, its attempt given back
    (it was interrupted, not failed), ready now or at its own time if later. Returns
    (id, attempt) with the attempt after it was given back."""
    mine = (runs.c.node_id == node_id, runs.c.status == _RUNNING)
    # Lock order: the rows are locked in id order first (a plain multi-row UPDATE locks
    # them in scan order), as every multi-row writer of running rows does.
    in_order = select(runs.c.id).where(*mine).order_by(runs.c.id).with_for_update()
    return (
        update(runs)
        .where(*mine, runs.c.id.in_(in_order.scalar_subquery()))
        .values(status=_QUEUED, node_id=None, attempt=runs.c.attempt - 1,
                run_after=_not_before_its_time(now), started_at=None, deadline_at=None)
        .returning(runs.c.id, runs.c.attempt)
    )


def release_one(run_id: str, lease: int, node_id: str, now: datetime) -> Update:
    """release: one run a worker hands back (unstarted, or drained), still ``running`` on
    ``node_id`` under ``lease`` -> ``queued``, its attempt given back, ready now or at its
    own time if later. Fenced like ``finish``. Returns (id, attempt) if changed."""
    return (
        update(runs)
        .where(runs.c.id == run_id, runs.c.lease == lease, runs.c.node_id == node_id,
               runs.c.status == _RUNNING)
        .values(status=_QUEUED, node_id=None, attempt=runs.c.attempt - 1,
                run_after=_not_before_its_time(now), started_at=None, deadline_at=None)
        .returning(runs.c.id, runs.c.attempt)
    )


# -- cancel, replace, prune ------------------------------------------------------------------

def cancel_by_user(run_id: str, status: RunStatus, lease: int, now: datetime) -> Update:
    """cancel: a queued or running run, still in ``status`` under ``lease`` as read,
    -> ``cancelled``."""
    return (
        update(runs)
        .where(runs.c.id == run_id, runs.c.status == status.value, runs.c.lease == lease)
        .values(status=_CANCELLED, reason="cancelled by a user", finished_at=now)
    )


def cancel_queued_of_agent(agent: str, now: datetime) -> Update:
    """cancel: the queued runs of a removed agent -> ``cancelled`` (its running runs
    finish, and its history is kept)."""
    return (
        update(runs)
        .where(runs.c.agent == agent, runs.c.status == _QUEUED)
        .values(status=_CANCELLED, reason="agent removed", finished_at=now)
    )


def replace(conn: Connection, trigger_ids: Sequence[str], now: datetime) -> int:
    """replace: the active (queued or running) runs of ``trigger_ids`` -> ``cancelled``
    (reason ``REPLACED``), each with a ``cancelled`` run event; when one was running, a
    ``cancel`` notification so its worker stops at once rather than at its next beat.
    Scheduled fires and webhook deliveries both replace through here. The caller holds
    the trigger rows' locks. Two statements for any number of triggers (three with the
    notification). Returns how many runs were cancelled."""
    if not trigger_ids:
        return 0
    replaced = conn.execute(
        update(runs)
        .where(runs.c.trigger_id.in_(list(trigger_ids)), runs.c.status.in_(_ACTIVE))
        .values(status=_CANCELLED, reason=REPLACED, finished_at=now)
        .returning(runs.c.id, runs.c.attempt, runs.c.node_id)
    ).all()
    record_events(conn, [RunEvent(r.id, now, "cancelled", r.attempt, r.node_id, REPLACED)
                         for r in replaced])
    if any(r.node_id is not None for r in replaced):
        notify(conn, "cancel")
    return len(replaced)


def prunable(finished_before: datetime, limit: int, *, only_skipped: bool = False) -> Any:
    """Up to ``limit`` ids of finished runs that ended before the cutoff (never an active
    run); only ``skipped`` ones with ``only_skipped``."""
    statuses = [_SKIPPED] if only_skipped else _TERMINAL
    return (
        select(runs.c.id)
        .where(runs.c.finished_at < finished_before, runs.c.status.in_(statuses))
        .limit(limit)
    )


def prune(ids: list[str]) -> tuple[Delete, Delete]:
    """prune: the runs ``ids`` (from ``prunable``) -> deleted, their events first."""
    return (delete(run_events).where(run_events.c.run_id.in_(ids)),
            delete(runs).where(runs.c.id.in_(ids)))
