"""Nodes: registration, heartbeats, the sweeper that recovers lost and timed-out runs, and
the drain's release of in-flight runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from agentcron.models import AlertEvent, AlertKind, Node, RunEvent, RunStatus
from agentcron.rules.retry import backoff_delay_s
from agentcron.rules.routing import Routing
from agentcron.store import transitions
from agentcron.store.alerts import raise_events
from agentcron.store.bulk import bulk_source, one_of, write_by_key
from agentcron.store.database import dialect_insert
from agentcron.store.events import record_events
from agentcron.store.notify import notify
from agentcron.store.rows import node_from_row
from agentcron.store.schema import agents, nodes, runs
from agentcron.store.types import UTCDateTime

_RUNNING = RunStatus.RUNNING.value
_QUEUED = RunStatus.QUEUED.value
# A silent node's row is kept this many zombie timeouts (so operators see it as dead), but
# never longer than NODE_ROW_RETENTION_MAX, then removed by the sweeper. Its runs are
# recovered long before, after one zombie timeout. (Listings stop showing a dead node
# after services.nodes.DEAD_NODE_SHOWN, whether or not a sweeper has run.)
NODE_ROW_RETENTION_FACTOR = 10
NODE_ROW_RETENTION_MAX = timedelta(hours=24)


@dataclass(frozen=True)
class NodeInfo:
    id: str
    hostname: str
    pid: int
    version: str
    zombie_timeout_s: float
    routing: Routing = field(default_factory=Routing)


@dataclass(frozen=True)
class HeartbeatResult:
    """``known`` is False when this node's row was gone (it was declared dead, e.g. after
    a long pause): the caller re-registers. ``revoked`` are in-flight runs that are no
    longer this node's to run (cancelled, or taken over after a lost lease)."""

    known: bool
    revoked: list[str]


@dataclass
class SweepResult:
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    nodes_removed: list[str] = field(default_factory=list)


def register(conn: Connection, node: NodeInfo, now: datetime) -> list[str]:
    """Insert or refresh this node's row. Runs still ``running`` under this node id belong
    to a previous process with the same id (a crash and restart): they are recovered at
    once, as lost, rather than adopted. Returns their ids."""
    leftovers = conn.execute(_running_runs().where(runs.c.node_id == node.id)).all()
    retried, failed = _recover(
        conn, [(row, f"node {node.id} restarted while the run was in flight")
               for row in leftovers], now)
    values: dict[str, Any] = {
        "id": node.id, "hostname": node.hostname, "pid": node.pid, "version": node.version,
        "started_at": now, "heartbeat_at": now, "zombie_timeout_s": node.zombie_timeout_s,
        "draining": False,
        "agents": sorted(node.routing.agents) or None,
        "tags": sorted(node.routing.tags) or None,
    }
    stmt = dialect_insert(conn, nodes).values(values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"heartbeat_at": now, "zombie_timeout_s": node.zombie_timeout_s,
                  "draining": False, "pid": node.pid, "agents": values["agents"],
                  "tags": values["tags"]},
        )
    )
    if retried:
        notify(conn, "runs")
    return retried + failed


def heartbeat(
    conn: Connection, node_id: str, now: datetime, inflight: list[tuple[str, int]]
) -> HeartbeatResult:
    """One node's beat: one UPDATE of its node row (never one per run), plus one SELECT
    that checks the node's in-flight runs are still its own under the same lease."""
    known = conn.execute(
        update(nodes).where(nodes.c.id == node_id).values(heartbeat_at=now)
    ).rowcount == 1
    revoked = revoked_runs(conn, node_id, inflight)
    return HeartbeatResult(known=known, revoked=revoked)


def revoked_runs(conn: Connection, node_id: str, inflight: list[tuple[str, int]]
                 ) -> list[str]:
    """The runs of ``inflight`` (id, lease) that are no longer ``node_id``'s to run under
    that lease (cancelled, finished, taken over after a lost lease, gone): one SELECT."""
    revoked: list[str] = []
    if inflight:
        leases = dict(inflight)
        current = {
            row.id: row
            for row in conn.execute(
                select(runs.c.id, runs.c.status, runs.c.node_id, runs.c.lease).where(
                    one_of(conn, runs.c.id, list(leases))
                )
            )
        }
        for run_id, lease in leases.items():
            row = current.get(run_id)
            if row is None or not (
                row.status == _RUNNING and row.node_id == node_id and row.lease == lease
            ):
                revoked.append(run_id)
    return revoked


