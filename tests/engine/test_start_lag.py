"""A queued run whose time is still to come (a retry after its backoff, a fire with jitter)
is claimed when its time comes, not at the dispatcher's next poll. Before, an idle node
started such runs up to a poll interval late, and the dashboard's start lag p95 of an idle
SQLite node read ~800 ms with the default 1 s poll. The poll interval here is a minute, so
a run that waits for the poll cannot start within the test's wait."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from agentcron.engine.clock import DatabaseClock
from agentcron.engine.dispatcher import Dispatcher
from agentcron.engine.node import Node
from agentcron.engine.resilience import StoreHealth
from agentcron.executors import Executors
from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.support.helpers import await_until
from tests.support.nodes import agent_runs, python_agent, run_node

LONG_POLL = {"poll_interval_s": 60.0}


def test_a_retry_is_claimed_when_its_backoff_ends_not_at_the_next_poll(store: Store) -> None:
    python_agent(store, "f", "tests.support.agents:flaky", retry_backoff="0.2s")
    run_id = store.fire_now("f", None)

    async def scenario(node: Node) -> None:
        await await_until(lambda: store.get_run(run_id).status is RunStatus.SUCCEEDED,
                          timeout=20.0, message="the retry ran before the next poll")
        assert store.get_run(run_id).attempt == 2

    run_node(store, scenario, **LONG_POLL)


def test_a_jittered_fire_is_claimed_at_its_time_not_at_the_next_poll(store: Store) -> None:
    python_agent(store, "j", "tests.support.agents:record")
    at = datetime.now(UTC) + timedelta(seconds=1)
    Services(store).add_trigger(TriggerInput(agent="j", at=at, jitter="1s"))

    async def scenario(node: Node) -> None:
        runs = await await_until(
            lambda: [r for r in agent_runs(store, "j") if r.status is RunStatus.SUCCEEDED],
            timeout=20.0, message="the jittered run ran before the next poll")
        assert runs[0].run_after >= runs[0].scheduled_for

    run_node(store, scenario, **LONG_POLL)


def test_the_dispatcher_sleeps_only_until_the_next_known_ready_time(store: Store) -> None:
    dispatcher = Dispatcher(
        store, DatabaseClock(), StoreHealth(time.monotonic), Executors(), "n1",
        max_inflight=2, claim_batch=10, poll_interval_s=60.0, submit=lambda o: None,
        on_progress=lambda run, progress: None)
    now = time.monotonic()
    assert dispatcher._idle_s(now) == 60.0
    dispatcher.ready_in(5.0)
    assert 0 < dispatcher._idle_s(now) <= 5.0
    # A pass that claimed after that time saw the run ready: back to the poll interval.
    assert dispatcher._idle_s(now + 6.0) == 60.0
