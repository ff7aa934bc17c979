"""claim_runs and finish: concurrency limits, fencing, retries. Both backends."""

from __future__ import annotations

from datetime import timedelta

from agentcron.models import Outcome, RunStatus, Usage
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, runs_of

NOW = T0 + timedelta(seconds=1)


def _queue(store: Store, n: int, max_concurrency: int = 1) -> None:
    add_agent(store, now=T0, max_concurrency=max_concurrency)
    for _ in range(n):
        add_trigger(store, T0, every="1s", overlap="allow")
    store.fire_due(NOW)


def test_claim_respects_max_concurrency_across_nodes(store: Store) -> None:
    _queue(store, 5, max_concurrency=2)
    first = store.claim_runs("n1", 10, NOW)
    second = store.claim_runs("n2", 10, NOW)
    assert len(first) == 2 and second == []
    store.finish("n1", [Outcome(first[0].run_id, first[0].lease, RunStatus.SUCCEEDED)], NOW)
    third = store.claim_runs("n2", 10, NOW)
    assert len(third) == 1  # one slot freed


def test_claim_increments_lease_and_attempt_and_sets_deadline(store: Store) -> None:
    _queue(store, 1)
    [run] = store.claim_runs("n1", 1, NOW)
    assert (run.lease, run.attempt) == (1, 1)
    assert run.deadline_at == NOW + timedelta(seconds=run.agent.timeout_s)
    stored = store.get_run(run.run_id)
    assert stored.status is RunStatus.RUNNING and stored.node_id == "n1"


def test_claim_statement_count_is_constant(store: Store) -> None:
    _queue(store, 3, max_concurrency=1000)
    with store.count_statements() as few:
        assert len(store.claim_runs("n1", 3, NOW)) == 3
    for _ in range(300):
        add_trigger(store, T0, every="1s", overlap="allow")
    store.fire_due(NOW + timedelta(seconds=1))
    with store.count_statements() as many:
        assert len(store.claim_runs("n1", 1000, NOW + timedelta(seconds=1))) >= 300
    # PostgreSQL: specs, shard try-lock, count, pick, the update with the planner pinned
    # to the key before it and restored after it (bulk.write_by_key).
    assert len(many) == len(few) <= 7


def test_finish_is_fenced_on_lease_and_node(store: Store) -> None:
    _queue(store, 1)
    [run] = store.claim_runs("n1", 1, NOW)
    wrong_node = store.finish("n2", [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED)], NOW)
    wrong_lease = store.finish("n1", [Outcome(run.run_id, run.lease + 1,
                                              RunStatus.SUCCEEDED)], NOW)
    assert wrong_node.fenced == [run.run_id] and wrong_lease.fenced == [run.run_id]
    assert store.get_run(run.run_id).status is RunStatus.RUNNING
    ok = store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED, output="hi",
                                     usage=Usage(10, 3, 0.002, "m"))], NOW)
    assert ok.applied == [run.run_id]
    done = store.get_run(run.run_id)
    assert (done.status, done.output, done.input_tokens, done.output_tokens, done.model) == (
        RunStatus.SUCCEEDED, "hi", 10, 3, "m")
    assert done.finished_at == NOW


def test_a_taken_over_run_cannot_be_completed_by_its_old_worker(store: Store) -> None:
    """Guarantee 2: the old worker (paused past its lease) wakes and reports success; the
    new attempt is untouched."""
    add_agent(store, now=T0, zombie_timeout="30s")
    add_trigger(store, T0, every="1h", overlap="allow")
    store.fire_due(T0 + timedelta(hours=1))
    at = T0 + timedelta(hours=1)
    from agentcron.store import NodeInfo

    store.register_node(NodeInfo("old", "h", 1, "t", 30), at)
    store.register_node(NodeInfo("new", "h", 2, "t", 30), at)
    [old] = store.claim_runs("old", 1, at)
    later = at + timedelta(seconds=31)
    store.heartbeat("new", [], later)
    swept = store.sweep(later + timedelta(seconds=60))  # old node silent: lost, retried
    assert swept.retried == [old.run_id]
    [new] = store.claim_runs("new", 1, later + timedelta(minutes=10))
    assert new.run_id == old.run_id and new.lease == old.lease + 1 and new.attempt == 2
    stale = store.finish("old", [Outcome(old.run_id, old.lease, RunStatus.SUCCEEDED,
                                         output="stale")], later + timedelta(minutes=10))
    assert stale.fenced == [old.run_id]
    current = store.get_run(new.run_id)
    assert current.status is RunStatus.RUNNING and current.node_id == "new"
    assert current.output is None


