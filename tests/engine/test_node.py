"""A whole node in-process against a real database: fire -> claim -> execute -> record,
retries, timeouts, cancellation and drain. Waits are on conditions, never fixed sleeps."""

from __future__ import annotations

import threading
from datetime import datetime

from agentcron.engine.node import Node
from agentcron.models import Outcome, RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import FinishResult, HeartbeatResult, Store
from tests.support.helpers import await_until
from tests.support.nodes import agent_runs, python_agent, run_node


def test_a_trigger_fires_runs_and_records_output_and_usage(store: Store) -> None:
    python_agent(store, "u", "tests.support.agents:usage")
    Services(store).add_trigger(TriggerInput(agent="u", every="1s"))

    async def scenario(node: Node) -> None:
        runs = await await_until(lambda: [r for r in agent_runs(store, "u")
                                          if r.status is RunStatus.SUCCEEDED],
                                 message="a success")
        run = runs[0]
        assert run.output == "used tokens" and run.node_id == node.id
        assert (run.input_tokens, run.output_tokens, run.model) == (100, 20, "test-model")
        assert run.cost_usd is not None and abs(run.cost_usd - 0.0012) < 1e-9

    run_node(store, scenario)


def test_a_retryable_failure_is_retried_as_the_next_attempt(store: Store) -> None:
    python_agent(store, "f", "tests.support.agents:flaky", retry_backoff="0.05s")
    run_id = store.fire_now("f", None)

    async def scenario(node: Node) -> None:
        await await_until(lambda: store.get_run(run_id).status is RunStatus.SUCCEEDED,
                          message="success on retry")
        run = store.get_run(run_id)
        assert run.attempt == 2 and run.output == "ok on attempt 2"
        assert [e.kind for e in store.run_history(run_id)] == ["retry"]

    run_node(store, scenario)


def test_a_permanent_error_fails_without_retry(store: Store) -> None:
    python_agent(store, "b", "tests.support.agents:broken", max_attempts=5)
    run_id = store.fire_now("b", None)

    async def scenario(node: Node) -> None:
        await await_until(lambda: store.get_run(run_id).status is RunStatus.FAILED,
                          message="failure")
        run = store.get_run(run_id)
        assert run.attempt == 1 and "never works" in (run.error or "")

    run_node(store, scenario)


def test_a_run_past_its_timeout_is_stopped_and_retried_then_failed(store: Store) -> None:
    python_agent(store, "s", "tests.support.agents:async_sleepy", timeout="0.2s",
           max_attempts=2, retry_backoff="0.05s")
    run_id = store.fire_now("s", {"seconds": 30})

    async def scenario(node: Node) -> None:
        await await_until(lambda: store.get_run(run_id).status is RunStatus.FAILED,
                          message="timeout")
        run = store.get_run(run_id)
        assert run.attempt == 2 and "timed out" in (run.error or "")

    run_node(store, scenario)


def test_cancelling_a_running_run_stops_thepython_agent(store: Store) -> None:
    python_agent(store, "s", "tests.support.agents:sleepy", timeout="1m")
    run_id = store.fire_now("s", {"seconds": 60})

    async def scenario(node: Node) -> None:
        await await_until(lambda: store.get_run(run_id).status is RunStatus.RUNNING,
                          message="start")
        store.cancel_run(run_id)
        await await_until(lambda: not node.dispatcher.holds(run_id),
                          message="the agent to stop")
        assert store.get_run(run_id).status is RunStatus.CANCELLED

    run_node(store, scenario)


def test_drain_lets_short_runs_finish(store: Store) -> None:
    python_agent(store, "s", "tests.support.agents:sleepy", timeout="1m")
    run_id = store.fire_now("s", {"seconds": 0.5})

    async def scenario(node: Node) -> None:
        # Started by the node, not only claimed: a run whose claim commits as the drain
        # begins is handed back unstarted (correctly), and would not succeed here.
        await await_until(lambda: node.dispatcher.started == 1
                          and store.get_run(run_id).status is RunStatus.RUNNING,
                          message="start")
        await node.drain()
        run = store.get_run(run_id)
        assert run.status is RunStatus.SUCCEEDED and run.attempt == 1
        assert store.list_nodes() == []

    run_node(store, scenario, drain_timeout_s=10.0)


