"""Rate limits in the claiming transaction: shared pools and agents' own ``rate``.

A start of a limited agent (one with ``pool`` or ``rate``) is written to ``pool_starts``
once per limit it draws from, with the tokens it reserves (an llm agent's ``max_tokens``);
``finish`` replaces the reservation with the tokens the attempt reported. A limit's window
is what ``pool_starts`` holds for its key since ``now - window``: sliding, so no boundary
lets a second limit's worth through.

Locks (``enforce``): a pool's row ``FOR UPDATE`` (in name order, after the concurrency
shards: whoever holds a pool row waits for nothing else, so no cycle); an agent's own rate
is judged under all of its shards (``slots.hold_shards`` treats a limited agent like one
with a budget). The window is counted in a statement after those locks, so under READ
COMMITTED it sees every start committed by whoever held them before: two nodes cannot both
take the last room. On SQLite ``BEGIN IMMEDIATE`` serialises every claim already.

Agents without a pool or rate cost nothing here: ``claiming.claim_runs`` calls in only for
the limited agents among those it claims for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection

from agentcron.errors import NotFoundError
from agentcron.models import AgentSpec, Outcome, Pool
from agentcron.rules.rates import (
    WINDOW_S,
    Limit,
    Usage,
    agent_pool,
    parse_rate,
    reserve_of,
    room,
)
from agentcron.store import transitions
from agentcron.store.database import dialect_insert
from agentcron.store.schema import agents, pool_starts, pools

#: Ledger rows older than this are out of every window (a rate's period is at most a day).
LEDGER_KEPT = timedelta(days=1)
#: At most this many of an agent's oldest ready runs get a held-back claim's reason.
MARKED = 100


def limited(spec: AgentSpec) -> bool:
    """Whether a claim must judge this agent's starts against a limit."""
    return spec.pool is not None or spec.rate is not None


@dataclass
class Verdict:
    """What ``enforce`` allows: starts per agent, and why an agent got fewer than it
    wanted (its runs' ``waiting_reason``)."""

    allowed: dict[str, int]
    reasons: dict[str, str]
    limits: dict[str, list[Limit]]  # the limits each agent draws from, for ``record``
    reserve: dict[str, int]


def enforce(conn: Connection, specs: Mapping[str, AgentSpec], order: Sequence[str],
            now: datetime) -> Verdict:
    """How many starts each limited agent may make now, judging the runs a claim picked
    one at a time in ``order`` (their agents, oldest run first): a run starts if every
    limit of its agent has room for it after the runs before it. An agent refused once
    stays refused in this claim (its later runs are no smaller), with the reason. Locks
    the named pools' rows (see the module); a pool that does not exist allows nothing
    (its runs wait, with the reason saying so). Two statements (lock the pools, read the
    windows), one when no agent names a pool."""
    names = sorted({s.pool for s in specs.values() if s.pool is not None})
    declared: dict[str, Any] = {}
    if names:
        declared = {row.name: row for row in conn.execute(
            select(pools.c.name, pools.c.requests_per_minute, pools.c.tokens_per_minute)
            .where(pools.c.name.in_(names)).order_by(pools.c.name).with_for_update())}
    limits: dict[str, list[Limit]] = {}
    reasons: dict[str, str] = {}
    for name, spec in sorted(specs.items()):
        mine: list[Limit] = []
        if spec.rate is not None:
            rate = parse_rate(spec.rate)
            mine.append(Limit(agent_pool(name), f"agent {name}", rate.count, None, rate.per_s))
        if spec.pool is not None:
            row = declared.get(spec.pool)
            if row is None:
                reasons[name] = f"pool {spec.pool} is not declared (agentcron pools set)"
            else:
                mine.append(Limit(spec.pool, f"pool {spec.pool}", row.requests_per_minute,
                                  row.tokens_per_minute))
        limits[name] = mine
    used = _window(conn, [lim for mine in limits.values() for lim in mine], now)
    reserve = {name: reserve_of(spec.config) for name, spec in specs.items()}
    allowed = dict.fromkeys(specs, 0)
    for name in order:
        if name in reasons:  # refused already (or its pool is missing)
            continue
        for lim in limits[name]:
            fits, why = room(lim, used.get(lim.key, Usage()), reserve[name], 1)
            if not fits:
                reasons[name] = why or f"{lim.label} is full"
                break
        else:
            allowed[name] += 1
            for lim in limits[name]:
                was = used.get(lim.key, Usage())
                used[lim.key] = Usage(was.requests + 1, was.tokens + reserve[name])
    return Verdict(allowed, reasons, limits, reserve)


def _window(conn: Connection, limits: Iterable[Limit], now: datetime) -> dict[str, Usage]:
    """Starts and tokens (reported, else reserved) each limit's window holds: one
    statement, a range of ``ix_pool_starts_pool`` per limit."""
    windows = {lim.key: lim.window_s for lim in limits}
    if not windows:
        return {}
    tokens = func.coalesce(func.sum(func.coalesce(pool_starts.c.used_tokens,
                                                  pool_starts.c.reserved_tokens)), 0)
    stmt = (select(pool_starts.c.pool, func.count().label("n"), tokens.label("tokens"))
            .where(or_(*(and_(pool_starts.c.pool == key,
                              pool_starts.c.started_at > now - timedelta(seconds=w))
                         for key, w in sorted(windows.items()))))
            .group_by(pool_starts.c.pool))
    return {row.pool: Usage(int(row.n), int(row.tokens)) for row in conn.execute(stmt)}


