"""Concurrency shards: an agent's ``max_concurrency`` holds across nodes without a hot row.

An agent's limit is split over ``SHARDS`` shards: shard ``s`` may hold ``shard_caps(max)[s]``
running runs (``max // SHARDS``, one more for the first ``max % SHARDS`` shards), so the caps
add up to ``max_concurrency`` exactly, and a running run records its shard (``runs.shard``).

A claim (``claim_runs`` and the fire-time claim of ``fire_due``) first takes a lock on only
as many of an agent's shards as it means to fill, then counts the running runs of those
shards in a later statement, which under READ COMMITTED sees every claim committed by
whoever held a shard before. So no shard ever holds more running runs than its cap, and the
agent never more than its limit (guarantee 3), while nodes claiming for the same agent lock
different shards and claim at the same time instead of taking turns on the agent's row.

Locks: PostgreSQL transaction-scoped advisory locks, one per (agent, shard), taken with
``pg_try_advisory_xact_lock``: a shard another node holds is skipped, never waited for, so
claims cannot deadlock on them, and every lock ends with its transaction. An agent with a
budget is claimed only under all of its shards at once (``hold_shards``), because a budget
judges every start of the agent in one order. On SQLite ``BEGIN IMMEDIATE`` already excludes
every other writer: a claim holds every shard and takes no lock.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from agentcron.models import AgentSpec, RunStatus
from agentcron.rules.routing import Routing
from agentcron.store import budgets
from agentcron.store.rows import agent_from_row
from agentcron.store.schema import agents, runs
from agentcron.store.secrets import box_of

SHARDS = 8
_RUNNING = RunStatus.RUNNING.value
_QUEUED = RunStatus.QUEUED.value

# One statement for any number of agents: for each, try the shards from a random first one
# and stop at the number wanted. The SQL text never changes, so it is prepared once.
_TRY_LOCK = text("""
SELECT a.name, (a.first + i) % a.shards AS shard
FROM jsonb_to_recordset(CAST(:wants AS jsonb)) AS a(name text, shards int, first int, n int)
CROSS JOIN LATERAL (
    SELECT i FROM generate_series(0, a.shards - 1) AS i
    WHERE pg_try_advisory_xact_lock(hashtext('agentcron/' || a.name), (a.first + i) % a.shards)
    LIMIT a.n
) AS got
""")
# An agent with a budget: its shard 0 is the gate, tried; whoever holds it then waits for the
# other shards, which only claims that never wait hold (for an instant), so this cannot
# deadlock. Two claimers can never split an agent's shards between them and both give up.
_TRY_GATE = text("""
SELECT a.name FROM jsonb_to_recordset(CAST(:names AS jsonb)) AS a(name text)
WHERE pg_try_advisory_xact_lock(hashtext('agentcron/' || a.name), 0)
""")
_LOCK_REST = text("""
SELECT count(pg_advisory_xact_lock(hashtext('agentcron/' || a.name), s))
FROM jsonb_to_recordset(CAST(:wants AS jsonb)) AS a(name text, shards int)
CROSS JOIN generate_series(1, a.shards - 1) AS s
""")


def shard_caps(max_concurrency: int) -> list[int]:
    """How many running runs each shard of an agent with this limit may hold."""
    base, extra = divmod(max(0, max_concurrency), SHARDS)
    return [base + (1 if s < extra else 0) for s in range(SHARDS)]


def _usable(spec: AgentSpec) -> int:
    """Shards with room for a run at all: the first ``min(SHARDS, max_concurrency)``."""
    return min(SHARDS, max(0, spec.max_concurrency))


@dataclass
class HeldSlots:
    """What a claim may start for one agent, under the shards it holds."""

    spec: AgentSpec
    free: dict[int, int]  # shard -> free slots in it, for the shards held
    backlog: bool  # whether ready queued runs already wait for the agent (when asked)

    @property
    def total(self) -> int:
        return sum(self.free.values())

    def take(self, n: int) -> list[int]:
        """Shards for ``n`` more runs (fullest use of each shard first), taken from ``free``;
        fewer if the held shards have less room."""
        if n == 1:  # one run at a time as a batch is claimed: no sort
            shard = max(self.free, key=self.free.__getitem__, default=None)
            if shard is None or self.free[shard] <= 0:
                return []
            self.free[shard] -= 1
            return [shard]
        shards: list[int] = []
        for shard in sorted(self.free, key=lambda s: -self.free[s]):
            room = min(self.free[shard], n - len(shards))
            shards += [shard] * room
            self.free[shard] -= room
        return shards


def read_specs(conn: Connection, names: Any) -> dict[str, AgentSpec]:
    """The specs of the named agents (a list or a subquery). No lock: the shards are the
    locks; a limit changed meanwhile applies from the next claim."""
    box = box_of(conn)
    rows = conn.execute(select(agents).where(agents.c.name.in_(names))).mappings()
    return {spec.name: spec for spec in (agent_from_row(row, box) for row in rows)}


def routed(specs: dict[str, AgentSpec], routing: Routing | None) -> dict[str, AgentSpec]:
    """The specs of the agents a node with ``routing`` runs (None: a node told nothing,
    which runs the untagged agents). Applied before any shard is locked, so a node never
    holds a shard of an agent it does not run."""
    rule = routing if routing is not None else Routing()
    return {name: spec for name, spec in specs.items() if rule.runs(name, spec.tags)}


def hold_shards(conn: Connection, specs: dict[str, AgentSpec], want: int
                ) -> dict[str, list[int]]:
    """Lock, for each agent, the shards a claim of up to ``want`` runs needs, skipping
    shards another transaction holds; for an agent with a budget, all of its shards or none
    (its gate, shard 0, is tried; the rest are then waited for). Returns the shards this
    transaction now holds per agent. One statement on PostgreSQL (two more when an agent has
    a budget), none on SQLite."""
    specs = {name: spec for name, spec in specs.items() if _usable(spec)}
    if conn.dialect.name != "postgresql":
        return {name: list(range(_usable(spec))) for name, spec in specs.items()}
    held: dict[str, list[int]] = {}
    wants = [{"name": name, "shards": _usable(spec), "first": random.randrange(_usable(spec)),
              "n": min(_usable(spec), math.ceil(want * _usable(spec) / spec.max_concurrency)
                       + 1)}
             for name, spec in sorted(specs.items()) if not _budgeted(spec)]
    if wants:
        for name, shard in conn.execute(_TRY_LOCK, {"wants": json.dumps(wants)}):
            held.setdefault(name, []).append(int(shard))
    budgeted = [{"name": name} for name, spec in sorted(specs.items()) if _budgeted(spec)]
    if budgeted:
        gated = list(conn.execute(_TRY_GATE, {"names": json.dumps(budgeted)}).scalars())
        rest = [{"name": name, "shards": _usable(specs[name])} for name in sorted(gated)
                if _usable(specs[name]) > 1]
        if rest:
            conn.execute(_LOCK_REST, {"wants": json.dumps(rest)})
        held.update({name: list(range(_usable(specs[name]))) for name in gated})
    return held


def _budgeted(spec: AgentSpec) -> bool:
    """Whether a claim must judge all of the agent's starts in one order: a budget, or a
    rate limit (its own ``rate`` or a pool's; ``store/pools.py``)."""
    return ((spec.budget is not None and spec.budget.has_limits)
            or spec.pool is not None or spec.rate is not None)


def free_slots(conn: Connection, specs: dict[str, AgentSpec], held: dict[str, list[int]],
               now: datetime, *, with_backlog: bool = False) -> dict[str, HeldSlots]:
    """The free slots of each agent in the shards this transaction holds (``hold_shards``),
    after its budget (``budgets.enforce``, which may skip an over-budget agent's ready runs).

    Must run in a statement after the locks were taken: under READ COMMITTED a new
    statement sees every claim committed by whoever held a shard before, which is what makes
    the limit hold across nodes. One statement to count (two ``with_backlog``), plus the
    budget's own for agents that have one."""
    if not held:
        return {}
    room = budgets.enforce(conn, {name: specs[name] for name in held}, now)
    running: dict[tuple[str, int], int] = {
        (row.agent, row.shard): int(row.running)
        for row in conn.execute(
            select(runs.c.agent, runs.c.shard, func.count().label("running"))
            .where(runs.c.status == _RUNNING, runs.c.agent.in_(list(held)))
            .group_by(runs.c.agent, runs.c.shard))
    }
    backlog = _backlogged(conn, list(held), now) if with_backlog else set()
    result: dict[str, HeldSlots] = {}
    for name, shards in held.items():
        caps = shard_caps(specs[name].max_concurrency)
        free = {s: max(0, caps[s] - running.get((name, s), 0)) for s in shards}
        slots = HeldSlots(specs[name], free, name in backlog)
        if name in room:  # a budget allows fewer starts than the free slots
            allowed = slots.take(room[name])
            slots.free = {s: allowed.count(s) for s in shards}
        result[name] = slots
    return result


def _backlogged(conn: Connection, names: list[str], now: datetime) -> set[str]:
    """The agents among ``names`` with a ready queued run: one index probe each."""
    ready = (
        select(runs.c.id)
        .where(runs.c.agent == agents.c.name, runs.c.status == _QUEUED,
               runs.c.run_after <= now)
        .exists()
    )
    return set(conn.execute(
        select(agents.c.name).where(agents.c.name.in_(names), ready)).scalars())
