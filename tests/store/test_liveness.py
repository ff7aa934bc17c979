"""Nodes, heartbeats, the sweeper and drain's release. Both backends."""

from __future__ import annotations

from datetime import timedelta

from agentcron.models import Outcome, RunStatus
from agentcron.store import NodeInfo, Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger

NOW = T0 + timedelta(seconds=1)


def _node(store: Store, node_id: str, zombie: float = 60.0, at=NOW) -> NodeInfo:  # type: ignore[no-untyped-def]
    info = NodeInfo(node_id, "host", 1, "test", zombie)
    store.register_node(info, at)
    return info


def _claimed_run(store: Store, node_id: str = "n1", **agent_kwargs):  # type: ignore[no-untyped-def]
    add_agent(store, now=T0, **agent_kwargs)
    add_trigger(store, T0, every="1s", overlap="allow")
    store.fire_due(NOW)
    [run] = store.claim_runs(node_id, 1, NOW)
    return run


def test_heartbeat_is_one_update_for_the_node_however_many_runs(store: Store) -> None:
    _node(store, "n1")
    add_agent(store, now=T0, max_concurrency=100)
    for _ in range(20):
        add_trigger(store, T0, every="1s", overlap="allow")
    store.fire_due(NOW)
    claimed = store.claim_runs("n1", 100, NOW)
    with store.count_statements() as statements:
        beat = store.heartbeat("n1", [(r.run_id, r.lease) for r in claimed], NOW)
    assert beat.known and beat.revoked == []
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 1 and "nodes" in updates[0]


def test_heartbeat_of_an_unknown_node_says_so(store: Store) -> None:
    assert not store.heartbeat("ghost", [], NOW).known


def test_silent_node_runs_are_lost_and_retried_then_failed(store: Store) -> None:
    _node(store, "n1", zombie=60)
    run = _claimed_run(store, max_attempts=2)
    assert store.sweep(NOW + timedelta(seconds=59)).retried == []  # still within the lease
    swept = store.sweep(NOW + timedelta(seconds=61))
    assert swept.retried == [run.run_id]
    lost = store.get_run(run.run_id)
    assert lost.status is RunStatus.QUEUED and "lost" in (lost.error or "")
    assert [e.kind for e in store.run_history(run.run_id)] == ["lost"]
    # second attempt, also lost: no attempts left
    [again] = store.claim_runs("n1", 1, NOW + timedelta(hours=2))
    assert again.attempt == 2
    swept = store.sweep(NOW + timedelta(hours=3))
    assert swept.failed == [run.run_id]
    assert store.get_run(run.run_id).status is RunStatus.FAILED


def test_a_beating_node_keeps_its_slow_runs(store: Store) -> None:
    """No hard-coded zombie timeout: a healthy node running a slow agent for an hour keeps
    it, because liveness is the node's heartbeat, not the run's age."""
    _node(store, "n1", zombie=60)
    run = _claimed_run(store, timeout="2h")
    for minute in range(1, 61):
        at = NOW + timedelta(minutes=minute)
        store.heartbeat("n1", [(run.run_id, run.lease)], at)
        assert store.sweep(at).retried == []
    assert store.get_run(run.run_id).status is RunStatus.RUNNING


def test_agent_zombie_timeout_overrides_the_nodes(store: Store) -> None:
    _node(store, "n1", zombie=60)
    run = _claimed_run(store, zombie_timeout="5m")
    assert store.sweep(NOW + timedelta(seconds=120)).retried == []
    assert store.sweep(NOW + timedelta(seconds=301)).retried == [run.run_id]


def test_concurrent_sweeps_change_nothing_twice(store: Store) -> None:
    _node(store, "n1", zombie=60)
    run = _claimed_run(store)
    at = NOW + timedelta(seconds=120)
    first = store.sweep(at)
    second = store.sweep(at)
    assert first.retried == [run.run_id] and second.retried == []
    assert len(store.run_history(run.run_id)) == 1


