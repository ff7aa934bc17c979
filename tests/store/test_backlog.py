"""A long queue must not make claiming or firing slower (found by the chaos suite's soak).

Claiming ranked every ready run of an agent to pick the oldest few, and firing counted
every queued run of each due trigger for its overlap policy. Both grew with the backlog, so
once a burst left runs queued, each claim took longer, fewer runs were claimed per second,
and the backlog grew further: at 1,000 fires/s the nodes never caught up again. These tests
run the statements again under PostgreSQL's ``EXPLAIN ANALYZE`` (in a rolled-back
transaction) and bound how many rows of ``runs`` they read, with thousands queued.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event

from agentcron.store import Store
from agentcron.store.firing import _due_query
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger

pytestmark = pytest.mark.postgres

QUEUED = 3000


@contextmanager
def _statements(store: Store) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


def _rows_read_from_runs(store: Store, statement: str, parameters: Any) -> int:
    """Rows the plan of ``statement`` actually read from ``runs`` (all loops)."""
    with store.engine.connect() as conn:
        tx = conn.begin()
        try:
            [plan] = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar_one()
        finally:
            tx.rollback()
    if isinstance(plan, str):
        plan = json.loads(plan)[0]

    def walk(node: dict[str, Any]) -> int:
        own = 0
        if node.get("Relation Name") == "runs" and "Scan" in node.get("Node Type", ""):
            own = int(node.get("Actual Rows", 0)) * int(node.get("Actual Loops", 1))
        return own + sum(walk(child) for child in node.get("Plans", []))

    return walk(plan["Plan"])


def _most_rows_read(store: Store, action: Callable[[], Any], keyword: str) -> tuple[Any, int]:
    with _statements(store) as seen:
        result = action()
    targets = [(s, p) for s, p in seen if keyword in s]
    assert targets, f"no statement with {keyword!r} ran"
    return result, max(_rows_read_from_runs(store, s, p) for s, p in targets)


def _backlog(pg_store: Store) -> Any:
    """One agent with ``QUEUED`` ready runs waiting (a trigger caught up in ``all`` mode)."""
    add_agent(pg_store, now=T0, max_concurrency=100_000)
    add_trigger(pg_store, T0, every="1s", overlap="allow", catchup="2h", catchup_mode="all")
    now = T0 + timedelta(seconds=QUEUED)  # the first time is T0 + 1 s
    assert pg_store.fire_due(now, 10).queued == QUEUED
    with pg_store.engine.connect() as conn:  # statistics, as autovacuum keeps them
        conn.exec_driver_sql("ANALYZE runs")
        conn.commit()
    return now


def test_claiming_a_few_runs_reads_a_few_rows_whatever_the_queue(pg_store: Store) -> None:
    now = _backlog(pg_store)
    claimed, rows = _most_rows_read(
        pg_store, lambda: pg_store.claim_runs("n1", 10, now), "UPDATE runs SET status")
    assert len(claimed) == 10
    # The oldest first.
    assert sorted(r.scheduled_for for r in claimed) == [T0 + timedelta(seconds=i)
                                                        for i in range(1, 11)]
    assert rows <= 100, f"claiming 10 runs read {rows} rows of {QUEUED} queued"


def test_firing_reads_a_few_rows_whatever_the_queue(pg_store: Store) -> None:
    now = _backlog(pg_store)
    later = now + timedelta(seconds=1)
    # The select of due triggers (with what their overlap policy needs to know), explained
    # while the trigger is due, then the real fire.
    # Also as the ticker asks when it fires ahead (a horizon past now).
    with pg_store.engine.connect() as conn:
        compiled = [_due_query(later, horizon, 10).compile(dialect=conn.dialect)
                    for horizon in (later, later + timedelta(seconds=0.5))]
    rows = [_rows_read_from_runs(pg_store, str(c), c.params) for c in compiled]
    assert pg_store.fire_due(later, 10).queued == 1
    assert max(rows) <= 10, f"firing one trigger read {rows} rows of its {QUEUED} queued runs"