def record(conn: Connection, verdict: Verdict, claimed: Iterable[tuple[str, str, int]],
           now: datetime) -> None:
    """Write the starts just claimed, ``(run id, agent, attempt)``, to the ledger of each
    limit their agent draws from. One statement; none when nothing was claimed."""
    rows = [{"run_id": run_id, "attempt": attempt, "pool": lim.key, "started_at": now,
             "reserved_tokens": verdict.reserve.get(agent, 0)}
            for run_id, agent, attempt in claimed for lim in verdict.limits.get(agent, [])]
    if rows:
        conn.execute(insert(pool_starts), rows)


def mark_waiting(conn: Connection, reasons: Mapping[str, str], now: datetime) -> None:
    """Set ``waiting_reason`` on the ``MARKED`` oldest ready runs of each held-back agent,
    writing only those that do not say so already: a claim held back again at every poll
    reads 100 index entries and writes nothing. One statement per such agent."""
    for agent, reason in sorted(reasons.items()):
        conn.execute(transitions.waiting(agent, reason, now, MARKED))


def report_usage(conn: Connection, outcomes: Iterable[Outcome],
                 attempts: Mapping[str, int]) -> None:
    """Replace the tokens the applied attempts reserved with those they reported.
    One statement, only when an applied outcome reported tokens (a limited agent's start
    not reporting keeps its reservation for the window)."""
    rows = [{"r": o.run_id, "a": attempts[o.run_id],
             "t": (o.usage.input_tokens or 0) + (o.usage.output_tokens or 0)}
            for o in outcomes if o.run_id in attempts
            and (o.usage.input_tokens is not None or o.usage.output_tokens is not None)]
    if rows:
        conn.execute(update(pool_starts)
                     .where(pool_starts.c.run_id == bindparam("r"),
                            pool_starts.c.attempt == bindparam("a"))
                     .values(used_tokens=bindparam("t")), rows)


def prune(conn: Connection, now: datetime) -> int:
    """Delete ledger rows out of every window."""
    return conn.execute(delete(pool_starts)
                        .where(pool_starts.c.started_at < now - LEDGER_KEPT)).rowcount


# -- pools themselves --------------------------------------------------------------------------

def upsert_pool(conn: Connection, pool: Pool, now: datetime) -> None:
    """Create or replace ``pool``. One statement (``ON CONFLICT``): two nodes syncing the
    same agents file at once both write it, neither fails (an update-then-insert did: the
    second insert broke the primary key and the node stopped at its start)."""
    values = {"requests_per_minute": pool.requests_per_minute,
              "tokens_per_minute": pool.tokens_per_minute, "source": pool.source,
              "updated_at": now}
    conn.execute(dialect_insert(conn, pools).values(name=pool.name, **values)
                 .on_conflict_do_update(index_elements=["name"], set_=values))


def delete_pool(conn: Connection, name: str) -> None:
    if not conn.execute(delete(pools).where(pools.c.name == name)).rowcount:
        raise NotFoundError("pool", name)


def apply_declared(conn: Connection, source: str, declared: list[Pool], now: datetime
                   ) -> int:
    """Make the pools owned by ``source`` exactly ``declared``; returns how many were
    removed. A pool of that name made by hand is taken over by the file."""
    for pool in declared:
        upsert_pool(conn, pool, now)
    keep = [p.name for p in declared]
    stmt = delete(pools).where(pools.c.source == source)
    if keep:
        stmt = stmt.where(pools.c.name.not_in(keep))
    return int(conn.execute(stmt).rowcount)


def list_pools(conn: Connection, now: datetime, name: str | None = None) -> list[Pool]:
    """Every pool (or the named one: ``NotFoundError`` if none), with what its window
    holds now and the agents that name it."""
    stmt = select(pools).order_by(pools.c.name)
    if name is not None:
        stmt = stmt.where(pools.c.name == name)
    rows = list(conn.execute(stmt).mappings())
    if name is not None and not rows:
        raise NotFoundError("pool", name)
    names = [row["name"] for row in rows]
    used = _window(conn, [Limit(n, n, None, None, WINDOW_S) for n in names], now)
    members: dict[str, list[str]] = {}
    if names:
        for agent, pool in conn.execute(select(agents.c.name, agents.c.pool)
                                        .where(agents.c.pool.in_(names))
                                        .order_by(agents.c.name)):
            members.setdefault(pool, []).append(agent)
    return [Pool(name=row["name"], requests_per_minute=row["requests_per_minute"],
                 tokens_per_minute=row["tokens_per_minute"], source=row["source"],
                 updated_at=row["updated_at"],
                 requests=used.get(row["name"], Usage()).requests,
                 tokens=used.get(row["name"], Usage()).tokens,
                 agents=tuple(members.get(row["name"], ())))
            for row in rows]
