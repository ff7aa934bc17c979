"""The fence on its own timer: which runs it gives up and when, fencing the node once, and
rejoining when a beat sent after the outage succeeds. Time is a hand-moved monotonic
clock and the runs are real claimed runs; then a whole node on both backends (and on real
processes with a real cut link: tests/system/test_self_fencing.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from agentcron.engine.fence import Fence, stop_grace_s
from agentcron.engine.metrics import EngineMetrics
from agentcron.engine.node import Node
from agentcron.executors import Executors
from agentcron.models import AgentKind, AgentSpec, ClaimedRun, RunStatus
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import await_until
from tests.support.nodes import node_settings, python_agent


class _Time:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(run_id: str, kind: AgentKind = AgentKind.PYTHON, zombie: float | None = None,
         config: dict[str, object] | None = None) -> ClaimedRun:
    agent = AgentSpec(name=f"a-{run_id}", kind=kind, config=config or {},
                      zombie_timeout_s=zombie)
    return ClaimedRun(run_id=run_id, lease=1, attempt=1, agent=agent, trigger_id=None,
                      scheduled_for=T0, started_at=T0, deadline_at=T0 + timedelta(hours=1))


class _Node:
    def __init__(self, runs: list[ClaimedRun]) -> None:
        self.runs = runs
        self.given_up: list[tuple[str, str]] = []
        self.changes: list[bool] = []

    def give_up(self, run: ClaimedRun, why: str) -> None:
        self.given_up.append((run.run_id, why))
        self.runs.remove(run)

    def fence(self, clock: _Time) -> Fence:
        return Fence(clock, "n1", zombie_timeout_s=6.0, heartbeat_interval_s=1.0,
                     executing=lambda: list(self.runs), give_up=self.give_up,
                     on_change=self.changes.append)


def test_runs_are_given_up_at_their_own_fence_and_the_node_is_fenced_once() -> None:
    clock = _Time()
    plain, command = _run("plain"), _run("cmd", AgentKind.COMMAND, config={"kill_grace_s": 1})
    patient = _run("patient", zombie=60.0)
    node = _Node([plain, command, patient])
    fence = node.fence(clock)
    clock.now += 1.0
    assert fence.check() > 0 and not node.given_up and not fence.fenced
    # The command goes first: 6 s less a beat and its 1 s grace, the reserve capped at a
    # quarter of the zombie timeout (4.5 s)...
    clock.now = 1000.0 + 4.4
    fence.check()
    assert not node.given_up
    clock.now = 1000.0 + 4.5
    fence.check()
    assert [r for r, _ in node.given_up] == ["cmd"] and fence.fenced
    assert "node fenced" in node.given_up[0][1]
    # ...the python run at 5 s; the one whose agent has a 60 s zombie timeout keeps running.
    clock.now = 1000.0 + 5.0
    fence.check()
    assert [r for r, _ in node.given_up] == ["cmd", "plain"]
    assert node.changes == [True]  # fenced once, however many runs it gave up
    assert fence.runs_given_up == 2
    clock.now = 1000.0 + 58.9
    fence.check()
    assert len(node.given_up) == 2
    clock.now = 1000.0 + 59.0  # its own 60 s less a beat
    fence.check()
    assert [r for r, _ in node.given_up] == ["cmd", "plain", "patient"]


def test_a_beat_that_hung_through_the_outage_does_not_lift_the_fence() -> None:
    clock = _Time()
    node = _Node([])
    fence = node.fence(clock)
    hung_beat_sent = clock.now + 0.5
    clock.now += 20.0
    fence.check()
    assert fence.fenced and node.changes == [True]
    fence.beat_succeeded(hung_beat_sent)  # it finally returned, but was sent long ago
    assert fence.fenced
    fence.beat_succeeded(clock.now)  # a beat sent now succeeded: rejoin
    assert not fence.fenced and node.changes == [True, False]
    clock.now += 1.0
    fence.check()
    assert not fence.fenced


def test_beats_that_succeed_keep_every_run() -> None:
    clock = _Time()
    node = _Node([_run("r1"), _run("r2", AgentKind.COMMAND)])
    fence = node.fence(clock)
    for _ in range(100):
        clock.now += 1.2  # a beat interval and a slow round trip
        fence.beat_succeeded(clock.now - 0.2)
        fence.check()
    assert not node.given_up and not fence.fenced and node.changes == []


def test_the_timer_gives_up_a_run_while_no_beat_returns() -> None:
    """The loop wakes at the fence itself: nothing (no beat, which may hang) has to."""

    async def main() -> list[tuple[str, str]]:
        import time

        node = _Node([_run("r1")])
        fence = Fence(time.monotonic, "n1", zombie_timeout_s=0.4, heartbeat_interval_s=0.1,
                      executing=lambda: list(node.runs), give_up=node.give_up)
        stop = asyncio.Event()
        task = asyncio.create_task(fence.loop(stop.is_set))
        for _ in range(200):
            if node.given_up:
                break
            await asyncio.sleep(0.02)
        stop.set()
        fence.wakeup.set()
        await asyncio.wait_for(task, 5.0)
        return node.given_up

    assert [r for r, _ in asyncio.run(main())] == ["r1"]


def test_a_commands_kill_grace_is_its_stop_grace() -> None:
    assert stop_grace_s(_run("a", AgentKind.COMMAND, config={"kill_grace_s": 2}).agent) == 2.0
    assert stop_grace_s(_run("b", AgentKind.COMMAND).agent) == 5.0  # the default
    assert stop_grace_s(_run("c", AgentKind.HTTP).agent) == 0.0


# -- a whole node, in-process, on a real database --------------------------------------------


def test_a_fenced_node_gives_its_run_up_claims_nothing_and_rejoins(store: Store) -> None:
    """The node's wiring: the fence (made to see a long silence) cancels the python run,
    whose given-up attempt is written as a failure; nothing is claimed while fenced; a beat
    that succeeds lifts the fence and the waiting run is claimed, without a restart. Beats
    are 30 s apart here, so none lands by itself during the test."""
    python_agent(store, "s", "tests.support.agents:sleepy", timeout="1m", max_attempts=1)
    python_agent(store, "q", "tests.support.agents:usage")
    sleeper = store.fire_now("s", {"seconds": 60})

    async def main() -> None:
        metrics = EngineMetrics()
        settings = node_settings(store, heartbeat_interval_s=30.0, zombie_timeout_s=60.0)
        node = Node(store, settings, Executors(), metrics=metrics)
        node.heartbeat.test_signals.init()
        await node.start()
        try:
            # The first beat has landed: no beat in flight can lift the fence below.
            await node.heartbeat.test_signals.stepped.wait()
            await await_until(lambda: store.get_run(sleeper).status is RunStatus.RUNNING,
                              message="the sleeper to start")
            node.fence.last_beat_sent -= 100.0  # as if no beat had succeeded for 100 s
            node.fence.wakeup.set()
            await await_until(lambda: store.get_run(sleeper).status is RunStatus.FAILED,
                              message="the given-up attempt to be written")
            assert "node fenced" in (store.get_run(sleeper).error or "")
            assert node.fenced() and node.dispatcher.inflight == {}
            assert metrics.fenced._value.get() == 1
            assert metrics.runs_given_up._value.get() == 1

            quick = store.fire_now("q", None)
            # Held: the dispatcher's loop passes no claim (several poll intervals go by).
            await asyncio.sleep(20 * settings.poll_interval_s)
            assert store.get_run(quick).status is RunStatus.QUEUED

            node.fence.beat_succeeded(node.clock.monotonic())  # a fresh beat got through
            assert not node.fenced() and metrics.fenced._value.get() == 0
            await await_until(lambda: store.get_run(quick).status is RunStatus.SUCCEEDED,
                              message="the queued run to be claimed after rejoining")
            assert store.get_run(quick).node_id == node.id
        finally:
            await node.drain()

    asyncio.run(main())


def test_a_claim_answered_after_a_silence_is_not_trusted() -> None:
    clock = [100.0]
    fence = Fence(lambda: clock[0], "n1", zombie_timeout_s=10.0, heartbeat_interval_s=1.0,
                  executing=list, give_up=lambda run, why: None)
    run = _run("a", AgentKind.HTTP)  # given up 9 s after the last good beat was sent
    claimed = clock[0]
    fence.beat_succeeded(clock[0] + 1.0)
    clock[0] += 12.0  # nothing got through for 11 s; the claim's answer comes only now
    fence.beat_succeeded(clock[0] - 0.5)
    assert not fence.still_held(claimed, run)
    assert fence.still_held(clock[0] - 1.0, run)
