"""statements: SQL statements per fire. agentcron must send O(1) statements per batch,
never one per trigger or per run.

Two measurements, in one child process:

1. **per batch**: ``fire_due``, ``claim_runs``, ``finish`` and ``heartbeat`` called directly
   on the store with 1, 10, 100 and 1,000 due triggers / runs, counting the statements
   each call sends (a session-level count: SQLAlchemy's ``before_cursor_execute`` on the
   store's engine). The count must not grow with the batch.
2. **per fire, in a running node**: every statement a node sends while it fires N
   triggers every second, by kind, divided by the fires; with the server's own count of
   transactions for the database (``pg_stat_database``) as a cross-check, and
   ``pg_stat_statements`` when the server has it loaded (this shared server does not
   preload it, and the benchmark does not restart a server other people's tests use).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import report
from bench.child import run_child
from bench.meter import wait_for_quiet
from bench.pg import PgTarget, ensure_database, libpq_url, sqlalchemy_url

BATCH_COLUMNS: list[report.Column] = [
    ("batch", "due / runs in the batch"), ("fire_due", "fire_due"), ("claim_runs", "claim_runs"),
    ("finish", "finish"), ("heartbeat", "heartbeat"), ("fire_due_claiming", "fire_due+claim"),
    ("fired", "fired"), ("claimed", "claimed"), ("claimed_while_firing", "claimed in fire"),
]
NODE_COLUMNS: list[report.Column] = [
    ("triggers", "N/s offered"), ("fires", "fires"), ("statements", "statements"),
    ("statements_per_fire", "stmts/fire"), ("transactions_per_fire", "server xacts/fire"),
    ("pg_stat_statements_calls_per_fire", "pg_stat_statements calls/fire"),
    ("by_kind", "by kind"),
]


def workload(target: PgTarget, out: Path, *, quick: bool) -> None:
    url = ensure_database(target, "statements", fresh=True)
    params: dict[str, Any] = {"db_url": url, "dbname": target.dbname("statements"),
              "batches": [1, 10, 100] if quick else [1, 10, 100, 1000],
              "node_triggers": 100 if quick else 1000, "node_seconds": 3 if quick else 10}
    params.update(wait_for_quiet(0 if quick else 120))
    result = run_child("statements", params, timeout_s=180, label=f"{target.prefix}-statements")
    if result.get("error"):
        raise RuntimeError(result["error"])
    report.print_table("statements per store call (must not grow with the batch)",
                       BATCH_COLUMNS, result["per_batch"])
    node = dict(result["node"])
    node["by_kind"] = ", ".join(f"{k} {v}" for k, v in sorted(
        node.get("statements_by_kind", {}).items(), key=lambda kv: -kv[1]))
    report.print_table("statements per fire in a running node", NODE_COLUMNS, [node])
    report.write_json(out, "statements", pg_url=target.admin_url(), results=result,
                      settings={k: v for k, v in params.items() if k != "db_url"}, notes=[
        "counted on the client: every statement the store's engine sends (SQLAlchemy "
        "before_cursor_execute), which includes BEGIN-less statements only; COMMIT is not a "
        "statement there",
        "server xacts/fire: pg_stat_database xact_commit + xact_rollback for the database "
        "over the same window (includes the LISTEN connection and the measuring queries)",
        f"pg_stat_statements: {result.get('pg_stat_statements')}",
    ])


# -- the child process ------------------------------------------------------------------------

def run_step(params: dict[str, Any]) -> dict[str, Any]:
    from agentcron.logs import configure_logging

    configure_logging("warning")
    return asyncio.run(_run(params))


def _server_xacts(url: str, dbname: str) -> int:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                           "WHERE datname = %s", (dbname,)).fetchone()
    return int(row[0]) if row else 0


def _pg_stat_statements(url: str, dbname: str) -> int | str:
    """Total calls recorded for the database, or why there are none."""
    try:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            row = conn.execute(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                (dbname,)).fetchone()
            return int(row[0]) if row else 0
    except Exception as exc:
        return f"unavailable: {str(exc).splitlines()[0]}"


def per_batch(url: str, batches: list[int]) -> list[dict[str, Any]]:
    from agentcron import __version__
    from agentcron.models import Outcome, RunStatus
    from agentcron.store import NodeInfo, Store
    from bench import agentcron_setup as setup

    store = Store(sqlalchemy_url(url))
    store.upgrade()
    counter = setup.StatementCounter(store)
    rows = []
    for n in batches:
        setup.reset(store)
        setup.add_agent(store)
        setup.insert_interval_triggers(store, n)
        setup.anchor_triggers(store, time.time() - 0.5)
        node = NodeInfo(id="bench-statements", hostname=socket.gethostname(), pid=os.getpid(),
                        version=__version__, zombie_timeout_s=60.0)
        store.register_node(node)
        with counter.in_this_thread() as count:
            fired = store.fire_due(limit=max(1000, n))
            fire_statements = count()
        with counter.in_this_thread() as count:
            claimed = store.claim_runs(node.id, n)
            claim_statements = count()
        with counter.in_this_thread() as count:
            store.heartbeat(node.id, [(c.run_id, c.lease) for c in claimed])
            beat_statements = count()
        with counter.in_this_thread() as count:
            store.finish(node.id, [Outcome(c.run_id, c.lease, RunStatus.SUCCEEDED)
                                   for c in claimed])
            finish_statements = count()
        row = {"batch": n, "fire_due": fire_statements, "claim_runs": claim_statements,
               "finish": finish_statements, "heartbeat": beat_statements,
               "fired": fired.queued, "claimed": len(claimed)}
        if "claim_for" in inspect.signature(store.fire_due).parameters:
            # the node's path since fire-and-claim: new runs claimed in the firing transaction
            setup.reset(store)
            setup.add_agent(store)
            setup.insert_interval_triggers(store, n)
            setup.anchor_triggers(store, time.time() - 0.5)
            store.register_node(node)
            with counter.in_this_thread() as count:
                both = store.fire_due(limit=max(1000, n), claim_for=(node.id, n))
                row["fire_due_claiming"] = count()
            row["claimed_while_firing"] = len(getattr(both, "claimed", []))
        rows.append(row)
    store.close()
    return rows


async def in_node(url: str, dbname: str, triggers: int, seconds: int) -> dict[str, Any]:
    from agentcron.engine.node import Node
    from agentcron.engine.settings import NodeSettings
    from agentcron.executors import AgentRegistry, Executors, RunContext
    from agentcron.store import Store
    from bench import agentcron_setup as setup
    from bench.agentcron_runner import pool_size_for

    settings = NodeSettings(database_url=sqlalchemy_url(url), api=False).validate()
    store = Store(sqlalchemy_url(url), pool_size=pool_size_for(settings))
    setup.reset(store)
    setup.add_agent(store)
    setup.insert_interval_triggers(store, triggers)
    fires = 0

    async def agent(ctx: RunContext) -> None:
        nonlocal fires
        fires += 1

    registry = AgentRegistry()
    registry.register(setup.TARGET, agent)
    counter = setup.StatementCounter(store)
    node = Node(store, settings, Executors(registry))
    anchor = int(time.time()) + 2
    setup.anchor_triggers(store, anchor)
    await node.start()
    await asyncio.sleep(max(0.0, anchor + 2 - time.time()))  # warm-up
    fires0 = fires
    xacts0 = _server_xacts(url, dbname)
    pgss0 = _pg_stat_statements(url, dbname)
    statements0 = counter.total()
    counter.kinds.clear()
    counter.track_kinds = True
    await asyncio.sleep(seconds)
    counter.track_kinds = False
    statements = counter.total() - statements0
    done = fires - fires0
    xacts = _server_xacts(url, dbname) - xacts0
    pgss1 = _pg_stat_statements(url, dbname)
    await node.drain()
    store.close()
    result: dict[str, Any] = {
        "triggers": triggers, "seconds": seconds, "fires": done, "statements": statements,
        "statements_per_fire": round(statements / done, 3) if done else None,
        "transactions_per_fire": round(xacts / done, 3) if done else None,
        "statements_by_kind": dict(counter.kinds),
    }
    if isinstance(pgss0, int) and isinstance(pgss1, int) and done:
        result["pg_stat_statements_calls_per_fire"] = round((pgss1 - pgss0) / done, 3)
    return result


async def _run(params: dict[str, Any]) -> dict[str, Any]:
    url = params["db_url"]
    rows = per_batch(url, list(params["batches"]))
    node = await in_node(url, params["dbname"], int(params["node_triggers"]),
                         int(params["node_seconds"]))
    pgss = _pg_stat_statements(url, params["dbname"])
    return {"per_batch": rows, "node": node,
            "pg_stat_statements": "loaded" if isinstance(pgss, int) else pgss}
