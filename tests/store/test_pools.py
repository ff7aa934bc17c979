"""Rate limits across nodes: shared pools and an agent's own rate, enforced in the claim
transaction. Several Store engines (separate pools, as separate nodes have) released
together by a barrier, on PostgreSQL (the pool row ``FOR UPDATE``) and SQLite
(``BEGIN IMMEDIATE``), over simulated time: no sliding 60-second window ever holds more
starts than the pool allows, nor more reserved tokens, and the runs held back stay queued
with their reason."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentcron.models import ClaimedRun, Outcome, Pool, RunStatus, Usage
from agentcron.services import AgentInput, Services, TriggerInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.budgets import queue, runs_of_agent, statuses
from tests.support.helpers import race

NODES = 4


def _agent(store: Store, name: str, *, pool: str | None = None, rate: str | None = None,
           max_tokens: int | None = None, at: datetime = T0) -> None:
    agents = Services(store).agents
    if max_tokens is None:
        spec = AgentInput(name=name, kind="python", config={"target": "agentcron.examples:noop"},
                          max_concurrency=50, pool=pool, rate=rate)
    else:
        spec = AgentInput(name=name, kind="llm", max_concurrency=50, pool=pool, rate=rate,
                          config={"model": "m", "base_url": "http://127.0.0.1:9/v1",
                                  "prompt": "hi", "max_tokens": max_tokens})
    agents.save(agents.build(spec), at)


def _race(peers: list[Store], now: datetime) -> list[tuple[str, ClaimedRun]]:
    claims: list[list[ClaimedRun]] = race(
        peers, lambda s, i: s.claim_runs(f"node-{i}", 10, now))
    return [(f"node-{i}", run) for i, claimed in enumerate(claims) for run in claimed]


def _max_in_window(starts: list[datetime], window_s: float = 60.0) -> int:
    return max((sum(1 for t in starts if s <= t < s + timedelta(seconds=window_s))
                for s in starts), default=0)


def test_nodes_racing_never_start_more_than_a_pool_allows_in_any_minute(store: Store) -> None:
    store.save_pool(Pool("openai", requests_per_minute=5), T0)
    for name in ("a", "b", "c"):
        _agent(store, name, pool="openai")
        queue(store, name, 12, T0)
    peers = [Store(store.url) for _ in range(NODES)]
    starts: list[datetime] = []
    try:
        # Every 7 s for 4 minutes: windows slide across minute boundaries.
        for step in range(35):
            now = T0 + timedelta(seconds=7 * step)
            won = _race(peers, now)
            starts += [now] * len(won)
            for node, run in won:  # finish at once: only the window holds them back
                store.finish(node, [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED)], now)
            if step == 0:
                assert len(won) == 5, "the first minute's room is used at once"
    finally:
        for peer in peers:
            peer.close()
    assert _max_in_window(starts) == 5
    assert len(starts) >= 5 * 4, "each minute of the four starts its five"
    [pool] = store.list_pools(T0 + timedelta(seconds=7 * 34))
    assert pool.requests <= 5 and pool.agents == ("a", "b", "c")


def test_runs_held_back_stay_queued_with_their_reason(store: Store) -> None:
    store.save_pool(Pool("openai", requests_per_minute=2), T0)
    _agent(store, "a", pool="openai")
    waiting = queue(store, "a", 4, T0)
    assert len(store.claim_runs("n", 10, T0)) == 2
    queued = [store.get_run(r) for r in waiting if store.get_run(r).status is RunStatus.QUEUED]
    assert len(queued) == 2
    assert all(r.waiting_reason == "pool openai at 2/2 requests/min" for r in queued)
    assert all(r.waiting == r.waiting_reason for r in queued)
    # A run cancelled while it waited keeps the column, but no longer says it waits.
    store.cancel_run(queued[1].id, T0)
    cancelled = store.get_run(queued[1].id)
    assert cancelled.waiting_reason is not None and cancelled.waiting is None
    queued = queued[:1]
    # A minute later the window has room: they start, and no longer say they wait.
    later = T0 + timedelta(seconds=60)
    started = store.claim_runs("n", 10, later)
    assert sorted(r.run_id for r in started) == sorted(r.id for r in queued)
    assert all(store.get_run(r.run_id).waiting_reason is None for r in started)


def test_tokens_are_reserved_until_reported_then_counted_as_used(store: Store) -> None:
    store.save_pool(Pool("openai", tokens_per_minute=1000), T0)
    _agent(store, "writer", pool="openai", max_tokens=300)
    queue(store, "writer", 10, T0)
    peers = [Store(store.url) for _ in range(NODES)]
    try:
        first = _race(peers, T0)
        assert len(first) == 3, "three runs reserve 900 of 1,000 tokens"
        reason = {r.waiting_reason for r in runs_of_agent(store, "writer")
                  if r.status is RunStatus.QUEUED}
        assert reason == {"pool openai at 900/1000 tokens/min (a run reserves 300)"}
        # Each reports 100 tokens: 300 used, room for two more reservations of 300.
        for node, run in first:
            store.finish(node, [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED,
                                        usage=Usage(60, 40))], T0)
        second = _race(peers, T0 + timedelta(seconds=1))
        assert len(second) == 2
        [pool] = store.list_pools(T0 + timedelta(seconds=1))
        assert (pool.requests, pool.tokens) == (5, 300 + 600)
    finally:
        for peer in peers:
            peer.close()


def test_an_agents_own_rate_holds_across_nodes(store: Store) -> None:
    _agent(store, "poller", rate="2/s")
    queue(store, "poller", 10, T0)
    peers = [Store(store.url) for _ in range(NODES)]
    starts: list[datetime] = []
    try:
        for step in range(12):
            now = T0 + timedelta(milliseconds=250 * step)
            won = _race(peers, now)
            starts += [now] * len(won)
            for node, run in won:
                store.finish(node, [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED)], now)
    finally:
        for peer in peers:
            peer.close()
    assert _max_in_window(starts, 1.0) == 2
    assert len(starts) == 6  # 3 seconds, two a second


def test_firing_never_claims_a_limited_agents_run(store: Store) -> None:
    store.save_pool(Pool("openai", requests_per_minute=1), T0)
    _agent(store, "a", pool="openai")
    services = Services(store)
    for i in range(3):
        services.triggers.create(TriggerInput(agent="a", every="1m", name=f"t{i}"), T0)
    fired = store.fire_due(T0 + timedelta(minutes=1), 100,
                           claim_for=("n", 10))
    assert fired.claimed == [] and fired.queued == 3
    assert len(store.claim_runs("n", 10, T0 + timedelta(minutes=1))) == 1


def test_a_pool_that_does_not_exist_holds_its_agents_runs(store: Store) -> None:
    _agent(store, "a", pool="missing")
    [run_id] = queue(store, "a", 1, T0)
    assert store.claim_runs("n", 10, T0) == []
    run = store.get_run(run_id)
    assert run.status is RunStatus.QUEUED
    assert run.waiting_reason == "pool missing is not declared (agentcron pools set)"
    # Plain agents are untouched by it.
    _agent(store, "plain")
    queue(store, "plain", 2, T0)
    assert len(store.claim_runs("n", 10, T0)) == 2
    assert statuses(store, [run_id]) == [RunStatus.QUEUED]


def test_a_pools_room_goes_to_its_oldest_ready_runs_whichever_agent(store: Store) -> None:
    store.save_pool(Pool("shared", requests_per_minute=5), T0)
    for name in ("a", "b"):
        _agent(store, name, pool="shared")
    first_a = queue(store, "a", 2, T0)
    first_b = queue(store, "b", 3, T0 + timedelta(seconds=1))
    queue(store, "a", 3, T0 + timedelta(seconds=2))
    started = {r.run_id for r in store.claim_runs("n", 10, T0 + timedelta(seconds=3))}
    assert started == set(first_a + first_b)


def test_an_agent_with_few_ready_runs_leaves_the_rest_of_the_pool_to_others(store: Store
                                                                           ) -> None:
    store.save_pool(Pool("shared", requests_per_minute=5), T0)
    for name in ("a", "b"):
        _agent(store, name, pool="shared")
    queue(store, "a", 1, T0)
    queue(store, "b", 10, T0)
    assert len(store.claim_runs("n", 10, T0)) == 5


def test_runs_held_back_by_a_full_pool_leave_their_slots_to_other_agents(store: Store
                                                                         ) -> None:
    store.save_pool(Pool("shared", requests_per_minute=1), T0)
    _agent(store, "pooled", pool="shared")
    _agent(store, "plain")
    queue(store, "pooled", 8, T0)  # the oldest ready runs: a claim of 4 picks them first
    plain = queue(store, "plain", 6, T0 + timedelta(seconds=1))
    started = store.claim_runs("n", 4, T0 + timedelta(seconds=2))
    assert sorted(r.agent.name for r in started) == ["plain", "plain", "plain", "pooled"]
    assert {r.run_id for r in started if r.agent.name == "plain"} == set(plain[:3])
    # Only plain runs are left to start while the pool is full.
    again = store.claim_runs("n", 10, T0 + timedelta(seconds=3))
    assert [r.agent.name for r in again] == ["plain"] * 3
