"""Remote workers: processes that pull runs of ``remote`` agents over HTTP.

How a worker is represented: a row of ``nodes`` with ``kind = 'worker'`` and the id
``worker:<the id it chose>`` (``node_id_of``). A run a worker claims has that id in its
``node_id``, so everything that fences on (lease, node) — ``finish``, progress, the
heartbeat's revoked list, the sweeper's recovery of a silent node's runs, the removal of
long-dead rows — works for workers unchanged. A worker's row is written when it claims
(``claim``) and refreshed when it beats (``beat``); it records the token the worker speaks
with, and another token cannot take its id over (``ConflictError``).

A worker is lost when it has not beaten (or claimed) for its zombie timeout; each of its
runs is judged by its own agent's ``zombie_timeout_s`` (else the worker row's), exactly as a
node's. A worker that drains says so in its beat (``draining``) and releases what it
cannot finish (``release_run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from agentcron.errors import ConflictError
from agentcron.models import AgentKind, ClaimedRun, RunEvent, RunStatus, Worker
from agentcron.store import claiming, transitions
from agentcron.store.database import dialect_insert
from agentcron.store.events import record_events
from agentcron.store.liveness import revoked_runs
from agentcron.store.notify import notify
from agentcron.store.schema import agents, nodes, runs

WORKER_PREFIX = "worker:"
#: A worker's zombie timeout for runs of agents that set none (as a node's default).
DEFAULT_WORKER_ZOMBIE_TIMEOUT_S = 60.0
_QUEUED = RunStatus.QUEUED.value
_RUNNING = RunStatus.RUNNING.value
_WORKER = "worker"


def node_id_of(worker_id: str) -> str:
    """The ``nodes`` id (and a run's ``node_id``) of the worker that calls itself
    ``worker_id``: prefixed, so no worker can share an id with a node."""
    return WORKER_PREFIX + worker_id


@dataclass(frozen=True)
class WorkerCall:
    """Who is calling: the worker's own id, the token it speaks with, where from, and the
    version it says it runs."""

    worker_id: str
    token: str
    address: str = ""
    version: str = ""

    @property
    def node_id(self) -> str:
        return node_id_of(self.worker_id)


class ClaimResult(NamedTuple):
    """The runs claimed; when none, in how many seconds (on the store's clock) the next of
    the agents' queued runs becomes ready (a retry's backoff, a jittered fire), if any is
    queued for later."""

    runs: list[ClaimedRun]
    ready_in_s: float | None


class RunHead(NamedTuple):
    """What a worker's write needs to know about a run before it is fenced."""

    id: str
    agent: str
    attempt: int
    lease: int
    status: str
    node_id: str | None
    #: The token of the worker holding the run (None unless a worker holds it).
    holder_token: str | None


def _touch(conn: Connection, call: WorkerCall, agent_names: Sequence[str] | None,
           now: datetime, draining: bool = False) -> None:
    """Insert or refresh the worker's row (its beat). ConflictError when the id is taken
    by a node or by a worker speaking with another token."""
    row = conn.execute(select(nodes.c.kind, nodes.c.token_name)
                       .where(nodes.c.id == call.node_id)).first()
    if row is not None and (row.kind != _WORKER or row.token_name != call.token):
        raise ConflictError(
            f"worker id {call.worker_id!r} is in use by another token; give each worker "
            "its own id")
    values: dict[str, Any] = {
        "id": call.node_id, "hostname": call.address[:255], "pid": 0,
        "version": call.version[:32], "started_at": now, "heartbeat_at": now,
        "zombie_timeout_s": DEFAULT_WORKER_ZOMBIE_TIMEOUT_S, "draining": draining,
        "kind": _WORKER, "agents": list(agent_names or []), "token_name": call.token,
    }
    refresh: dict[str, Any] = {"heartbeat_at": now, "draining": draining,
                               "hostname": values["hostname"]}
    if call.version:
        refresh["version"] = values["version"]
    if agent_names is not None:
        refresh["agents"] = values["agents"]
    conn.execute(dialect_insert(conn, nodes).values(values)
                 .on_conflict_do_update(index_elements=["id"], set_=refresh))


def claim(conn: Connection, call: WorkerCall, agent_names: Sequence[str], limit: int,
          now: datetime) -> ClaimResult:
    """Refresh the worker's row and claim up to ``limit`` ready runs of the remote agents
    ``agent_names`` for it, through ``claiming.claim_runs`` (the same shards, budgets and
    ``SKIP LOCKED`` as a node's claim). Four to seven statements."""
    _touch(conn, call, agent_names, now)
    claimed = claiming.claim_runs(conn, call.node_id, limit, now, remote=agent_names)
    if claimed:
        return ClaimResult(claimed, None)
    later = conn.execute(
        select(func.min(runs.c.run_after))
        .where(runs.c.agent.in_(list(agent_names)), runs.c.status == _QUEUED,
               runs.c.run_after > now)
    ).scalar()
    return ClaimResult([], None if later is None else (later - now).total_seconds())


def beat(conn: Connection, call: WorkerCall, inflight: list[tuple[str, int]],
         now: datetime, draining: bool) -> list[str]:
    """The worker's beat: one write of its row, one read of its runs. Returns the runs in
    ``inflight`` (id, lease) that are no longer its own under that lease (cancelled, taken
    over, finished): the worker stops them."""
    _touch(conn, call, None, now, draining)
    return revoked_runs(conn, call.node_id, inflight)


def run_head(conn: Connection, run_id: str) -> RunHead | None:
    """The run's agent, attempt, lease, status and holder (one read, no lock)."""
    row = conn.execute(
        select(runs.c.id, runs.c.agent, runs.c.attempt, runs.c.lease, runs.c.status,
               runs.c.node_id, nodes.c.token_name)
        .select_from(runs.outerjoin(nodes, (nodes.c.id == runs.c.node_id)
                                    & (nodes.c.kind == _WORKER)))
        .where(runs.c.id == run_id)).first()
    return None if row is None else RunHead(*row)


def run_heads(conn: Connection, run_ids: Sequence[str]) -> dict[str, RunHead]:
    """``run_head`` for many runs in one read: the runs found, by id."""
    if not run_ids:
        return {}
    rows = conn.execute(
        select(runs.c.id, runs.c.agent, runs.c.attempt, runs.c.lease, runs.c.status,
               runs.c.node_id, nodes.c.token_name)
        .select_from(runs.outerjoin(nodes, (nodes.c.id == runs.c.node_id)
                                    & (nodes.c.kind == _WORKER)))
        .where(runs.c.id.in_(list(run_ids))))
    return {row.id: RunHead(*row) for row in rows}


def agents_have_ready_runs(conn: Connection, run_ids: Sequence[str], now: datetime) -> bool:
    """Whether ready queued runs of any of ``run_ids``' agents wait (one statement)."""
    their_agents = select(runs.c.agent).where(runs.c.id.in_(list(run_ids)))
    return conn.execute(
        select(select(runs.c.id).where(runs.c.agent.in_(their_agents),
                                       runs.c.status == _QUEUED,
                                       runs.c.run_after <= now).exists())
    ).scalar() is True


def release_run(conn: Connection, node_id: str, run_id: str, lease: int,
                now: datetime) -> bool:
    """Hand one run back to the queue, its attempt given back; fenced on (lease, worker).
    False (nothing changed) when the lease is stale."""
    row = conn.execute(transitions.release_one(run_id, lease, node_id, now)).first()
    if row is None:
        return False
    record_events(conn, [RunEvent(run_id, now, "released", row.attempt + 1, node_id,
                                  "released by its worker; run re-queued")])
    notify(conn, "runs")
    return True


def list_workers(conn: Connection, default_zombie_timeout_s: float) -> list[Worker]:
    """Every worker row, oldest first, with its runs in flight; its zombie timeout is the
    longest of its agents' (``default_zombie_timeout_s`` for one that sets none)."""
    counts: dict[str, int] = {node_id: int(n) for node_id, n in conn.execute(
        select(runs.c.node_id, func.count())
        .where(runs.c.status == _RUNNING, runs.c.node_id.like(WORKER_PREFIX + "%"))
        .group_by(runs.c.node_id))}
    timeouts = {name: t for name, t in conn.execute(
        select(agents.c.name, agents.c.zombie_timeout_s)
        .where(agents.c.kind == AgentKind.REMOTE.value))}
    result: list[Worker] = []
    for row in conn.execute(select(nodes).where(nodes.c.kind == _WORKER)
                            .order_by(nodes.c.started_at, nodes.c.id)).mappings():
        names = [str(n) for n in (row["agents"] or [])]
        limit = max([timeouts.get(n) or default_zombie_timeout_s for n in names]
                    or [default_zombie_timeout_s])
        result.append(Worker(
            id=row["id"][len(WORKER_PREFIX):], agents=names, token=row["token_name"],
            address=row["hostname"], version=row["version"], started_at=row["started_at"],
            heartbeat_at=row["heartbeat_at"], zombie_timeout_s=float(limit),
            draining=bool(row["draining"]), running=int(counts.get(row["id"], 0))))
    return result

