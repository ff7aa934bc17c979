"""A worker's fence (``worker/fence.py``) on a clock the test moves: a run is given up at
its fence (a heartbeat interval and its stop time before its zombie timeout, counted from
the last beat that got through), not before; a beat that succeeds lifts the fence."""

from __future__ import annotations

import pytest

from agentcron.worker.fence import Guarded, WorkerFence


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_runs_are_given_up_at_their_fence_and_a_beat_that_succeeds_lifts_it() -> None:
    clock = Clock()
    fence = WorkerFence("w", heartbeat_interval_s=1.0, monotonic=clock)
    python = Guarded(("a", 1), zombie_timeout_s=10.0, stop_grace_s=0.0)  # fence at 9 s
    command = Guarded(("b", 1), zombie_timeout_s=10.0, stop_grace_s=2.0)  # at 7.5 s (cap)
    clock.now += 7.0
    assert fence.due([python, command]) == ([], pytest.approx(0.5))
    clock.now += 0.5
    # The python run is due in 1.5 s, but the fence looks again within a beat interval.
    assert fence.due([python, command]) == ([("b", 1)], 1.0)
    assert fence.fenced and fence.given_up == 1
    fence.beat_succeeded(sent_at=clock.now)
    assert not fence.fenced
    clock.now += 8.0
    assert fence.due([python]) == ([], pytest.approx(1.0))  # counted from the new beat


def test_a_beat_answered_late_counts_from_when_it_was_sent() -> None:
    clock = Clock()
    fence = WorkerFence("w", heartbeat_interval_s=1.0, monotonic=clock)
    sent = clock.now + 1.0
    clock.now += 9.5  # the beat hung 8.5 s before its answer came
    fence.beat_succeeded(sent_at=sent)
    run = Guarded(("a", 1), zombie_timeout_s=10.0, stop_grace_s=0.0)
    assert fence.due([run]) == ([], pytest.approx(0.5))
    assert fence.due([]) == ([], 1.0)


def test_a_run_whose_outcome_is_on_its_way_fences_the_worker_but_is_not_stopped() -> None:
    clock = Clock()
    fence = WorkerFence("w", heartbeat_interval_s=1.0, monotonic=clock)
    sending = Guarded(("a", 1), zombie_timeout_s=10.0, stop_grace_s=0.0, stoppable=False)
    clock.now += 9.0
    assert fence.due([sending]) == ([], 1.0)
    assert fence.fenced and fence.given_up == 0


def test_a_claim_answered_after_a_silence_is_not_trusted() -> None:
    clock = Clock()
    fence = WorkerFence("w", heartbeat_interval_s=1.0, monotonic=clock)
    run = Guarded(("a", 1), zombie_timeout_s=10.0, stop_grace_s=0.0)  # fence at 9 s
    claim_sent = clock.now
    fence.beat_succeeded(sent_at=clock.now + 1.0)
    clock.now += 12.0  # the link dropped for 11 s; the claim's answer comes only now
    fence.beat_succeeded(sent_at=clock.now - 0.5)  # and a beat got through again
    assert not fence.still_held(claim_sent, run)
    assert fence.still_held(clock.now - 1.0, run)  # a claim sent after the silence