def test_retryable_failure_goes_back_to_queued_with_backoff(store: Store) -> None:
    _queue(store, 1)
    [run] = store.claim_runs("n1", 1, NOW)
    store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.FAILED, error="boom",
                                retry_delay_s=30)], NOW)
    again = store.get_run(run.run_id)
    assert again.status is RunStatus.QUEUED and again.node_id is None
    assert again.run_after == NOW + timedelta(seconds=30)
    assert store.claim_runs("n1", 1, NOW + timedelta(seconds=29)) == []
    [second] = store.claim_runs("n1", 1, NOW + timedelta(seconds=30))
    assert second.attempt == 2
    kinds = [e.kind for e in store.run_history(run.run_id)]
    assert kinds == ["retry"]


def test_final_failure_is_recorded_with_its_error(store: Store) -> None:
    _queue(store, 1)
    [run] = store.claim_runs("n1", 1, NOW)
    store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.FAILED, error="no")], NOW)
    failed = store.get_run(run.run_id)
    assert failed.status is RunStatus.FAILED and failed.error == "no"


def test_finish_many_in_one_statement(store: Store) -> None:
    _queue(store, 50, max_concurrency=100)
    claimed = store.claim_runs("n1", 100, NOW)
    assert len(claimed) == 50
    with store.count_statements() as statements:
        result = store.finish("n1", [Outcome(r.run_id, r.lease, RunStatus.SUCCEEDED)
                                     for r in claimed], NOW)
    assert len(result.applied) == 50
    assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1
    assert {r.status for r in runs_of(store)} == {RunStatus.SUCCEEDED}


def test_progress_beat_is_fenced(store: Store) -> None:
    _queue(store, 1)
    [run] = store.claim_runs("n1", 1, NOW)
    assert store.record_progress(run.run_id, run.lease, "n1", "halfway", NOW)
    assert not store.record_progress(run.run_id, run.lease, "n2", "intruder", NOW)


def test_an_outcome_carries_the_attempts_last_progress_and_keeps_an_earlier_one(
        store: Store) -> None:
    # A progress beat still on its way when the attempt ends is fenced out by the finish;
    # the outcome carries the last line so the run still shows it.
    _queue(store, 3, max_concurrency=3)
    first, second, stale = store.claim_runs("n1", 3, NOW)
    assert store.record_progress(second.run_id, second.lease, "n1", "beat", NOW)
    store.finish("n1", [Outcome(first.run_id, first.lease, RunStatus.SUCCEEDED,
                                progress="collecting"),
                        Outcome(second.run_id, second.lease, RunStatus.SUCCEEDED),
                        Outcome(stale.run_id, stale.lease + 1, RunStatus.SUCCEEDED,
                                progress="stale")], NOW)
    shown = {r.id: r.progress for r in runs_of(store)}
    assert shown == {first.run_id: "collecting", second.run_id: "beat", stale.run_id: None}


def test_fire_due_can_claim_what_it_fires_within_the_limits(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=3)
    for _ in range(5):
        add_trigger(store, T0, every="1s", overlap="allow")
    result = store.fire_due(NOW, claim_for=("n1", 10))
    assert result.queued == 5 and len(result.claimed) == 3  # the agent's limit
    running = [r for r in runs_of(store) if r.status is RunStatus.RUNNING]
    assert {r.id for r in running} == {c.run_id for c in result.claimed}
    assert {(r.node_id, r.lease, r.attempt) for r in running} == {("n1", 1, 1)}
    claimed = result.claimed[0]
    assert claimed.deadline_at == NOW + timedelta(seconds=claimed.agent.timeout_s)
    done = store.finish("n1", [Outcome(claimed.run_id, claimed.lease, RunStatus.SUCCEEDED)],
                        NOW)
    assert done.applied == [claimed.run_id]
    assert store.claim_runs("n2", 10, NOW) != []  # the rest are claimable as usual


