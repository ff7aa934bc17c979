"""A node's slots count the runs it is executing, not the outcomes waiting to be written:
a slow completion write must not stop a node from starting runs (it used to, and then the
firing node could not claim what it fired, so every run took the slower queued path).
The in-flight set, unwritten outcomes included, stays under twice ``max_inflight``."""

from __future__ import annotations

import asyncio
import time

from agentcron.engine.attempt import Attempt
from agentcron.engine.clock import DatabaseClock
from agentcron.engine.dispatcher import Dispatcher
from agentcron.engine.resilience import StoreHealth
from agentcron.executors import Executors
from agentcron.models import Outcome, RunStatus
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, await_until


def test_unwritten_outcomes_free_their_slots_up_to_twice_the_limit(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100)
    for _ in range(6):
        store.fire_now("a", None)
    submitted: list[Outcome] = []  # outcomes handed to the writer, never written here

    async def main() -> list[int]:
        dispatcher = Dispatcher(
            store, DatabaseClock(), StoreHealth(time.monotonic), Executors(), "n1",
            max_inflight=2, claim_batch=10, poll_interval_s=1.0, submit=submitted.append,
            on_progress=lambda run, progress: None)
        free = [dispatcher.free_slots()]
        for _ in range(3):
            for run in dispatcher.run_once():
                dispatcher.start(run)
            free.append(dispatcher.free_slots())  # both started, neither finished
            await asyncio.gather(*dispatcher.executing_tasks())
            free.append(dispatcher.free_slots())  # finished, outcomes not written
        for outcome in submitted:  # what the completion writer does once it has written
            dispatcher.forget(Attempt.of(outcome))
        free.append(dispatcher.free_slots())
        return free

    free = asyncio.run(main())

    # Rounds 1 and 2 each start 2; after round 2, 4 unwritten outcomes (twice the limit)
    # leave no slot, so round 3 starts nothing until they are written.
    assert free == [2, 0, 2, 0, 0, 0, 0, 2], free
    assert len(submitted) == 4 and all(o.status is RunStatus.SUCCEEDED for o in submitted)


def test_a_slot_is_claimed_again_as_soon_as_its_run_ends(store: Store) -> None:
    """With a poll of a minute and no outcome ever written (the writer would wake the
    dispatcher too), the end of a run alone makes the dispatcher claim the next one."""
    add_agent(store, now=T0, max_concurrency=100)
    for _ in range(3):
        store.fire_now("a", None)
    submitted: list[Outcome] = []

    async def main() -> None:
        dispatcher = Dispatcher(
            store, DatabaseClock(), StoreHealth(time.monotonic), Executors(), "n1",
            max_inflight=1, claim_batch=10, poll_interval_s=60.0, submit=submitted.append,
            on_progress=lambda run, progress: None)
        stop = asyncio.Event()
        loop = asyncio.create_task(dispatcher.loop(stop.is_set))
        try:
            # One slot: the second run can only start once the first has ended. (The third
            # waits for an outcome write: two unwritten outcomes fill the in-flight set.)
            await await_until(lambda: len(submitted) == 2, timeout=30,
                              message="the second run to start after the first ended")
        finally:
            stop.set()
            dispatcher.wakeup.set()
            await loop

    asyncio.run(main())
    assert [o.status for o in submitted] == [RunStatus.SUCCEEDED] * 2
