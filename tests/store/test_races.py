"""Races between nodes, for real: several engines (separate connection pools, as separate
nodes have) hammer the same database from threads released together by a barrier.
Runs on both backends; on PostgreSQL this exercises SKIP LOCKED, on SQLite BEGIN IMMEDIATE."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from agentcron.models import RunStatus
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, race, runs_of


def _peers(store: Store, n: int) -> list[Store]:
    return [Store(store.url) for _ in range(n)]


def test_concurrent_fire_due_never_duplicates(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10_000)
    for _ in range(200):
        add_trigger(store, T0, every="1s", overlap="allow", catchup_mode="all")
    peers = _peers(store, 4)
    try:
        for second in range(1, 11):
            at = T0 + timedelta(seconds=second)
            race(peers, lambda s, _i, at=at: s.fire_due(at, limit=50))
            # whatever the interleaving, finish the second before checking
            while store.fire_due(at).triggers:
                pass
    finally:
        for p in peers:
            p.close()
    keys = Counter((r.trigger_id, r.scheduled_for) for r in runs_of(store))
    assert max(keys.values()) == 1
    assert len(keys) == 200 * 10  # none missing


def test_two_nodes_never_exceed_an_agents_concurrency(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=1)
    for _ in range(20):
        add_trigger(store, T0, every="1s", overlap="allow")
    store.fire_due(T0 + timedelta(seconds=1))
    peers = _peers(store, 4)
    try:
        claims = race(peers, lambda s, i: s.claim_runs(f"n{i}", 10, T0 + timedelta(seconds=1)))
    finally:
        for p in peers:
            p.close()
    assert sum(len(c) for c in claims) == 1
    assert len([r for r in runs_of(store) if r.status is RunStatus.RUNNING]) == 1


def test_many_nodes_claim_disjoint_runs(store: Store) -> None:
    add_agent(store, "a", now=T0, max_concurrency=1000)
    add_agent(store, "b", now=T0, max_concurrency=1000)
    for agent in ("a", "b"):
        for _ in range(100):
            add_trigger(store, T0, agent=agent, every="1s", overlap="allow")
    store.fire_due(T0 + timedelta(seconds=1))
    peers = _peers(store, 4)
    try:
        total: list[str] = []
        for _ in range(20):
            claims = race(peers,
                           lambda s, i: s.claim_runs(f"n{i}", 30, T0 + timedelta(seconds=1)))
            total += [r.run_id for c in claims for r in c]
    finally:
        for p in peers:
            p.close()
    assert len(total) == len(set(total)) == 200


def test_concurrent_sweepers_recover_each_run_once(store: Store) -> None:
    from agentcron.store import NodeInfo

    add_agent(store, now=T0, max_concurrency=100)
    for _ in range(50):
        add_trigger(store, T0, every="1s", overlap="allow")
    store.register_node(NodeInfo("dead", "h", 1, "t", 60), T0)
    store.fire_due(T0 + timedelta(seconds=1))
    assert len(store.claim_runs("dead", 100, T0 + timedelta(seconds=1))) == 50
    later = T0 + timedelta(minutes=5)
    peers = _peers(store, 4)
    try:
        results = race(peers, lambda s, _i: s.sweep(later))
    finally:
        for p in peers:
            p.close()
    recovered = [run_id for r in results for run_id in r.retried]
    assert len(recovered) == len(set(recovered)) == 50


def test_the_connection_pool_is_bounded(store: Store) -> None:
    """Guarantee 5: many threads hammering one store never hold more connections than
    pool_size + max_overflow at once; the extra callers wait for a free connection."""
    from sqlalchemy import event

    bounded = Store(store.url, pool_size=2)
    out = peak = 0
    lock = threading.Lock()

    def checkout(*_args: Any) -> None:
        nonlocal out, peak
        with lock:
            out += 1
            peak = max(peak, out)

    def checkin(*_args: Any) -> None:
        nonlocal out
        with lock:
            out -= 1

    event.listen(bounded.engine, "checkout", checkout)
    event.listen(bounded.engine, "checkin", checkin)
    try:
        pool = bounded.engine.pool
        limit = pool.size() + getattr(pool, "_max_overflow", 0)
        race([bounded] * 12, lambda s, _i: [s.count_by_status() for _ in range(20)])
        assert 1 < peak <= limit <= 4
        assert out == 0  # every session gave its connection back
    finally:
        bounded.close()


def test_nodes_finishing_failures_of_one_trigger_at_once_all_count(store: Store) -> None:
    """The circuit breaker's count: four nodes each write one final failure of the same
    trigger at the same moment; the count is four and the breaker (threshold 4) trips
    once, whatever the interleaving (trigger rows are locked before run rows)."""
    from agentcron.models import Outcome

    add_agent(store, now=T0, max_concurrency=10)
    trigger = add_trigger(store, T0, every="1s", overlap="allow", catchup_mode="all",
                          catchup="1m", pause_after_failures=4)
    at = T0 + timedelta(seconds=4)
    store.fire_due(at)
    claimed = store.claim_runs("n1", 4, at)
    assert len(claimed) == 4
    peers = _peers(store, 4)  # four writers at once (one node id: fencing is not the point)
    try:
        results = race(peers, lambda s, i: s.finish(
            "n1", [Outcome(claimed[i].run_id, claimed[i].lease, RunStatus.FAILED,
                           error="boom")], at))
    finally:
        for p in peers:
            p.close()
    seen = store.get_trigger(trigger.id)
    assert (seen.consecutive_failures, seen.paused) == (4, True)
    assert sum(len(r.paused) for r in results) == 1


def test_a_backfill_racing_the_ticker_never_duplicates_a_time(store: Store) -> None:
    from agentcron.services import Services
    from agentcron.services.backfill import BackfillInput

    add_agent(store, now=T0, max_concurrency=10_000)
    trigger = add_trigger(store, T0, every="1s", overlap="allow", catchup_mode="all",
                          catchup="10m")
    at = T0 + timedelta(minutes=5)
    peers = _peers(store, 2)

    def work(s: Store, i: int) -> Any:
        if i == 0:
            while s.fire_due(at).triggers:
                pass
            return None
        return Services(s).backfills.backfill(
            BackfillInput(trigger.id, T0.isoformat(), at.isoformat()), at, pause_s=0)

    try:
        results = race(peers, work)
    finally:
        for p in peers:
            p.close()
    keys = Counter(r.scheduled_for for r in runs_of(store, trigger.id))
    assert max(keys.values()) == 1
    assert len(keys) == 301  # T0 (the anchor: backfilled only) and T0+1s .. T0+5m
    backfill = results[1]
    assert backfill.queued + backfill.skipped == backfill.times
