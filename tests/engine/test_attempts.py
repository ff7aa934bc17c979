"""The engine knows an attempt by (run id, lease), as the store does: a verdict about
attempt N of a run never reaches attempt N+1 of the same run.

The race this pins down: a heartbeat reads the in-flight leases (attempt 1), and while
its statement is on its way, attempt 1 times out, its retry is written and the run is
claimed again (attempt 2). The store rightly reports the lease it was sent as lost; keyed
by run id alone, that report cancelled attempt 2, which then wrote nothing and sat
``running`` until the sweeper's backstop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from datetime import datetime, timedelta

from agentcron.engine.attempt import Attempt
from agentcron.engine.clock import DatabaseClock
from agentcron.engine.dispatcher import Dispatcher
from agentcron.engine.heartbeat import Heartbeat
from agentcron.engine.resilience import StoreHealth
from agentcron.executors import Executors
from agentcron.models import Outcome
from agentcron.services import Services
from agentcron.store import HeartbeatResult, NodeInfo, Store


def _sleepy_agent(store: Store, max_attempts: int = 3) -> None:
    services = Services(store)
    services.add_agent(services.build_agent(
        "s", "python", {"target": "tests.support.agents:async_sleepy"}, timeout="1m",
        max_attempts=max_attempts))


class _HeldBeat(Store):
    """A real store whose heartbeat, once it has its arguments, waits for ``go``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.entered = threading.Event()
        self.go = threading.Event()

    def heartbeat(self, node_id: str, inflight: list[tuple[str, int]],
                  now: datetime | None = None) -> HeartbeatResult:
        self.entered.set()
        self.go.wait(10.0)
        return super().heartbeat(node_id, inflight, now)


def test_a_lost_lease_reported_late_does_not_stop_the_next_attempt(store: Store) -> None:
    _sleepy_agent(store)
    run_id = store.fire_now("s", {"seconds": 60})
    node = NodeInfo("n1", "h", 1, "t", 30)
    store.register_node(node)
    [first] = store.claim_runs("n1", 1)
    held = _HeldBeat(store.url)

    async def main() -> tuple[list[Attempt], list[Attempt], Attempt, bool]:
        timed_out = asyncio.Event()
        submitted: list[Outcome] = []

        def submit(outcome: Outcome) -> None:
            submitted.append(outcome)
            timed_out.set()

        health = StoreHealth(time.monotonic)
        dispatcher = Dispatcher(
            store, DatabaseClock(), health, Executors(), "n1", max_inflight=5,
            claim_batch=5, poll_interval_s=1.0, submit=submit,
            on_progress=lambda run, progress: None)
        revokes: list[Attempt] = []

        def revoke(attempt: Attempt, reason: str) -> None:
            revokes.append(attempt)
            dispatcher.revoke(attempt, reason)

        heartbeat = Heartbeat(held, DatabaseClock(), health, node, interval_s=60.0,
                              leases=dispatcher.leases, revoke=revoke)
        # Attempt 1 runs out of time at once (its deadline, not the agent's 60 s, ends it).
        dispatcher.start(dataclasses.replace(
            first, deadline_at=first.started_at + timedelta(milliseconds=1)))
        beat = asyncio.create_task(heartbeat.beat())
        await asyncio.to_thread(held.entered.wait, 10.0)  # the beat holds attempt 1's lease
        await asyncio.wait_for(timed_out.wait(), 10.0)
        # What the completion writer does: write the retry, then forget attempt 1.
        [outcome] = submitted
        assert outcome.retry_delay_s is not None
        store.finish("n1", [dataclasses.replace(outcome, retry_delay_s=0.0)])
        dispatcher.forget(Attempt.of(outcome))
        [second] = store.claim_runs("n1", 1)
        dispatcher.start(second)
        held.go.set()
        revoked = await asyncio.wait_for(beat, 10.0)
        in_flight = dispatcher.leases()
        entry = dispatcher.inflight.get(Attempt.of(second))
        still_running = (entry is not None and not entry.revoked
                         and entry.task is not None and not entry.task.done())
        await dispatcher.cancel_all("test over", wait_s=5.0)
        return revoked, in_flight, Attempt.of(second), still_running

    try:
        revoked, in_flight, second, still_running = asyncio.run(main())
    finally:
        held.close()
    first_attempt = Attempt(run_id, first.lease)
    assert second == Attempt(run_id, first.lease + 1)
    assert revoked == [first_attempt]  # the store judged the lease it was sent
    assert in_flight == [second] and still_running  # and attempt 2 runs on


def test_revoke_and_forget_touch_only_their_own_attempt(store: Store) -> None:
    _sleepy_agent(store)
    store.fire_now("s", {"seconds": 60})
    store.register_node(NodeInfo("n1", "h", 1, "t", 30))
    [run] = store.claim_runs("n1", 1)
    current = Attempt.of(run)
    earlier = Attempt(run.run_id, run.lease - 1)

    async def main() -> tuple[bool, bool]:
        dispatcher = Dispatcher(
            store, DatabaseClock(), StoreHealth(time.monotonic), Executors(), "n1",
            max_inflight=5, claim_batch=5, poll_interval_s=1.0, submit=lambda o: None,
            on_progress=lambda r, p: None)
        dispatcher.start(run)
        dispatcher.revoke(earlier, "a verdict about the earlier attempt")
        dispatcher.forget(earlier)
        entry = dispatcher.inflight[current]
        kept = not entry.revoked and not entry.ctx.cancelled and dispatcher.holds(run.run_id)
        dispatcher.revoke(current, "its own verdict")
        gone = entry.revoked and not dispatcher.holds(run.run_id)
        if entry.task is not None:
            await asyncio.wait([entry.task], timeout=5.0)
        return kept, gone

    assert asyncio.run(main()) == (True, True)


def test_the_beat_asks_about_the_newest_attempt_of_each_run(sqlite_store: Store) -> None:
    """Attempt 1's outcome is written but not yet forgotten when attempt 2 starts: the
    beat sends one lease per run, the newest, and a verdict lands on that attempt."""
    revokes: list[Attempt] = []
    heartbeat = Heartbeat(sqlite_store, DatabaseClock(), StoreHealth(time.monotonic),
                          NodeInfo("n1", "h", 1, "t", 30), interval_s=1.0, leases=list,
                          revoke=lambda attempt, reason: revokes.append(attempt))
    sent = [Attempt("r", 1), Attempt("other", 5), Attempt("r", 2)]
    assert heartbeat.judged(sent) == {"r": 2, "other": 5}
    revoked = heartbeat.apply(sent, HeartbeatResult(known=True, revoked=["r"]))
    assert revoked == revokes == [Attempt("r", 2)]
