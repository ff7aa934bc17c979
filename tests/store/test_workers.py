"""Remote workers in the store, on both backends: a worker that stops beating is lost and
its run retried after the agent's zombie timeout, a blip shorter than it changes nothing,
and several workers racing to claim never break an agent's concurrency limit or budget."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agentcron.models import ClaimedRun, Outcome, RunStatus, Usage
from agentcron.services import Services
from agentcron.services.agents import AgentInput
from agentcron.services.workers import WorkerState, worker_state
from agentcron.store import Store
from agentcron.store.workers import WorkerCall
from tests.conftest import T0
from tests.support.helpers import race

WORKERS = 4


def add_remote(store: Store, name: str, **settings: Any) -> None:
    agents = Services(store).agents
    agents.save(agents.build(AgentInput(name=name, kind="remote", config={}, **settings),
                             "cli"), T0)


def worker(i: int | str) -> WorkerCall:
    return WorkerCall(f"w{i}", "tok")


def test_a_silent_worker_is_lost_after_the_zombie_timeout_and_its_run_retried(
        store: Store) -> None:
    add_remote(store, "r", zombie_timeout="10s", max_attempts=3, retry_backoff="1s")
    run_id = store.fire_now("r", None, T0)
    [run] = store.worker_claim(worker(1), ["r"], 1, T0).runs
    # A blip: silent for 7 s, then it beats again; sweeps during and after change nothing.
    for at in (5, 9):
        assert store.sweep(T0 + timedelta(seconds=at)).retried == []
    assert store.worker_beat(worker(1), [(run_id, run.lease)], now=T0 + timedelta(
        seconds=9)) == []
    assert store.sweep(T0 + timedelta(seconds=18)).retried == []
    assert store.get_run(run_id).status is RunStatus.RUNNING
    [w] = store.list_workers()
    assert worker_state(w, T0 + timedelta(seconds=18)) is WorkerState.ACTIVE

    # Then silence past the timeout: lost, retried, and its late beat is told to stop.
    swept = store.sweep(T0 + timedelta(seconds=20))
    assert swept.retried == [run_id]
    assert worker_state(store.list_workers()[0], T0 + timedelta(seconds=20)) \
        is WorkerState.LOST
    later = T0 + timedelta(seconds=30)
    [again] = store.worker_claim(worker(2), ["r"], 1, later).runs
    assert again.run_id == run_id and again.attempt == 2 and again.lease > run.lease
    assert store.worker_beat(worker(1), [(run_id, run.lease)], now=later) == [run_id]
    late = store.worker_finish("worker:w1", Outcome(run_id, run.lease, RunStatus.SUCCEEDED,
                                                    output="late"), later)
    assert late.fenced == [run_id]
    store.worker_finish("worker:w2", Outcome(run_id, again.lease, RunStatus.SUCCEEDED,
                                             output="mine"), later)
    assert store.get_run(run_id).output == "mine"


def test_racing_workers_never_exceed_the_concurrency_limit(store: Store) -> None:
    add_remote(store, "r", max_concurrency=3)
    for _ in range(20):
        store.fire_now("r", None, T0)
    peers = [Store(store.url) for _ in range(WORKERS)]
    try:
        claims: list[Any] = race(
            peers, lambda s, i: s.worker_claim(worker(i), ["r"], 10, T0).runs)
        started = [run for claimed in claims for run in claimed]
        assert len(started) == 3
        assert len({run.run_id for run in started}) == 3
        # A second round with every slot taken starts nothing.
        again = race(peers, lambda s, i: s.worker_claim(worker(i), ["r"], 10, T0).runs)
        assert sum(len(c) for c in again) == 0
    finally:
        for peer in peers:
            peer.close()


def test_racing_workers_start_one_run_when_the_budget_has_room_for_one(
        store: Store) -> None:
    add_remote(store, "r", max_concurrency=50)
    first = store.fire_now("r", None, T0)
    [run] = store.worker_claim(worker("h"), ["r"], 1, T0).runs
    store.worker_finish("worker:wh", Outcome(first, run.lease, RunStatus.SUCCEEDED,
                                             usage=Usage(800, 100)), T0)
    agents = Services(store).agents
    agents.save(agents.build(AgentInput(name="r", kind="remote", config={},
                                        max_concurrency=50,
                                        budget={"tokens_per_day": 1000}), "cli"), T0)
    waiting = [store.fire_now("r", None, T0) for _ in range(6)]
    peers = [Store(store.url) for _ in range(WORKERS)]
    try:
        claims: list[list[ClaimedRun]] = race(
            peers, lambda s, i: s.worker_claim(worker(i), ["r"], 10, T0).runs)
        started = [r for claimed in claims for r in claimed]
        assert len(started) == 1
        assert [store.get_run(r).status for r in waiting].count(RunStatus.QUEUED) == 5
    finally:
        for peer in peers:
            peer.close()


def test_a_node_does_not_fire_and_claim_a_remote_run(store: Store) -> None:
    from tests.support.helpers import add_trigger

    add_remote(store, "r")
    add_trigger(store, T0, agent="r", every="1m")
    fired = store.fire_due(T0 + timedelta(minutes=2), claim_for=("node-1", 10))
    assert fired.queued >= 1 and fired.claimed == []
