"""The partition scenario's verdict on handovers (``chaos.links.handovers``): a later
attempt of a run that reached the receiver before an earlier attempt ended is an overlap;
one that came after is a handover, with its gap."""

from __future__ import annotations

from chaos.links import handovers


def test_an_attempt_that_starts_after_the_last_one_ended_is_a_handover() -> None:
    seen = handovers({("r1", 1): (10.0, 14.0, True), ("r1", 2): (16.5, 20.0, False),
                      ("r2", 1): (11.0, 12.0, False)})
    assert seen.overlapping == []
    assert (seen.stopped, seen.min_gap_s) == (1, 2.5)


def test_an_attempt_that_starts_while_an_earlier_one_executes_is_an_overlap() -> None:
    # Attempt 2 began and ended while attempt 1 still executed; so did attempt 3, which
    # began after attempt 2 had ended: it overlaps attempt 1 all the same.
    seen = handovers({("r1", 1): (10.0, 30.0, False), ("r1", 2): (12.0, 13.0, True),
                      ("r1", 3): (20.0, 40.0, False)})
    assert seen.overlapping == [{"run_id": "r1", "attempts": [1, 2], "overlap_s": 18.0},
                                {"run_id": "r1", "attempts": [1, 3], "overlap_s": 10.0}]
    assert seen.min_gap_s == -18.0