class _BeatDuringRelease(Store):
    """A real store that lines a heartbeat up with drain's release: once the node is
    draining, the next beat starts before release and then waits (up to 0.5 s) for release
    to commit before it writes."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.draining = threading.Event()
        self.beat_started = threading.Event()
        self.released = threading.Event()

    def set_draining(self, node_id: str) -> None:
        super().set_draining(node_id)
        self.draining.set()
        self.beat_started.wait(2.0)

    def heartbeat(self, node_id: str, inflight: list[tuple[str, int]],
                  now: datetime | None = None) -> HeartbeatResult:
        if self.draining.is_set() and not self.beat_started.is_set():
            self.beat_started.set()
            self.released.wait(0.5)
        return super().heartbeat(node_id, inflight, now)

    def release(self, node_id: str, now: datetime | None = None) -> list[str]:
        try:
            return super().release(node_id, now)
        finally:
            self.released.set()


def test_a_beat_racing_the_drain_does_not_register_the_node_again(store: Store) -> None:
    """Regression: a heartbeat in flight while drain's release deleted the node row found
    no row, registered the node again and left a stale row behind."""
    racing = _BeatDuringRelease(store.url)
    try:
        run_node(racing, lambda node: node.drain())
        assert racing.beat_started.is_set()  # the interleaving did happen
        assert store.list_nodes() == []
    finally:
        racing.close()


class _SlowFinish(Store):
    """A real store whose outcome write waits at a gate, as a slow commit does: the gate
    opens when ``release`` is called (the race this guards against) or after 2 s."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.writing = threading.Event()
        self.gate = threading.Event()

    def finish(self, node_id: str, outcomes: list[Outcome],
               now: datetime | None = None) -> FinishResult:
        self.writing.set()
        self.gate.wait(2.0)
        return super().finish(node_id, outcomes, now)

    def release(self, node_id: str, now: datetime | None = None) -> list[str]:
        self.gate.set()
        return super().release(node_id, now)


def test_drain_waits_for_an_outcome_being_written_before_it_releases(store: Store) -> None:
    """Regression: a drain that began while the completion loop's batch was committing
    saw nothing pending, released the run (queued again) and the late outcome was fenced:
    an agent that had run, its output lost, to be run a second time."""
    python_agent(store, "u", "tests.support.agents:usage")
    slow = _SlowFinish(store.url)
    run_id = store.fire_now("u", {})

    async def scenario(node: Node) -> None:
        await await_until(slow.writing.is_set, message="the outcome's write in flight")
        await node.drain()
        run = store.get_run(run_id)
        assert (run.status, run.attempt, run.output) == (RunStatus.SUCCEEDED, 1, "used tokens")
        assert "released" not in [e.kind for e in store.run_history(run_id)]

    try:
        run_node(slow, scenario)
    finally:
        slow.close()


def test_drain_requeues_runs_past_the_drain_timeout_without_using_an_attempt(
    store: Store,
) -> None:
    python_agent(store, "s", "tests.support.agents:sleepy", timeout="1m")
    run_id = store.fire_now("s", {"seconds": 60})

    async def scenario(node: Node) -> None:
        await await_until(lambda: store.get_run(run_id).status is RunStatus.RUNNING,
                          message="start")
        await node.drain()
        run = store.get_run(run_id)
        assert run.status is RunStatus.QUEUED and run.attempt == 0 and run.node_id is None
        assert [e.kind for e in store.run_history(run_id)] == ["released"]

    run_node(store, scenario, drain_timeout_s=0.3)


def test_node_statement_per_heartbeat_does_not_grow_withagent_runs(store: Store) -> None:
    python_agent(store, "s", "tests.support.agents:async_sleepy", max_concurrency=50, timeout="1m")
    for _ in range(30):
        store.fire_now("s", {"seconds": 30})

    async def scenario(node: Node) -> None:
        await await_until(lambda: len(node.dispatcher.inflight) == 30,
                          message="30 runs in flight")
        with store.count_statements(this_thread_only=True) as statements:
            beat = node.heartbeat.run_once()  # in this thread, so only its statements count
        assert beat.known and beat.revoked == []
        assert len([s for s in statements if s.lstrip().upper().startswith("UPDATE")]) == 1

    run_node(store, scenario, drain_timeout_s=0.1)
