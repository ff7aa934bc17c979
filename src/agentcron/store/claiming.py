"""Claiming runs, and the fenced writes a worker makes for a claimed run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    SmallInteger,
    String,
    Text,
    and_,
    select,
    true,
    union_all,
)
from sqlalchemy.engine import Connection, Dialect

from agentcron.models import (
    AgentKind,
    AlertEvent,
    AlertKind,
    ClaimedRun,
    Outcome,
    RunEvent,
    RunStatus,
)
from agentcron.rules.routing import Routing
from agentcron.store import breaker, follow_ups, keys, pools, transitions
from agentcron.store.alerts import raise_events
from agentcron.store.bulk import bulk_source, write_by_key
from agentcron.store.events import record_events
from agentcron.store.schema import agents, runs
from agentcron.store.slots import HeldSlots, free_slots, hold_shards, read_specs, routed
from agentcron.store.types import UTCDateTime

log = structlog.get_logger(__name__)
_TIMES = UTCDateTime()
_QUEUED = RunStatus.QUEUED.value
_RUNNING = RunStatus.RUNNING.value
_REMOTE = AgentKind.REMOTE.value


_CLAIM_COLUMNS: dict[str, Any] = {
    "id": String(36),
    "shard": SmallInteger(),
    "deadline_at": UTCDateTime(),
}
_OUTCOME_COLUMNS: dict[str, Any] = {
    "id": String(36),
    "lease": Integer(),
    "status": String(16),
    "output": Text(),
    "stderr": Text(),
    "error": Text(),
    "progress": Text(),
    "finished_at": UTCDateTime(),
    "run_after": UTCDateTime(),
    "input_tokens": BigInteger(),
    "output_tokens": BigInteger(),
    "cost_usd": Float(),
    "model": String(100),
}


def claim_runs(conn: Connection, node_id: str, slots: int, now: datetime,
               remote: Sequence[str] | None = None, routing: Routing | None = None
               ) -> list[ClaimedRun]:
    """Move up to ``slots`` ready queued runs to ``running`` on ``node_id``.

    Whose runs: a node (``remote`` None) claims those of every agent but the remote ones,
    which only workers run; a worker passes the remote agents it asks for (``remote``), and
    claims only theirs, through the same shards, budgets and locks.

    ``routing`` (a node's claim only): only runs of the agents it lets this node run
    (``rules.routing``; default: the untagged agents); the runs of other agents stay
    queued for the nodes that run them. A worker's claim is not routed: its token and the
    agents it names decide.

    Locks: the concurrency shards the claim fills (``slots.hold_shards``) and the queued
    runs it picks (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), so nodes claiming for the same
    agent at once take different shards and different runs rather than wait for each other.
    Guarantees: an agent never has more running runs than its ``max_concurrency`` (each
    shard's running runs are counted after its lock is held). Each claim increments
    ``lease`` (the fencing token) and ``attempt``. Oldest ready runs first. Five statements
    whatever the length of the queue, each reading a bounded number of rows.

    Agents with a concurrency key (``AgentSpec.keys``) are picked by ``keys.pick_keyed``
    under the same shards, plus a try-lock per key: never more than ``max_per_key`` running
    runs per key, keys taken in turn (``rules.keys.fair_order``). Up to four statements
    more per keyed agent; none when no claimed agent has a key.
    """
    if slots <= 0:
        return []
    # Agents with a ready run: one index probe per agent (ix_runs_ready).
    whose = (agents.c.kind != _REMOTE if remote is None
             else and_(agents.c.kind == _REMOTE, agents.c.name.in_(list(remote))))
    ready_agents = select(agents.c.name).where(
        whose,
        select(runs.c.id)
        .where(runs.c.agent == agents.c.name, runs.c.status == _QUEUED,
               runs.c.run_after <= now)
        .exists()
    )
    if remote is None and routing is not None and routing.agents and not routing.tags:
        ready_agents = ready_agents.where(agents.c.name.in_(sorted(routing.agents)))
    specs = read_specs(conn, ready_agents.scalar_subquery())
    if remote is None:
        specs = routed(specs, routing)
    capacity = {name: held for name, held in
                free_slots(conn, specs, hold_shards(conn, specs, slots), now).items()
                if held.total}
    if not capacity:
        return []
    plain = {name: min(held.total, slots) for name, held in capacity.items()
             if held.spec.keys is None}
    picks = _pick(conn, plain, slots, now) if plain else []
    keyed = {name: (held.spec.keys, min(held.total, slots), held.spec.max_concurrency)
             for name, held in capacity.items() if held.spec.keys is not None}
    if keyed:  # agents with a concurrency key: their own per-key locks and fair order
        picks = _merge(picks, keys.pick_keyed(conn, keyed, now), slots)
    # Rate limits: only when a picked run's agent has a pool or a rate (else no statement).
    kept, verdict = _rate_limit(conn, capacity, picks, now)
    if len(kept) < len(picks) == slots:
        # Runs held back by a full pool must not cost the other agents their slots.
        kept += _refill(conn, capacity, kept, slots, now)
    picks = kept
    if not picks:
        return []
    assigned: list[dict[str, Any]] = [{"id": run_id, "shard": capacity[agent].take(1)[0],
                 "deadline_at": now + timedelta(seconds=capacity[agent].spec.timeout_s)}
                for run_id, agent, _ in picks]
    source = bulk_source(conn, _CLAIM_COLUMNS, assigned)
    claimed = write_by_key(conn, transitions.claim(source, node_id, now))
    deadlines = {a["id"]: a["deadline_at"] for a in assigned}
    result: list[ClaimedRun] = []
    unreadable: list[RunEvent] = []
    quarantined: list[AlertEvent] = []
    for row in (r._mapping for r in claimed):
        try:
            scheduled_for, payload = read_claimed(row, conn.dialect)
        except UnreadableValue as exc:
            conn.execute(transitions.quarantine(row["id"], row["lease"], str(exc), now))
            unreadable.append(RunEvent(row["id"], now, "failed", row["attempt"], node_id,
                                       str(exc)))
            quarantined.append(AlertEvent(AlertKind.FAILED, row["agent"], row["trigger_id"],
                                          row["id"], f"quarantined: {str(exc)[:300]}"))
            continue
        result.append(ClaimedRun(
            run_id=row["id"],
            lease=row["lease"],
            attempt=row["attempt"],
            agent=capacity[row["agent"]].spec,
            trigger_id=row["trigger_id"],
            scheduled_for=scheduled_for,
            started_at=now,
            deadline_at=deadlines[row["id"]],
            payload=payload,
        ))
    if verdict is not None:
        pools.record(conn, verdict, [(r.run_id, r.agent.name, r.attempt) for r in result], now)
    if unreadable:
        record_events(conn, unreadable)
        raise_events(conn, quarantined, now)
        log.error("run_quarantined", runs=[e.run_id for e in unreadable],
                  reason=unreadable[0].message)
    return result


def _merge(plain: list[tuple[str, str, datetime]], keyed: list[keys.KeyedPick], slots: int
           ) -> list[tuple[str, str, datetime]]:
    """Plain and keyed picks, oldest first across agents, cut to ``slots``. A keyed agent's
    picks keep their fair order: its i-th pick sorts at its i-th oldest time, so a cut
    takes as many of its runs as oldest-first would, and the ones fair order chose."""
    ranked: dict[str, list[keys.KeyedPick]] = {}
    for pick in keyed:
        ranked.setdefault(pick.agent, []).append(pick)
    merged = list(plain)
    for agent_picks in ranked.values():
        times = sorted(p.run_after for p in agent_picks)
        merged += [(p.run_id, p.agent, at) for p, at in zip(agent_picks, times, strict=True)]
    return sorted(merged, key=lambda pick: pick[2])[:slots]


Pick = tuple[str, str, datetime]
"""(run id, agent, run_after) of a run a claim picked."""


def _rate_limit(conn: Connection, capacity: dict[str, HeldSlots], picks: list[Pick],
                now: datetime) -> tuple[list[Pick], pools.Verdict | None]:
    """The picks (oldest first) that the pools and rates of their agents let start now
    (``pools.enforce``, which locks the pools; judged in pick order, so a pool's room goes
    to its oldest ready runs whichever agent they belong to), and the verdict to record
    them with. The ready runs of agents held back get their reason. Unchanged, with no
    statement, when no picked run's agent has a pool or a rate."""
    limited = {agent: capacity[agent].spec for _, agent, _ in picks
               if pools.limited(capacity[agent].spec)}
    if not limited:
        return picks, None
    verdict = pools.enforce(conn, limited,
                            [agent for _, agent, _ in picks if agent in limited], now)
    if verdict.reasons:
        pools.mark_waiting(conn, verdict.reasons, now)
    left = dict(verdict.allowed)
    kept: list[Pick] = []
    for pick in picks:
        agent = pick[1]
        if agent in limited:
            if left[agent] <= 0:
                continue
            left[agent] -= 1
        kept.append(pick)
    return kept, verdict


def _refill(conn: Connection, capacity: dict[str, HeldSlots], kept: list[Pick],
            slots: int, now: datetime) -> list[Pick]:
    """More picks, of the plain agents (no pool, rate or key), for the slots that a claim's
    held-back runs left: each such agent is asked for what it had plus what is left
    (``_pick`` returns the same oldest runs first; on PostgreSQL this transaction's own
    locks do not skip them), and the runs already kept are left out."""
    free = slots - len(kept)
    had = {agent: sum(1 for _, a, _ in kept if a == agent) for agent in capacity}
    wanted = {agent: min(held.total, had[agent] + free) for agent, held in capacity.items()
              if not pools.limited(held.spec) and held.spec.keys is None
              and held.total > had[agent]}
    if not wanted:
        return []
    taken = {run_id for run_id, _, _ in kept}
    more = [pick for pick in _pick(conn, wanted, slots, now) if pick[0] not in taken]
    return more[:free]

def _pick(conn: Connection, wanted: dict[str, int], slots: int, now: datetime
          ) -> list[tuple[str, str, datetime]]:
    """(id, agent, run_after) of the oldest ready runs, at most ``wanted[agent]`` of each agent and
    ``slots`` in all, oldest first. Each agent's runs are read in the order of its index
    (ix_runs_ready: agent, run_after) and cut off by LIMIT: the work is bounded by what is
    claimed, not by the length of the queue (ranking the whole queue made every claim slower
    as a backlog grew, which grew the backlog). On PostgreSQL the runs are locked ``SKIP
    LOCKED``, so a node claiming for the same agent at once picks others."""
    if conn.dialect.name == "postgresql":
        wants = bulk_source(conn, {"name": String(100), "n": Integer()},
                            [{"name": name, "n": n} for name, n in sorted(wanted.items())])
        oldest = (
            select(runs.c.id, runs.c.agent, runs.c.run_after)
            .where(runs.c.agent == wants["name"], runs.c.status == _QUEUED,
                   runs.c.run_after <= now)
            .order_by(runs.c.run_after)
            .limit(wants["n"])
            .with_for_update(skip_locked=True)
            .lateral("oldest")
        )
        stmt = (select(oldest.c.id, oldest.c.agent, oldest.c.run_after)
                .select_from(wants.from_clause.join(oldest, true()))
                .order_by(oldest.c.run_after, oldest.c.id).limit(slots))
    else:
        per_agent = [
            select(runs.c.id, runs.c.agent, runs.c.run_after)
            .where(runs.c.agent == name, runs.c.status == _QUEUED, runs.c.run_after <= now)
            .order_by(runs.c.run_after)
            .limit(n)
            .subquery()
            for name, n in sorted(wanted.items())
        ]
        ready = union_all(*(select(sq.c.id, sq.c.agent, sq.c.run_after)
                            for sq in per_agent)).subquery("ready")
        stmt = select(ready.c.id, ready.c.agent, ready.c.run_after).order_by(
            ready.c.run_after, ready.c.id).limit(slots)
    return [(row.id, row.agent, row.run_after) for row in conn.execute(stmt)]


class UnreadableValue(ValueError):
    """A stored value of a run that does not read back; the message says which and why."""


def read_claimed(row: Any, dialect: Dialect) -> tuple[datetime, Any]:
    """``scheduled_for`` and ``payload`` of a claimed row, read from the values as stored
    (``transitions.claim`` returns them unconverted). On PostgreSQL the driver has decoded
    both already; SQLite hands over text, which need not parse."""
    try:
        scheduled_for = _TIMES.process_result_value(row["scheduled_for"], dialect)
    except Exception as exc:
        raise UnreadableValue(f"cannot read scheduled_for {str(row['scheduled_for'])[:80]!r}: "
                              f"{exc}") from exc
    if scheduled_for is None:
        raise UnreadableValue("scheduled_for is empty")
    payload = row["payload"]
    if isinstance(payload, str) and dialect.name == "sqlite":
        try:
            payload = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            raise UnreadableValue(f"cannot read payload as JSON: {exc}") from exc
    return scheduled_for, payload


@dataclass(frozen=True)
class FinishResult:
    applied: list[str]
    fenced: list[str]
    #: (trigger id, agent) of the triggers the circuit breaker paused (``store/breaker.py``).
    paused: list[tuple[str, str]] = field(default_factory=list)


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
    Failed attempts are also appended to ``run_events``. A run's final failure or success
    is counted on its trigger, and a trigger whose count reaches its breaker's threshold is
    paused, in this transaction (``store/breaker.py``, which locks those trigger rows
    first: the lock order). Final failures and breaker pauses raise their alerts
    (``alerts.raise_events``) in this transaction too. Two statements, up to three more
    for the breaker, and the alerts' when a run failed or a trigger was paused.
    Outcomes' follow-ups (``store/follow_ups.py``) are created for the applied outcomes,
    under the guardrails, with their target agents' rows locked first; none: no statement.
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
            "progress": o.progress,
            "finished_at": None if o.retry_delay_s is not None else now,
            "run_after": (
                None if o.retry_delay_s is None else now + timedelta(seconds=o.retry_delay_s)
            ),
            "input_tokens": o.usage.input_tokens,
            "output_tokens": o.usage.output_tokens,
            "cost_usd": o.usage.cost_usd,
            "model": o.usage.model,
        }
        # In id order: the update then locks its runs in the order ``release`` locks a
        # node's running runs (joined by key, ``write_by_key``), so a finish still in
        # flight when its node drains cannot deadlock with the release.
        for o in sorted(outcomes, key=lambda o: (o.run_id, o.lease))
    ]
    final = [o for o in outcomes if o.retry_delay_s is None
             and o.status in (RunStatus.FAILED, RunStatus.SUCCEEDED)]
    # Follow-ups: the target agents' rows first (lock order: agents, triggers, runs);
    # not a statement more when no outcome has any (the hot path).
    scheduling = follow_ups.wanted(outcomes)
    policies = follow_ups.lock_targets(conn, outcomes) if scheduling else {}
    locked = breaker.lock_triggers(
        conn, [o.run_id for o in final],
        [o.run_id for o in final if o.status is RunStatus.FAILED])
    source = bulk_source(conn, _OUTCOME_COLUMNS, rows)
    applied_rows = write_by_key(conn, transitions.finish(source, node_id))
    attempts = {row.id: row.attempt for row in applied_rows}
    pools.report_usage(conn, outcomes, attempts)
    trigger_of = {row.id: row.trigger_id for row in applied_rows}
    tripped = breaker.count_outcomes(conn, locked, [
        breaker.FinalOutcome(o.run_id, trigger_of[o.run_id], o.status is RunStatus.FAILED,
                             o.error)
        for o in final if trigger_of.get(o.run_id) is not None], now) if locked else []
    scheduled = follow_ups.write(
        conn, outcomes, {row.id: follow_ups.Asker(row.agent, row.attempt, row.started_at)
                         for row in applied_rows},
        policies, node_id, now) if scheduling else []
    record_events(conn, [
        RunEvent(o.run_id, now, "retry" if o.retry_delay_s is not None else o.status.value,
                 attempts[o.run_id], node_id, o.error)
        for o in outcomes
        if o.run_id in attempts and o.status is not RunStatus.SUCCEEDED
    ] + scheduled)
    # Final failures raise their alerts in this transaction: they commit with the outcome.
    where = {row.id: (row.agent, row.trigger_id) for row in applied_rows}
    raise_events(conn, [
        AlertEvent(AlertKind.FAILED, *where[o.run_id], o.run_id,
                   f"failed after attempt {attempts[o.run_id]}: {_first_line(o.error)}")
        for o in outcomes
        if o.run_id in where and o.status is RunStatus.FAILED and o.retry_delay_s is None
    ] + [AlertEvent(AlertKind.PAUSED, t.agent, t.trigger_id, t.run_id, t.reason)
         for t in tripped], now)
    return FinishResult(
        applied=[o.run_id for o in outcomes if o.run_id in attempts],
        fenced=[o.run_id for o in outcomes if o.run_id not in attempts],
        paused=[(t.trigger_id, t.agent) for t in tripped],
    )


def _first_line(error: str | None) -> str:
    """An error's first line (a traceback follows it), for an alert's reason."""
    lines = (error or "").strip().splitlines()
    return lines[0][:500] if lines else "no error message"


def record_progress(
    conn: Connection, run_id: str, lease: int, node_id: str, now: datetime, progress: str | None
) -> bool:
    """A worker's progress beat for one run. Fenced like ``finish``; False when the run is
    no longer this worker's (the worker should stop)."""
    result = conn.execute(transitions.progress(run_id, lease, node_id, now, progress))
    return result.rowcount == 1
