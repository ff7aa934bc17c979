"""Concurrency keys in the store: a run's key when it is made, and the keyed claim.

A keyed agent (``AgentSpec.keys``) has at most ``max_per_key`` running runs per key across
all nodes, alongside its ``max_concurrency`` (its shards, ``store/slots.py``), and its
ready runs are claimed in the fair order of ``rules.keys.fair_order``.

How the per-key limit holds (``pick_keyed``, inside ``claiming.claim_runs``'s
transaction, after the agent's shards are held):

1. the keys with a ready run, each with its oldest ready time (on PostgreSQL a loose index
   scan of ``ix_runs_key_ready``: one probe per distinct key, never a read of the queue;
   at most ``MAX_KEYS_SCANNED`` keys);
2. the first keys in fair order are locked: PostgreSQL transaction-scoped advisory locks,
   one per (agent, key hash), taken with a try; a key another claim holds is skipped,
   never waited for, so claims cannot deadlock on keys (nor with the shards, which are
   tried too). On SQLite ``BEGIN IMMEDIATE`` already excludes every other writer;
3. the running runs of the locked keys are counted in a later statement, which under READ
   COMMITTED sees every claim committed by whoever held a key before, so no key ever gets
   more than ``max_per_key`` running runs;
4. each locked key's oldest ready runs, at most its room, are read (``FOR UPDATE SKIP
   LOCKED``) and taken in fair order.

Runs of keyed agents are never claimed at fire time (``firing._claim_fresh`` leaves them
queued), so this is the one way such a run starts. Agents without a key take none of these
statements.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, func, select, text, true, union_all
from sqlalchemy.engine import Connection

from agentcron.models import KeyPolicy, RunStatus
from agentcron.rules.keys import fair_order, keys_from_json, render_key
from agentcron.store import transitions
from agentcron.store.bulk import bulk_source
from agentcron.store.schema import agents, runs

MAX_KEYS_SCANNED = 1000
"""Distinct ready keys one claim looks at for one agent (in key order on PostgreSQL)."""

_QUEUED = RunStatus.QUEUED.value
_RUNNING = RunStatus.RUNNING.value

# The loose index scan: each step finds the next distinct key of the agent's queued runs
# with one probe of ix_runs_key_ready, then each key's oldest ready time with one more.
_READY_KEYS = text("""
WITH RECURSIVE k(key, n) AS (
    (SELECT concurrency_key, 1 FROM runs
     WHERE agent = :agent AND status = 'queued' AND concurrency_key IS NOT NULL
     ORDER BY concurrency_key LIMIT 1)
    UNION ALL
    SELECT (SELECT r.concurrency_key FROM runs r
            WHERE r.agent = :agent AND r.status = 'queued' AND r.concurrency_key IS NOT NULL
              AND r.concurrency_key > k.key
            ORDER BY r.concurrency_key LIMIT 1), k.n + 1
    FROM k WHERE k.key IS NOT NULL AND k.n < :cap
)
SELECT k.key, head.run_after FROM k
CROSS JOIN LATERAL (
    SELECT r.run_after FROM runs r
    WHERE r.agent = :agent AND r.status = 'queued' AND r.concurrency_key = k.key
      AND r.run_after <= :now
    ORDER BY r.run_after LIMIT 1
) AS head
WHERE k.key IS NOT NULL
ORDER BY head.run_after, k.key
""")
_TRY_KEYS = text("""
SELECT k.key FROM jsonb_to_recordset(CAST(:keys AS jsonb)) AS k(key text)
WHERE pg_try_advisory_xact_lock(hashtext('agentcron-key/' || :agent), hashtext(k.key))
""")


@dataclass(frozen=True)
class KeyedPick:
    run_id: str
    agent: str
    run_after: datetime


def key_of(policy: KeyPolicy | None, payload: Any) -> str | None:
    """The key a new run with ``payload`` gets (None: the agent has no key)."""
    return None if policy is None else render_key(policy.template, payload)


def key_of_text(policy_json: Any, payload_text: str | None) -> str | None:
    """``key_of`` for a policy as stored and a payload as JSON text (firing and backfill
    copy payloads undecoded; only keyed agents' are decoded here)."""
    policy = keys_from_json(policy_json)
    if policy is None:
        return None
    try:
        payload = None if payload_text is None else json.loads(payload_text)
    except ValueError:
        payload = None
    return render_key(policy.template, payload)


def agent_keys(conn: Connection, agent: str) -> KeyPolicy | None:
    """The agent's key policy (one primary-key read)."""
    return keys_from_json(conn.execute(
        select(agents.c["keys"]).where(agents.c.name == agent)).scalar())


def policy_column(agent_column: Any) -> Any:
    """A scalar subquery: the key policy of the agent named by ``agent_column``, for
    statements that read triggers (one column, no extra statement)."""
    return (select(agents.c["keys"]).where(agents.c.name == agent_column)
            .scalar_subquery().label("key_policy"))


def rekey_queued(conn: Connection, agent: str, policy: KeyPolicy | None) -> int:
    """Give the agent's queued runs the keys of ``policy`` (None: no key), after its key
    policy changed: a claim reads a keyed agent's queued runs by key only, so a run left
    without one would never start. Reads the queued runs' payloads: a rare write (saving
    an agent), bounded by its queue."""
    rows = conn.execute(select(runs.c.id, runs.c.payload)
                        .where(runs.c.agent == agent, runs.c.status == _QUEUED)).all()
    if not rows:
        return 0
    changes = [{"id": row.id, "concurrency_key": key_of(policy, row.payload)} for row in rows]
    for start in range(0, len(changes), 1000):
        source = bulk_source(conn, {"id": String(36), "concurrency_key": String(200)},
                             changes[start:start + 1000])
        conn.execute(transitions.set_keys(source))
    return len(changes)


def pick_keyed(conn: Connection, wanted: Mapping[str, tuple[KeyPolicy, int, int]],
               now: datetime) -> list[KeyedPick]:
    """For each keyed agent (name -> (policy, runs wanted, its max_concurrency)), up to
    the wanted number of ready runs in fair order, no key past ``max_per_key`` running
    (module docstring: the locks and why the limit holds). Four statements per agent on
    PostgreSQL (fewer when no key is ready or free), three on SQLite."""
    picks: list[KeyedPick] = []
    for agent, (policy, n, max_concurrency) in sorted(wanted.items()):
        if n > 0:
            picks += _pick_agent(conn, agent, policy, n, max_concurrency, now)
    return picks


def _pick_agent(conn: Connection, agent: str, policy: KeyPolicy, n: int,
                max_concurrency: int, now: datetime) -> list[KeyedPick]:
    heads = _ready_keys(conn, agent, now)
    if not heads:
        return []
    # Keys at their limit hold running runs, so at most max_concurrency of them are full:
    # that many keys more than wanted always leaves enough with room.
    candidates = heads[:n + max_concurrency]
    locked = _lock_keys(conn, agent, candidates)
    if not locked:
        return []
    running: dict[str, int] = {
        str(key): int(count) for key, count in conn.execute(
            select(runs.c.concurrency_key, func.count())
            .where(runs.c.agent == agent, runs.c.status == _RUNNING,
                   runs.c.concurrency_key.is_not(None),
                   runs.c.concurrency_key.in_(locked))
            .group_by(runs.c.concurrency_key))
    }
    room = {key: policy.max_per_key - running.get(key, 0) for key in locked}
    keys = [key for key in candidates if room.get(key, 0) > 0][:n]
    if not keys:
        return []
    rows = _oldest(conn, agent, {key: min(room[key], n) for key in keys}, now)
    by_key: dict[str, list[KeyedPick]] = {key: [] for key in keys}
    for row in rows:
        by_key[row.concurrency_key].append(KeyedPick(row.id, agent, row.run_after))
    return fair_order([(key, by_key[key]) for key in keys], room, policy.weights, n)


def _ready_keys(conn: Connection, agent: str, now: datetime) -> list[str]:
    """The agent's keys with a ready run, the one with the oldest ready run first."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(_READY_KEYS, {"agent": agent, "now": now,
                                          "cap": MAX_KEYS_SCANNED}).all()
        return [str(row.key) for row in rows]
    oldest = func.min(runs.c.run_after)
    stmt = (select(runs.c.concurrency_key)
            .where(runs.c.agent == agent, runs.c.status == _QUEUED,
                   runs.c.concurrency_key.is_not(None), runs.c.run_after <= now)
            .group_by(runs.c.concurrency_key)
            .order_by(oldest, runs.c.concurrency_key).limit(MAX_KEYS_SCANNED))
    return [str(key) for key in conn.execute(stmt).scalars()]


def _lock_keys(conn: Connection, agent: str, keys: list[str]) -> list[str]:
    """The keys of ``keys`` this transaction now holds (all of them on SQLite)."""
    if conn.dialect.name != "postgresql":
        return keys
    got = set(conn.execute(_TRY_KEYS, {"agent": agent,
                                       "keys": json.dumps([{"key": k} for k in keys])})
              .scalars())
    return [key for key in keys if key in got]


def _oldest(conn: Connection, agent: str, limits: dict[str, int], now: datetime) -> list[Any]:
    """(id, concurrency_key, run_after) of each key's oldest ready runs, at most
    ``limits[key]`` each (locked ``SKIP LOCKED`` on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        wants = bulk_source(conn, {"key": String(200), "n": Integer()},
                            [{"key": k, "n": v} for k, v in sorted(limits.items())])
        oldest = (
            select(runs.c.id, runs.c.concurrency_key, runs.c.run_after)
            .where(runs.c.agent == agent, runs.c.status == _QUEUED,
                   runs.c.concurrency_key.is_not(None),
                   runs.c.concurrency_key == wants["key"], runs.c.run_after <= now)
            .order_by(runs.c.run_after, runs.c.id)
            .limit(wants["n"])
            .with_for_update(skip_locked=True)
            .lateral("oldest")
        )
        stmt = (select(oldest.c.id, oldest.c.concurrency_key, oldest.c.run_after)
                .select_from(wants.from_clause.join(oldest, true())))
        return list(conn.execute(stmt))
    per_key = [
        select(runs.c.id, runs.c.concurrency_key, runs.c.run_after)
        .where(runs.c.agent == agent, runs.c.status == _QUEUED,
               runs.c.concurrency_key == key, runs.c.run_after <= now)
        .order_by(runs.c.run_after, runs.c.id)
        .limit(limit)
        .subquery()
        for key, limit in sorted(limits.items())
    ]
    ready = union_all(*(select(sq.c.id, sq.c.concurrency_key, sq.c.run_after)
                        for sq in per_key)).subquery("ready")
    rows = conn.execute(select(ready.c.id, ready.c.concurrency_key, ready.c.run_after)
                        .order_by(ready.c.run_after, ready.c.id))
    return list(rows)


def busiest_keys(conn: Connection, agent: str, limit: int) -> list[tuple[str, int]]:
    """(key, running runs) of the agent's keys with running runs, fullest first, at most
    ``limit``: ``ix_runs_key_running``, bounded by the agent's running runs."""
    running = func.count().label("running")
    rows = conn.execute(
        select(runs.c.concurrency_key, running)
        .where(runs.c.agent == agent, runs.c.status == _RUNNING,
               runs.c.concurrency_key.is_not(None))
        .group_by(runs.c.concurrency_key)
        .order_by(running.desc(), runs.c.concurrency_key).limit(limit))
    return [(str(key), int(n)) for key, n in rows]
