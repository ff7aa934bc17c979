"""The self-fencing rule: when a node without a successful beat gives a run up."""

from __future__ import annotations

import pytest

from agentcron.rules.fencing import RESERVE_CAP, fence_after_s, past_fence, seconds_to_fence


def test_a_run_is_given_up_one_beat_and_its_stop_grace_before_the_zombie_timeout() -> None:
    assert fence_after_s(60.0, 5.0) == 55.0
    assert fence_after_s(60.0, 5.0, stop_grace_s=5.0) == 50.0


def test_the_reserve_never_exceeds_its_share_of_a_short_zombie_timeout() -> None:
    # 6 s zombie timeout, 1 s beats, a 5 s kill grace: given up after 4.5 s, not at once.
    assert fence_after_s(6.0, 1.0, stop_grace_s=5.0) == pytest.approx(6.0 * (1 - RESERVE_CAP))
    # The shortest zombie timeout settings accept (two beats) still leaves a beat's slack.
    assert fence_after_s(10.0, 5.0) > 5.0


@pytest.mark.parametrize(("zombie", "beat", "grace"),
                         [(60.0, 5.0, 0.0), (60.0, 5.0, 30.0), (6.0, 1.0, 5.0), (10.0, 5.0, 0.0)])
def test_a_run_is_always_given_up_before_another_node_may_take_it(
        zombie: float, beat: float, grace: float) -> None:
    after = fence_after_s(zombie, beat, grace)
    assert beat < after < zombie


def test_fenced_once_no_beat_succeeded_for_the_fence_time() -> None:
    sent = 100.0
    assert not past_fence(sent, now=104.9, fence_after=5.0)
    assert past_fence(sent, now=105.0, fence_after=5.0)
    assert past_fence(sent, now=500.0, fence_after=5.0)
    # A later beat that succeeded lifts it.
    assert not past_fence(499.0, now=500.0, fence_after=5.0)


def test_seconds_to_fence_counts_down_to_zero() -> None:
    assert seconds_to_fence(100.0, now=101.0, fence_after=5.0) == 4.0
    assert seconds_to_fence(100.0, now=106.0, fence_after=5.0) == 0.0


def test_a_run_is_proved_held_only_without_a_gap_since_it_was_handed_out() -> None:
    from agentcron.rules.fencing import proved_throughout

    beats = [0.0, 1.0, 2.0, 3.0, 9.0, 10.0]  # nothing got through between 3 and 9
    # Handed out at 0.5: the 3 -> 9 gap was long enough for a takeover.
    assert not proved_throughout(beats, since=0.5, now=10.5, fence_after=4.0)
    # Handed out at 8.5, after the gap: beats since have kept it.
    assert proved_throughout(beats, since=8.5, now=10.5, fence_after=4.0)
    # No beat since the hand-out, and too long ago.
    assert not proved_throughout(beats, since=10.0, now=14.0, fence_after=4.0)
    assert proved_throughout(beats, since=10.0, now=13.9, fence_after=4.0)