def test_run_past_its_deadline_on_a_live_node_is_cancelled(store: Store) -> None:
    _node(store, "n1", zombie=60)
    run = _claimed_run(store, timeout="10s")
    at = NOW + timedelta(seconds=10 + 61)
    store.heartbeat("n1", [(run.run_id, run.lease)], at)
    swept = store.sweep(at, timeout_grace_s=60)
    assert swept.timed_out == [run.run_id]
    assert store.get_run(run.run_id).status is RunStatus.CANCELLED
    assert store.heartbeat("n1", [(run.run_id, run.lease)], at).revoked == [run.run_id]


def test_long_dead_node_rows_are_removed(store: Store) -> None:
    _node(store, "n1", zombie=60)
    _node(store, "n2", zombie=60)
    later = NOW + timedelta(seconds=601)
    store.heartbeat("n2", [], later)
    assert store.sweep(later).nodes_removed == ["n1"]
    assert [n.id for n in store.list_nodes()] == ["n2"]


def test_a_dead_node_with_a_long_zombie_timeout_is_removed_within_a_day(store: Store
                                                                        ) -> None:
    _node(store, "n1", zombie=6 * 3600)  # ten zombie timeouts would be 60 hours
    _node(store, "n2", zombie=6 * 3600)
    store.heartbeat("n2", [], NOW + timedelta(hours=23))
    assert store.sweep(NOW + timedelta(hours=23)).nodes_removed == []
    later = NOW + timedelta(hours=24, seconds=1)
    store.heartbeat("n2", [], later)
    assert store.sweep(later).nodes_removed == ["n1"]


def test_listings_leave_out_nodes_dead_for_over_an_hour(store: Store) -> None:
    from agentcron.services import Services

    _node(store, "n1", zombie=600)
    _node(store, "n2", zombie=600)
    svc = Services(store)
    # Dead (silent past its zombie timeout), still listed as dead for an hour.
    n2_beat = NOW + timedelta(minutes=80)
    store.heartbeat("n2", [], n2_beat)
    listed = {n.id: alive for n, alive in svc.nodes(NOW + timedelta(minutes=11))}
    assert listed == {"n1": False, "n2": True}
    listed = {n.id: alive for n, alive in svc.nodes(NOW + timedelta(minutes=70))}
    assert listed == {"n1": False, "n2": True}
    # Dead for more than an hour: gone from listings, though no sweeper removed the row.
    listed = {n.id: alive for n, alive in svc.nodes(NOW + timedelta(minutes=71))}
    assert listed == {"n2": True}
    assert {n.id for n in store.list_nodes()} == {"n1", "n2"}


def test_release_requeues_without_consuming_an_attempt(store: Store) -> None:
    _node(store, "n1")
    run = _claimed_run(store)
    assert store.release("n1", NOW + timedelta(seconds=5)) == [run.run_id]
    back = store.get_run(run.run_id)
    assert back.status is RunStatus.QUEUED and back.attempt == 0 and back.node_id is None
    assert store.list_nodes() == []
    [resumed] = store.claim_runs("n2", 1, NOW + timedelta(seconds=5))
    assert resumed.attempt == 1 and resumed.lease == 2
    # the drained node's late completion is fenced out
    late = store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED)], NOW)
    assert late.fenced == [run.run_id]


def test_list_nodes_counts_running_runs(store: Store) -> None:
    _node(store, "n1")
    _claimed_run(store)
    [node] = store.list_nodes()
    assert node.id == "n1" and node.running == 1


def test_a_restarted_node_with_the_same_id_does_not_adopt_old_runs(store: Store) -> None:
    _node(store, "n1")
    run = _claimed_run(store)
    recovered = store.register_node(NodeInfo("n1", "host", 2, "test", 60.0),
                                    NOW + timedelta(seconds=5))
    assert recovered == [run.run_id]
    again = store.get_run(run.run_id)
    assert again.status is RunStatus.QUEUED and "restarted" in (again.error or "")
