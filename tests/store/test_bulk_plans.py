"""Batched run writes reach each row of the batch by key and join it without a nested
loop, whatever the planner's statistics say (``store.bulk.write_by_key``). Without it,
once ``runs`` was analysed PostgreSQL estimated that one run matches a node's id and
joined the batch in a nested loop that rescanned it for every run found: an outcome
batch of 1,000 took a second and a busy node fell behind."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from agentcron.models import Outcome, RunStatus
from agentcron.store import Store, transitions
from agentcron.store.bulk import bulk_source, joined_by_key
from agentcron.store.claiming import _OUTCOME_COLUMNS
from tests.conftest import T0
from tests.support.helpers import add_agent

pytestmark = pytest.mark.postgres


def _running_runs_unknown_to_the_statistics(pg_store: Store, n: int) -> list[Any]:
    add_agent(pg_store, "a", T0, max_concurrency=10_000)
    for _ in range(n):
        pg_store.fire_now("a", None, T0)
    with pg_store.engine.begin() as conn:
        # Analysed while every run was queued: no node id, no running run. A node that
        # started since (a new id) then claims them: the trap.
        conn.execute(text("ANALYZE runs"))
    return pg_store.claim_runs("node-1", n, T0 + timedelta(seconds=1))


def _plan(conn: Any, stmt: Any) -> str:
    compiled = stmt.compile(dialect=conn.dialect)
    rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params).all()
    return "\n".join(row[0] for row in rows)


def test_an_outcome_batch_joins_its_runs_by_key_after_analyze(pg_store: Store) -> None:
    claimed = _running_runs_unknown_to_the_statistics(pg_store, 300)
    rows = [{"id": c.run_id, "lease": c.lease, "status": "succeeded", "reason": None,
             "error": None, "output": None, "stderr": None, "progress": None, "finished_at": T0,
             "run_after": T0, "input_tokens": None, "output_tokens": None,
             "cost_usd": None, "model": None} for c in claimed]
    with pg_store.engine.begin() as conn:
        finish = transitions.finish(bulk_source(conn, _OUTCOME_COLUMNS, rows), "node-1")
        with joined_by_key(conn):
            plan = _plan(conn, finish)
        after = conn.execute(text("SELECT current_setting('enable_nestloop')")).scalar()
    assert "Nested Loop" not in plan and "Seq Scan on runs" not in plan, plan
    assert "ANY" in plan, plan  # runs is reached for the batch's ids only
    assert after == "on"  # the rest of the transaction plans as usual


def test_finish_and_claim_pin_only_their_batched_update(pg_store: Store) -> None:
    add_agent(pg_store, "a", T0, max_concurrency=10)
    for _ in range(3):
        pg_store.fire_now("a", None, T0)
    with pg_store.count_statements() as claim_statements:
        claimed = pg_store.claim_runs("node-1", 3, T0 + timedelta(seconds=1))
    with pg_store.count_statements() as finish_statements:
        pg_store.finish("node-1", [Outcome(c.run_id, c.lease, RunStatus.SUCCEEDED)
                                   for c in claimed], T0 + timedelta(seconds=2))
    for statements in (claim_statements, finish_statements):
        update = next(i for i, s in enumerate(statements)
                      if s.lstrip().upper().startswith("UPDATE RUNS"))
        # Priced out just before the update; given back (to what it was) just after it.
        assert "set_config('enable_nestloop', 'off'" in statements[update - 1], statements
        assert "set_config('enable_nestloop'," in statements[update + 1], statements
        assert "'off'" not in statements[update + 1], statements
