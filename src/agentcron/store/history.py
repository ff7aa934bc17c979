"""Runs as users see them: listing, manual fire, cancel, retry, pruning, counts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, func, select
from sqlalchemy.engine import Connection, Dialect, RowMapping
from sqlalchemy.exc import DBAPIError

from agentcron.errors import ConflictError, NotFoundError
from agentcron.models import TERMINAL_STATUSES, Run, RunEvent, RunStatus
from agentcron.rules.ids import new_run_id, run_id_range
from agentcron.store import transitions
from agentcron.store.catalog import get_agent
from agentcron.store.events import record_events
from agentcron.store.keys import key_of
from agentcron.store.lenient import problem, raw_columns, read_leniently
from agentcron.store.notify import notify
from agentcron.store.previews import payload_from_head, payload_head, text_head
from agentcron.store.rows import event_from_row, run_from_row
from agentcron.store.schema import run_events, runs

# Text columns of which a listing reads only the start.
_TEXT_HEADS = ("output", "stderr")


@dataclass(frozen=True)
class RunFilter:
    agent: str | None = None
    trigger_id: str | None = None
    status: RunStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    key: str | None = None  # the concurrency key (``runs list --key``)


def list_runs(conn: Connection, filters: RunFilter, limit: int,
              before: str | None = None, *, preview: bool = False) -> list[Run]:
    """Newest first. ``before`` is a cursor (a run id): run ids are UUIDv7, ordered by
    creation time, so paging is an index range scan however long the history is.
    ``preview``: read only the start of each payload and output (``store.previews``); a
    payload longer than that comes back as a ``Cut``."""
    columns = [payload_head(c) if c is runs.c.payload
               else text_head(c) if c.name in _TEXT_HEADS else c for c in runs.c]
    stmt: Select[Any] = select(*columns) if preview else select(runs)
    stmt = stmt.order_by(runs.c.id.desc()).limit(limit)
    if filters.agent is not None:
        stmt = stmt.where(runs.c.agent == filters.agent)
    if filters.trigger_id is not None:
        stmt = stmt.where(runs.c.trigger_id == filters.trigger_id)
    if filters.key is not None:  # ix_runs_key_id: a key's runs, newest first
        stmt = stmt.where(runs.c.concurrency_key == filters.key)
    if filters.status is not None:
        stmt = stmt.where(runs.c.status == filters.status.value)
    if filters.since is not None:
        stmt = stmt.where(runs.c.queued_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(runs.c.queued_at < filters.until)
    if before is not None:
        stmt = stmt.where(runs.c.id < before)
    return _read_runs(conn, stmt, preview)


def get_run(conn: Connection, run_id: str) -> Run:
    found = _read_runs(conn, select(runs).where(runs.c.id == run_id), preview=False)
    if not found:
        raise NotFoundError("run", run_id)
    return found[0]


def _read_runs(conn: Connection, stmt: Select[Any], preview: bool) -> list[Run]:
    """The runs ``stmt`` selects. Only if a row does not read back, a second statement
    reads the values as stored, and each unreadable value is shown as what it is (a time
    as None, JSON as its text), the row's ``error`` saying what could not be read."""
    result = conn.execute(stmt).mappings()
    try:
        return [run_from_row(_with_payload_read(row) if preview else row) for row in result]
    except DBAPIError:
        raise  # the database's own error: not a bad row
    except Exception:
        result.close()
    heads = {"payload": payload_head(runs.c.payload),
             **{name: text_head(runs.c[name]) for name in _TEXT_HEADS}}
    raw = stmt.with_only_columns(*raw_columns(runs, heads if preview else None),
                                 maintain_column_froms=True)
    return [_lenient_run(row, conn.dialect, preview) for row in conn.execute(raw).mappings()]


def _with_payload_read(row: RowMapping) -> RowMapping:
    return cast(RowMapping, {**row, "payload": payload_from_head(row["payload"])})


def _lenient_run(raw: RowMapping, dialect: Dialect, preview: bool) -> Run:
    values, problems = read_leniently(raw, runs, dialect,
                                      required_times=("scheduled_for", "queued_at"),
                                      as_read=("payload",) if preview else ())
    if preview:
        values["payload"] = payload_from_head(values["payload"])
    try:
        RunStatus(values["status"])
    except ValueError as exc:
        problems.append(problem("status", exc))
        values["status"] = RunStatus.FAILED.value
    if problems:
        note = "cannot read this row: " + "; ".join(problems)
        values["error"] = f"{values['error']}\n{note}" if values["error"] else note
    return run_from_row(cast(RowMapping, values))