def set_draining(conn: Connection, node_id: str) -> None:
    conn.execute(update(nodes).where(nodes.c.id == node_id).values(draining=True))


def sweep(
    conn: Connection, now: datetime, default_zombie_timeout_s: float, timeout_grace_s: float
) -> SweepResult:
    """Recover runs whose node went silent, cancel runs far past their deadline, and
    remove long-dead node rows.

    A running run is lost when its node row is missing, or the node has not beaten for the
    zombie timeout (the agent's if set, else the node's). A lost run goes back to
    ``queued`` (same attempt count, so the next claim is the next attempt) after a backoff,
    or to ``failed`` once ``max_attempts`` are used.

    Locks: the candidate run rows (``FOR UPDATE SKIP LOCKED``). Idempotent: every update
    is fenced on the lease it read, so two sweepers at once change nothing twice.
    """
    result = SweepResult()
    node_rows = {row.id: row for row in conn.execute(select(nodes))}
    min_override = conn.execute(select(func.min(agents.c.zombie_timeout_s))).scalar()
    smallest = min(
        [default_zombie_timeout_s]
        + [row.zombie_timeout_s for row in node_rows.values()]
        + ([float(min_override)] if min_override is not None else [])
    )
    fresh_nodes = [
        node_id for node_id, row in node_rows.items()
        if row.heartbeat_at >= now - timedelta(seconds=smallest)
    ]
    candidates = conn.execute(
        _running_runs().where(
            or_(runs.c.node_id.is_(None), runs.c.node_id.not_in(fresh_nodes))
        )
    ).all()
    lost: list[tuple[Any, str]] = []
    for row in candidates:
        node = node_rows.get(row.node_id)
        limit = row.zombie_timeout_s or (node.zombie_timeout_s if node else None)
        limit = limit or default_zombie_timeout_s
        if node is not None and node.heartbeat_at >= now - timedelta(seconds=limit):
            continue
        lost.append((row, "its node row is gone" if node is None else (
            f"node {row.node_id} has not heartbeated for "
            f"{(now - node.heartbeat_at).total_seconds():.0f}s (zombie timeout {limit:.0f}s)"
        )))
    result.retried, result.failed = _recover(conn, lost, now)
    result.timed_out = _cancel_timed_out(conn, now, timeout_grace_s)
    result.nodes_removed = _remove_dead_nodes(conn, now, node_rows)
    if result.retried:
        notify(conn, "runs")
    return result


def _running_runs() -> Any:
    """Running runs with what recovery needs; locks them, skipping rows another
    transaction (a finishing worker, another sweeper) holds."""
    return (
        select(
            runs.c.id, runs.c.lease, runs.c.attempt, runs.c.agent, runs.c.node_id,
            runs.c.trigger_id, agents.c.max_attempts, agents.c.zombie_timeout_s,
            agents.c.retry_backoff_s,
        )
        .select_from(runs.outerjoin(agents, agents.c.name == runs.c.agent))
        .where(runs.c.status == _RUNNING)
        .with_for_update(skip_locked=True, of=runs)
    )


