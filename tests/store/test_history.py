"""The read side and user actions on runs. Both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentcron.errors import ConflictError, NotFoundError
from agentcron.models import PREVIEW_BYTES, Cut, Outcome, RunStatus, Usage
from agentcron.store import RunFilter, Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger

NOW = T0 + timedelta(seconds=1)


def test_fire_now_queues_a_manual_run_with_payload(store: Store) -> None:
    add_agent(store, now=T0)
    run_id = store.fire_now("a", {"x": 1}, NOW)
    run = store.get_run(run_id)
    assert run.trigger_id is None and run.payload == {"x": 1}
    assert run.status is RunStatus.QUEUED


def test_fire_now_for_an_unknown_agent(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.fire_now("nobody", None, NOW)


def test_cancel_queued_and_running_but_not_finished(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=2)
    queued = store.fire_now("a", None, NOW)
    running_id = store.fire_now("a", None, NOW)
    store.cancel_run(queued, NOW)
    assert store.get_run(queued).status is RunStatus.CANCELLED
    [running] = store.claim_runs("n1", 5, NOW)
    assert running.run_id == running_id
    assert store.cancel_run(running_id, NOW) is RunStatus.RUNNING
    assert store.heartbeat("n1", [(running_id, running.lease)], NOW).revoked == [running_id]
    with pytest.raises(ConflictError):
        store.cancel_run(running_id, NOW)


def test_retry_requeues_a_finished_run_as_fresh_attempts(store: Store) -> None:
    add_agent(store, now=T0)
    run_id = store.fire_now("a", None, NOW)
    [run] = store.claim_runs("n1", 1, NOW)
    store.finish("n1", [Outcome(run_id, run.lease, RunStatus.FAILED, error="x")], NOW)
    store.retry_run(run_id, NOW)
    again = store.get_run(run_id)
    assert again.status is RunStatus.QUEUED and again.attempt == 0 and again.error is None
    with pytest.raises(ConflictError):
        store.retry_run(run_id, NOW)  # queued: not finished


def test_retrying_a_succeeded_run_queues_a_new_run_and_keeps_the_output(store: Store
                                                                         ) -> None:
    add_agent(store, now=T0)
    run_id = store.fire_now("a", {"x": 1}, NOW)
    [run] = store.claim_runs("n1", 1, NOW)
    store.finish("n1", [Outcome(run_id, run.lease, RunStatus.SUCCEEDED, output="the report",
                                stderr="a warning", usage=Usage(10, 2, 0.5, "m"))], NOW)
    new_id = store.retry_run(run_id, NOW)
    assert new_id != run_id
    original, again = store.get_run(run_id), store.get_run(new_id)
    assert (original.status, original.output, original.stderr) == (
        RunStatus.SUCCEEDED, "the report", "a warning")
    assert original.input_tokens == 10 and original.cost_usd == 0.5  # its bill stays its own
    assert (again.status, again.retry_of, again.payload, again.agent) == (
        RunStatus.QUEUED, run_id, {"x": 1}, "a")
    assert again.output is None and again.input_tokens is None and again.cost_usd is None
    assert [(e.kind, new_id in (e.message or "")) for e in store.run_history(run_id)] == [
        ("retried", True)]
    assert store.retry_run(run_id, NOW) not in (run_id, new_id)  # each retry is a new run


def test_a_retried_failed_run_adds_the_usage_of_all_its_attempts(store: Store) -> None:
    """Every attempt was billed, so a run's usage is the sum over its attempts: automatic
    retries and a user's retry of a failed run alike (the README says so)."""
    add_agent(store, now=T0, max_attempts=2)
    run_id = store.fire_now("a", None, NOW)
    [first] = store.claim_runs("n1", 1, NOW)
    store.finish("n1", [Outcome(run_id, first.lease, RunStatus.FAILED, error="x",
                                usage=Usage(100, 10, 0.25, "m"), retry_delay_s=0)], NOW)
    [second] = store.claim_runs("n1", 1, NOW + timedelta(seconds=1))
    store.finish("n1", [Outcome(run_id, second.lease, RunStatus.FAILED, error="y",
                                usage=Usage(50, 5, 0.125, "m"))], NOW)
    assert store.retry_run(run_id, NOW) == run_id  # failed: queued again as itself
    [third] = store.claim_runs("n1", 1, NOW + timedelta(seconds=2))
    store.finish("n1", [Outcome(run_id, third.lease, RunStatus.SUCCEEDED, output="ok",
                                usage=Usage(1, 1, 0.0625, "m"))], NOW)
    run = store.get_run(run_id)
    assert (run.input_tokens, run.output_tokens, run.cost_usd) == (151, 16, 0.4375)
    assert run.output == "ok" and run.error is None