def test_fire_due_claims_no_more_than_the_nodes_slots(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    for _ in range(5):
        add_trigger(store, T0, every="1s", overlap="allow")
    result = store.fire_due(NOW, claim_for=("n1", 2))
    assert len(result.claimed) == 2
    # The node is full: the other three stay due instead of queuing behind it.
    assert result.held_back == 3 and result.queued == 2
    assert [r.status for r in runs_of(store)] == [RunStatus.RUNNING] * 2
    assert result.full is False  # nothing more to fire at once on this node
    # A node with free slots fires them at their own scheduled times.
    again = store.fire_due(NOW, claim_for=("n2", 10))
    assert len(again.claimed) == 3 and again.held_back == 0
    assert len({r.scheduled_for for r in runs_of(store)}) == 1  # all at their own time


def test_a_trigger_behind_with_too_few_slots_keeps_its_rest_due_not_queued(
        store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    trigger = add_trigger(store, T0, every="1s", overlap="allow", catchup_mode="all")
    behind = T0 + timedelta(seconds=4)  # due at +1s, +2s, +3s and +4s
    result = store.fire_due(behind, claim_for=("n1", 2))
    assert len(result.claimed) == 2 and result.held_back == 0
    # The two it had no slot for are not queued (a queued ready run would stop every
    # later fire-time claim of the agent): the trigger is next due at the first of them.
    assert [r.status for r in runs_of(store)] == [RunStatus.RUNNING] * 2
    stored = store.get_trigger(trigger.id)
    assert stored.next_fire_at == T0 + timedelta(seconds=3)
    assert stored.last_fired_at == T0 + timedelta(seconds=2)
    again = store.fire_due(behind, claim_for=("n2", 10))
    assert len(again.claimed) == 2
    times = sorted(r.scheduled_for for r in runs_of(store))
    assert times == [T0 + timedelta(seconds=s) for s in range(1, 5)]  # each once, none lost


def test_a_full_node_past_its_run_budget_does_not_fire_again_at_once(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    for _ in range(2):
        add_trigger(store, T0, every="1s", overlap="allow", catchup_mode="all")
    behind = T0 + timedelta(seconds=10)  # each trigger is due ten times
    # No slot, and at most two runs planned (the batch's row limit): the first trigger's
    # two are held back, the second trigger is past the budget and untouched.
    result = store.fire_due(behind, limit=2, claim_for=("n1", 0))
    assert result.claimed == [] and result.held_back == 1 and runs_of(store) == []
    # Nothing was advanced: firing again at once would select the same rows (a spin).
    assert result.full is False


def test_a_node_with_no_free_slot_fires_only_what_it_would_not_start(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    add_trigger(store, T0, every="1s", overlap="allow")
    add_trigger(store, T0, every="1s", overlap="allow", jitter="30s")
    result = store.fire_due(NOW, claim_for=("n1", 0))
    assert result.claimed == [] and result.held_back == 1
    # The jittered run is not ready yet: it is queued for its time as before.
    assert [r.status for r in runs_of(store)] == [RunStatus.QUEUED]
    # Without claim_for (a caller that is not a node's ticker) nothing is held back.
    plain = store.fire_due(NOW)
    assert plain.held_back == 0 and plain.queued == 1


def test_runs_an_agent_cannot_start_still_queue_on_a_node_with_slots(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=1)
    for _ in range(3):
        add_trigger(store, T0, every="1s", overlap="allow")
    result = store.fire_due(NOW, claim_for=("n1", 10))
    # The agent's own limit decides, not the node's slots: those keep their turn queued.
    assert len(result.claimed) == 1 and result.held_back == 0
    assert sorted(r.status.value for r in runs_of(store)) == ["queued", "queued", "running"]


def test_fire_due_does_not_let_new_runs_jump_a_backlog(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    waiting = store.fire_now("a", None, T0)  # ready and waiting
    add_trigger(store, T0, every="1s", overlap="allow")
    result = store.fire_due(NOW, claim_for=("n1", 10))
    assert result.claimed == [] and result.queued == 1
    first = store.claim_runs("n1", 1, NOW)
    assert [r.run_id for r in first] == [waiting]


def test_usage_adds_up_over_attempts(store: Store) -> None:
    _queue(store, 1)
    [first] = store.claim_runs("n1", 1, NOW)
    store.finish("n1", [Outcome(first.run_id, first.lease, RunStatus.FAILED, error="x",
                                usage=Usage(100, 10, 0.01, "m"), retry_delay_s=0)], NOW)
    [second] = store.claim_runs("n1", 1, NOW + timedelta(seconds=1))
    store.finish("n1", [Outcome(second.run_id, second.lease, RunStatus.SUCCEEDED,
                                usage=Usage(50, 5, None, None))], NOW + timedelta(seconds=1))
    run = store.get_run(first.run_id)
    assert (run.input_tokens, run.output_tokens, run.model) == (150, 15, "m")
    assert run.cost_usd is not None and run.cost_usd >= 0.01