def _recover(conn: Connection, lost: list[tuple[Any, str]], now: datetime
             ) -> tuple[list[str], list[str]]:
    """Lost runs back to queued after a backoff, or failed when out of attempts; fenced on
    the lease read. Returns (retried, failed) among the rows actually changed."""
    if not lost:
        return [], []
    updates: list[dict[str, Any]] = []
    for row, why in lost:
        if row.attempt >= (row.max_attempts or 1):
            updates.append({"id": row.id, "lease": row.lease, "status": RunStatus.FAILED.value,
                            "run_after": now, "finished_at": now,
                            "error": f"lost: {why}; no attempts left"})
        else:
            delay = timedelta(seconds=backoff_delay_s(row.attempt, row.retry_backoff_s or 2.0))
            updates.append({"id": row.id, "lease": row.lease, "status": _QUEUED,
                            "run_after": now + delay, "finished_at": None,
                            "error": f"lost: {why}; retrying"})
    applied = set(_apply_lost(conn, updates, now))
    retried = [u["id"] for u in updates if u["id"] in applied and u["status"] == _QUEUED]
    failed = [u["id"] for u in updates if u["id"] in applied and u["status"] != _QUEUED]
    # A run lost for the last time is a final failure: its alerts commit with it.
    by_id = {row.id: row for row, _ in lost}
    errors = {u["id"]: u["error"] for u in updates}
    raise_events(conn, [AlertEvent(AlertKind.FAILED, by_id[i].agent, by_id[i].trigger_id, i,
                                   errors[i]) for i in failed], now)
    return retried, failed


_LOST_COLUMNS: dict[str, Any] = {
    "id": String(36), "lease": Integer(), "status": String(16), "run_after": UTCDateTime(),
    "finished_at": UTCDateTime(), "error": String(),
}


def _apply_lost(conn: Connection, updates: list[dict[str, Any]], now: datetime) -> list[str]:
    source = bulk_source(conn, _LOST_COLUMNS, updates)
    applied = write_by_key(conn, transitions.lose(source))
    by_id = {u["id"]: u for u in updates}
    record_events(conn, [RunEvent(row.id, now, "lost", row.attempt, row.node_id,
                                  by_id[row.id]["error"]) for row in applied])
    return [row.id for row in applied]


def _cancel_timed_out(conn: Connection, now: datetime, grace_s: float) -> list[str]:
    """Backstop for a node that is alive but failed to stop a run at its deadline (e.g. a
    thread that ignores cancellation): the run is cancelled; the node learns it at its
    next heartbeat and abandons the run. If the run had in fact succeeded and its success
    was only waiting to be written, that success still lands (``claiming.finish``)."""
    cutoff = now - timedelta(seconds=grace_s)
    rows = conn.execute(transitions.time_out(cutoff, now)).all()
    record_events(conn, [RunEvent(r.id, now, "timeout", r.attempt, r.node_id,
                                  "exceeded the agent's timeout") for r in rows])
    return [r.id for r in rows]


def _remove_dead_nodes(conn: Connection, now: datetime, node_rows: dict[str, Any]) -> list[str]:
    dead = [
        (node_id, row.heartbeat_at) for node_id, row in node_rows.items()
        if row.heartbeat_at < now - min(NODE_ROW_RETENTION_MAX, timedelta(
            seconds=row.zombie_timeout_s * NODE_ROW_RETENTION_FACTOR))
    ]
    removed: list[str] = []
    for node_id, beat in dead:
        # Fenced on the beat we saw: a node that beat since then stays.
        gone = conn.execute(
            delete(nodes).where(nodes.c.id == node_id, nodes.c.heartbeat_at == beat)
        ).rowcount
        if gone:
            removed.append(node_id)
    return removed


def release(conn: Connection, node_id: str, now: datetime) -> list[str]:
    """Drain's last step: every run still running on this node goes back to ``queued``
    with its attempt given back (it was interrupted, not failed), and the node row is
    deleted. Other nodes are notified so they resume the runs at once."""
    rows = conn.execute(transitions.release(node_id, now)).all()
    if rows:
        record_events(conn, [RunEvent(r.id, now, "released", r.attempt + 1, node_id,
                                      "node drained; run re-queued") for r in rows])
        notify(conn, "runs")
    conn.execute(delete(nodes).where(nodes.c.id == node_id))
    return [r.id for r in rows]


def list_nodes(conn: Connection) -> list[Node]:
    counts = {
        node_id: count
        for node_id, count in conn.execute(
            select(runs.c.node_id, func.count())
            .where(runs.c.status == _RUNNING, runs.c.node_id.is_not(None))
            .group_by(runs.c.node_id)
        )
    }
    return [
        node_from_row(row, counts.get(row["id"], 0))
        for row in conn.execute(select(nodes).where(nodes.c.kind == "node")
                                .order_by(nodes.c.started_at)).mappings()
    ]