def test_a_run_keeps_stderr_and_shows_the_progress_of_its_attempt(store: Store) -> None:
    add_agent(store, now=T0, max_attempts=2)
    run_id = store.fire_now("a", None, NOW)
    [first] = store.claim_runs("n1", 1, NOW)
    assert store.record_progress(run_id, first.lease, "n1", "step 2 of 5", NOW)
    assert store.get_run(run_id).progress == "step 2 of 5"
    store.finish("n1", [Outcome(run_id, first.lease, RunStatus.FAILED, output="partial",
                                stderr="boom", error="exit code 1: boom",
                                retry_delay_s=0)], NOW)
    failed = store.get_run(run_id)
    assert (failed.output, failed.stderr, failed.progress) == ("partial", "boom",
                                                               "step 2 of 5")
    store.claim_runs("n1", 1, NOW + timedelta(seconds=1))
    assert store.get_run(run_id).progress is None  # a new attempt has reported nothing


def test_list_runs_filters_and_cursor_pagination(store: Store) -> None:
    add_agent(store, "a", now=T0, max_concurrency=100)
    add_agent(store, "b", now=T0)
    for _ in range(5):
        store.fire_now("a", None, NOW)
    store.fire_now("b", None, NOW)
    page1 = store.list_runs(RunFilter(agent="a"), limit=3)
    page2 = store.list_runs(RunFilter(agent="a"), limit=3, before=page1[-1].id)
    assert len(page1) == 3 and len(page2) == 2
    assert not {r.id for r in page1} & {r.id for r in page2}
    assert [r.id for r in page1 + page2] == sorted((r.id for r in page1 + page2), reverse=True)
    assert len(store.list_runs(RunFilter(status=RunStatus.QUEUED), limit=100)) == 6


def test_prune_deletes_only_old_finished_runs(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    old = store.fire_now("a", None, NOW)
    active = store.fire_now("a", None, NOW)
    [run] = [r for r in store.claim_runs("n1", 10, NOW) if r.run_id == old]
    store.finish("n1", [Outcome(old, run.lease, RunStatus.SUCCEEDED)], NOW)
    assert store.prune(NOW, 100) == 0  # finished exactly at the cutoff: kept
    assert store.prune(NOW + timedelta(days=31), 100) == 1
    with pytest.raises(NotFoundError):
        store.get_run(old)
    assert store.get_run(active).status is RunStatus.RUNNING


def test_deleting_an_agent_cancels_its_queued_runs_and_keeps_history(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s")
    store.fire_now("a", None, NOW)
    assert store.delete_agent("a", NOW) == 1
    with pytest.raises(NotFoundError):
        store.get_trigger(trigger.id)
    assert [r.status for r in store.list_runs()] == [RunStatus.CANCELLED]


def test_listings_read_only_the_start_of_large_values(store: Store) -> None:
    """A listing moves at most ``PREVIEW_BYTES + 1`` characters of a payload or an output
    from the database, however large the stored value; a small one reads back whole."""
    add_agent(store, now=T0, max_concurrency=2)
    big = {"blob": "é" * 100_000}
    small = {"x": [1, "two", None]}
    add_trigger(store, T0, every="1h", name="big", payload=big, paused=True)
    add_trigger(store, T0, every="1h", name="small", payload=small, paused=True)
    big_run, small_run = store.fire_now("a", big, NOW), store.fire_now("a", small, NOW)
    store.finish("n1", [
        Outcome(c.run_id, c.lease, RunStatus.SUCCEEDED,
                output="o" * 300_000 if c.run_id == big_run else "done")
        for c in store.claim_runs("n1", 5, NOW)], NOW)

    listed = {t.name: t for t in store.list_triggers(preview=True)}
    assert isinstance(listed["big"].payload, Cut)
    assert PREVIEW_BYTES < len(listed["big"].payload.head) <= PREVIEW_BYTES + 1
    assert listed["small"].payload == small
    page, _ = store.triggers_page(None, 10, 0)
    assert {t.name: t.payload for t in page}["small"] == small
    assert isinstance({t.name: t.payload for t in page}["big"], Cut)

    runs = {r.id: r for r in store.list_runs(limit=10, preview=True)}
    assert isinstance(runs[big_run].payload, Cut)
    assert runs[big_run].output == "o" * (PREVIEW_BYTES + 1)
    assert runs[big_run].stderr is None
    assert runs[small_run].payload == small and runs[small_run].output == "done"
    # A show (and the engine) still reads every byte.
    assert store.get_run(big_run).payload == big
    assert store.get_run(big_run).output == "o" * 300_000
