"""Concurrency shards: nodes claiming for one agent at the same time do not take turns, and
the agent's limit still holds across them (guarantee 3)."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import text

from agentcron.models import Outcome, RunStatus
from agentcron.store import Store
from agentcron.store.claiming import claim_runs
from agentcron.store.slots import SHARDS, shard_caps
from tests.conftest import T0
from tests.support.helpers import add_agent, race, runs_of

NOW = T0 + timedelta(seconds=1)


def _queue(store: Store, n: int) -> None:
    for _ in range(n):
        store.fire_now("a", None, T0)


@pytest.mark.parametrize("limit", [1, 7, 8, 13, 1000])
def test_the_caps_of_the_shards_add_up_to_the_limit(limit: int) -> None:
    caps = shard_caps(limit)
    assert len(caps) == SHARDS and sum(caps) == limit
    assert max(caps) - min(caps) <= 1


@pytest.mark.postgres
def test_a_claim_in_progress_does_not_hold_back_another_nodes_claim(pg_store: Store) -> None:
    """While one node's claim transaction is open, another node claims runs of the same
    agent at once: the two hold different shards and different runs."""
    store = pg_store
    add_agent(store, now=T0, max_concurrency=1000)
    _queue(store, 40)
    other = Store(store.url)
    try:
        with store.engine.begin() as conn:
            first = claim_runs(conn, "n1", 10, NOW)
            second = other.claim_runs("n2", 10, NOW)  # would wait or get 0 on one hot row
            assert len(first) == 10 and len(second) == 10
            assert not {r.run_id for r in first} & {r.run_id for r in second}
    finally:
        other.close()
    running = [r for r in runs_of(store) if r.status is RunStatus.RUNNING]
    assert len(running) == 20


def test_racing_nodes_never_exceed_the_limit_as_runs_come_and_go(store: Store) -> None:
    """Many rounds of four nodes claiming at once, with some runs finishing between rounds:
    the agent never has more running runs than its limit, and no run is claimed twice."""
    limit = 13  # caps of 2 and 1: the shards are uneven
    add_agent(store, now=T0, max_concurrency=limit)
    _queue(store, 400)
    peers = [Store(store.url) for _ in range(4)]
    rng = random.Random(7)
    owners: dict[str, str] = {}
    try:
        for round_ in range(25):
            now = NOW + timedelta(seconds=round_)
            claims = race(peers, lambda s, i, now=now: s.claim_runs(f"n{i}", 6, now))
            for i, claimed in enumerate(claims):
                for run in claimed:
                    assert run.run_id not in owners
                    owners[run.run_id] = f"n{i}"
            running = [r for r in runs_of(store) if r.status is RunStatus.RUNNING]
            assert len(running) <= limit, f"round {round_}: {len(running)} running"
            with store.engine.connect() as conn:
                per_shard = conn.execute(text(
                    "SELECT shard, count(*) FROM runs WHERE status = 'running' "
                    "GROUP BY shard")).all()
            assert all(n <= shard_caps(limit)[shard] for shard, n in per_shard), per_shard
            for run in rng.sample(running, k=min(len(running), rng.randint(0, 6))):
                node = owners[run.id]
                store.finish(node, [Outcome(run.id, run.lease, RunStatus.SUCCEEDED)], now)
    finally:
        for peer in peers:
            peer.close()
