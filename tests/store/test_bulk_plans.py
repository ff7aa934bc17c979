"""Batched run writes look each row of the batch up by key, whatever the planner's
statistics say (``store.bulk.by_primary_key``). Without it, once ``runs`` was analysed
PostgreSQL estimated that one run matches a node's id, scanned the table and joined the
batch to it in a nested loop: an outcome batch took a second and a busy node fell behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from agentcron.models import Outcome, RunStatus
from agentcron.store import Store, transitions
from agentcron.store.bulk import bulk_source, by_primary_key
from agentcron.store.claiming import _OUTCOME_COLUMNS
from tests.conftest import T0
from tests.support.helpers import add_agent

pytestmark = pytest.mark.postgres


def _running_runs(pg_store: Store, n: int) -> list[Any]:
    add_agent(pg_store, "a", T0, max_concurrency=10_000)
    for _ in range(n):
        pg_store.fire_now("a", None, T0)
    return pg_store.claim_runs("node-1", n, T0 + timedelta(seconds=1))


def _plan(conn: Any, stmt: Any) -> str:
    compiled = stmt.compile(dialect=conn.dialect)
    rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).all()
    return "\n".join(row[0] for row in rows)


def test_an_outcome_batch_finds_its_runs_by_key_after_analyze(pg_store: Store) -> None:
    claimed = _running_runs(pg_store, 300)
    with pg_store.engine.begin() as conn:
        # Statistics that know neither this node nor many running runs: the trap.
        conn.execute(text("ANALYZE runs"))
    rows = [{"id": c.run_id, "lease": c.lease, "status": "succeeded", "reason": None,
             "error": None, "output": None, "stderr": None, "progress": None, "finished_at": T0,
             "run_after": T0, "input_tokens": None, "output_tokens": None,
             "cost_usd": None, "model": None} for c in claimed]
    with pg_store.engine.begin() as conn:
        by_primary_key(conn)
        plan = _plan(conn, transitions.finish(bulk_source(conn, _OUTCOME_COLUMNS, rows),
                                              "node-1"))
    assert "Seq Scan on runs" not in plan, plan


def test_finish_and_claim_pin_their_joins_to_the_key(pg_store: Store) -> None:
    claimed = _running_runs(pg_store, 3)
    with pg_store.count_statements() as statements:
        pg_store.finish("node-1", [Outcome(c.run_id, c.lease, RunStatus.SUCCEEDED)
                                   for c in claimed], T0 + timedelta(seconds=2))
    pinned = [i for i, s in enumerate(statements) if "enable_seqscan" in s]
    update = next(i for i, s in enumerate(statements) if s.lstrip().upper().startswith("UPDATE"))
    assert pinned and pinned[0] < update, statements
