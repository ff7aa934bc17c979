"""Three real nodes on PostgreSQL, one killed with SIGKILL and restarted midway: every
(trigger, scheduled second) has exactly one run, none is missing, and the killed node's
runs are finished elsewhere within zombie_timeout plus one sweep."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from agentcron.store.schema import run_events, runs
from tests.support.helpers import wait_until
from tests.support.procs import ServeProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

TRIGGERS = 200
DURATION_S = 30
ZOMBIE_S = 3.0


def test_three_nodes_kill_one_no_duplicate_none_missing(pg_store: Store, tmp_path: Path) -> None:
    store = pg_store
    services = Services(store)
    services.add_agent(services.build_agent(
        # async and 1 s long, so nodes always have runs in flight
        "rec", "python", {"target": "tests.support.agents:async_sleepy"},
        max_concurrency=1000, timeout="30s", retry_backoff="0.1s"))
    # Every trigger must exist before its start (one created after it begins at its next
    # second): room for 200 one-by-one inserts on a loaded machine.
    start = store.now().replace(microsecond=0) + timedelta(seconds=3 + TRIGGERS * 0.02)
    for _ in range(TRIGGERS):
        services.add_trigger(TriggerInput(agent="rec", every="1s", start=start,
                                          payload={"seconds": 1.0}, overlap="allow",
                                          catchup_mode="all"))
    assert store.now() < start, "creating the triggers took past their start"
    ledger = tmp_path / "ledger.txt"
    nodes = {
        name: ServeProcess(store.url, name, tmp_path, ledger=ledger,
                           zombie_timeout=f"{ZOMBIE_S:g}s")
        for name in ("node-a", "node-b", "node-c")
    }
    try:
        for node in nodes.values():
            node.wait_for_log("node_started")
        began = time.monotonic()
        time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + DURATION_S / 2)
        victim_name = _busiest_node(store)
        nodes[victim_name].kill9()
        killed_at = store.now()
        nodes["node-restarted"] = ServeProcess(store.url, "node-restarted", tmp_path,
                                               ledger=ledger, zombie_timeout=f"{ZOMBIE_S:g}s")
        time.sleep(max(0.0, DURATION_S - (time.monotonic() - began)))
        cutoff = store.now() - timedelta(seconds=2)

        def settled() -> bool:
            with store.engine.connect() as conn:
                pending = conn.execute(
                    select(func.count()).where(runs.c.scheduled_for <= cutoff,
                                               runs.c.status != RunStatus.SUCCEEDED.value)
                ).scalar_one()
            return pending == 0

        wait_until(settled, ZOMBIE_S + 20, "every run to succeed", interval=0.2)
        for name, node in nodes.items():
            if name != victim_name:
                assert node.stop() == 0, node.log()[-2000:]
    finally:
        for node in nodes.values():
            node.cleanup()

    with store.engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.trigger_id, runs.c.scheduled_for, runs.c.status, runs.c.node_id,
                   runs.c.finished_at, runs.c.id).where(runs.c.scheduled_for <= cutoff)
        ).all()
        lost = conn.execute(
            select(run_events.c.run_id, run_events.c.at).where(run_events.c.kind == "lost")
        ).all()
    per_key = Counter((r.trigger_id, r.scheduled_for) for r in rows)
    assert max(per_key.values()) == 1, "a (trigger, scheduled time) has two runs"
    expected_seconds = int((cutoff - start).total_seconds()) + 1
    for trigger_id in {r.trigger_id for r in rows}:
        times = sorted(t for (tid, t) in per_key if tid == trigger_id)
        assert times == [start + timedelta(seconds=i) for i in range(expected_seconds)], (
            f"trigger {trigger_id} is missing scheduled times")
    assert len({r.trigger_id for r in rows}) == TRIGGERS
    assert {r.status for r in rows} == {RunStatus.SUCCEEDED.value}
    assert victim_name in {r.node_id for r in rows}  # the victim did real work before dying
    # The victim's in-flight runs were recovered within zombie_timeout plus one sweep
    # (sweep interval is 1s at this zombie timeout) plus the retry backoff and a margin.
    finished = {r.id: r.finished_at for r in rows}
    assert lost, "the victim had no run in flight; the recovery path was not exercised"
    for run_id, _at in lost:
        if run_id in finished:
            assert finished[run_id] - killed_at <= timedelta(seconds=ZOMBIE_S + 1 + 2)
    executions = Counter(line.split()[0] for line in ledger.read_text().splitlines())
    assert set(executions) >= {r.id for r in rows}  # every run really executed


def _busiest_node(store: Store) -> str:
    """The node with the most runs in flight right now (waits until some node has one)."""
    def busiest() -> str | None:
        with store.engine.connect() as conn:
            row = conn.execute(
                select(runs.c.node_id, func.count().label("n"))
                .where(runs.c.status == RunStatus.RUNNING.value)
                .group_by(runs.c.node_id).order_by(func.count().desc()).limit(1)
            ).first()
        return None if row is None else str(row.node_id)

    node_id: str = wait_until(busiest, 10, "a node with a run in flight", interval=0.05)
    return node_id