def run_ids_with_prefix(conn: Connection, prefix: str, limit: int) -> list[str]:
    """Up to ``limit`` run ids that start with ``prefix`` (a well-formed start of a run id,
    see ``rules.ids.is_run_id_prefix``), oldest first: one range scan of the primary key."""
    lowest, highest = run_id_range(prefix)
    stmt = (select(runs.c.id)
            .where(runs.c.id >= lowest, runs.c.id <= highest,
                   runs.c.id.startswith(prefix, autoescape=True))
            .order_by(runs.c.id).limit(limit))
    return [str(run_id) for run_id in conn.execute(stmt).scalars()]


def run_history(conn: Connection, run_id: str) -> list[RunEvent]:
    stmt = select(run_events).where(run_events.c.run_id == run_id).order_by(run_events.c.id)
    return [event_from_row(row) for row in conn.execute(stmt).mappings()]


def fire_now(conn: Connection, agent: str, payload: Any, now: datetime) -> str:
    """Queue a manual run (no trigger) and wake the nodes. Returns the run id."""
    spec = get_agent(conn, agent)
    run_id = new_run_id()
    conn.execute(
        transitions.insert_one(
            id=run_id, trigger_id=None, agent=agent, scheduled_for=now,
            status=RunStatus.QUEUED.value, payload=payload, coalesced=1, queued_at=now,
            run_after=now, concurrency_key=key_of(spec.keys, payload),
        )
    )
    notify(conn, "runs")
    return run_id


def cancel_run(conn: Connection, run_id: str, now: datetime) -> RunStatus:
    """Cancel a queued or running run. A running run's node sees the cancellation at its
    next heartbeat (or at once, through NOTIFY on PostgreSQL) and stops the agent.
    Returns the status the run had."""
    run = get_run(conn, run_id)
    if run.status.terminal:
        raise ConflictError(f"run {run_id} is already {run.status.value}; nothing to cancel")
    changed = conn.execute(
        transitions.cancel_by_user(run_id, run.status, run.lease, now)
    ).rowcount
    if not changed:
        raise ConflictError(f"run {run_id} changed while cancelling; try again")
    record_events(conn, [RunEvent(run_id, now, "cancelled", run.attempt, run.node_id,
                                  "cancelled by a user")])
    notify(conn, "cancel")
    return run.status


def retry_run(conn: Connection, run_id: str, now: datetime) -> str:
    """Run a finished run again; returns the id of the run that will run.

    A failed, cancelled or skipped run is queued again in place, as a fresh set of attempts
    (its events are kept, and its usage adds up with the new attempts'). A succeeded run is
    never rewritten: a new run of the same agent, trigger and payload is queued, with
    ``retry_of`` naming the original, which keeps its output and gets a ``retried`` event
    naming the new run."""
    run = get_run(conn, run_id)
    if run.status not in TERMINAL_STATUSES:
        raise ConflictError(f"run {run_id} is {run.status.value}; only a finished run can be "
                            "retried")
    if run.status is RunStatus.SUCCEEDED:
        new_id = new_run_id()
        conn.execute(transitions.insert_one(
            id=new_id, trigger_id=run.trigger_id, agent=run.agent, scheduled_for=now,
            status=RunStatus.QUEUED.value, payload=run.payload, coalesced=1, queued_at=now,
            run_after=now, retry_of=run_id, concurrency_key=run.concurrency_key))
        record_events(conn, [
            RunEvent(run_id, now, "retried", run.attempt, None,
                     f"retried by a user as run {new_id}; this run keeps its output"),
            RunEvent(new_id, now, "queued", 0, None, f"retry of succeeded run {run_id}"),
        ])
        notify(conn, "runs")
        return new_id
    changed = conn.execute(transitions.retry_by_user(run_id, run.status, now)).rowcount
    if not changed:
        raise ConflictError(f"run {run_id} changed while retrying; try again")
    record_events(conn, [RunEvent(run_id, now, "retried", run.attempt, None,
                                  f"retried by a user after {run.status}")])
    notify(conn, "runs")
    return run_id


def prune(conn: Connection, finished_before: datetime, limit: int, *,
          only_skipped: bool = False) -> int:
    """Delete up to ``limit`` finished runs (and their events) that ended before the
    cutoff; only ``skipped`` ones with ``only_skipped``. Active runs are never pruned."""
    ids = [row[0] for row in conn.execute(
        transitions.prunable(finished_before, limit, only_skipped=only_skipped))]
    if not ids:
        return 0
    events, doomed = transitions.prune(ids)
    conn.execute(events)
    return conn.execute(doomed).rowcount


def count_by_status(conn: Connection, since: datetime | None = None) -> dict[str, int]:
    stmt = select(runs.c.status, func.count()).group_by(runs.c.status)
    if since is not None:
        stmt = stmt.where(runs.c.queued_at >= since)
    return {status: int(n) for status, n in conn.execute(stmt)}
