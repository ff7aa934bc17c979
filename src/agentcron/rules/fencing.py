"""Self-fencing: when a node cut off from the database must give up a run.

Another node may take a run over once the store's clock says the owner's node row has not
been beaten for the run's zombie timeout (``store.liveness.sweep``). The owner cannot see
that clock while it is cut off, but it knows when it *sent* its last beat that succeeded:
the store stamped that beat at a moment no earlier than the sending (the stamp is read
inside the beat's transaction). So a takeover comes no earlier than ``zombie_timeout``
after that sending, and the owner, counting on its own monotonic clock from the sending,
stops the run a reserve before that (``fence_after_s``). The reserve covers the time its
agent takes to stop (a command's kill grace) and the two clocks' different rates.

Pure functions of numbers (seconds, monotonic times): the engine (``engine/fence.py``)
feeds them and acts on the answer.
"""

from __future__ import annotations

from collections.abc import Sequence

RESERVE_CAP = 0.25
"""The reserve is never more than this share of the zombie timeout: with a short zombie
timeout and a long kill grace, a run is still given up after three quarters of it, never
so early that an ordinary slow beat (at most one heartbeat interval late) would trip it."""


def fence_after_s(zombie_timeout_s: float, heartbeat_interval_s: float,
                  stop_grace_s: float = 0.0) -> float:
    """Seconds after the last successful beat was sent at which a run must be given up.

    ``zombie_timeout_s`` is the run's (its agent's, else its node's), as the sweeper judges
    it; the reserve is one heartbeat interval plus ``stop_grace_s`` (how long stopping the
    agent may take), capped at ``RESERVE_CAP`` of the zombie timeout."""
    reserve = min(heartbeat_interval_s + max(0.0, stop_grace_s),
                  RESERVE_CAP * zombie_timeout_s)
    return zombie_timeout_s - reserve


def past_fence(last_beat_sent: float, now: float, fence_after: float) -> bool:
    """Whether a run (or the node) with that ``fence_after_s`` is fenced at ``now``: no
    beat sent within the last ``fence_after`` seconds has succeeded."""
    return now - last_beat_sent >= fence_after


def proved_throughout(beats_sent: Sequence[float], since: float, now: float,
                      fence_after: float) -> bool:
    """Whether the owner proved itself alive all the way from ``since`` to ``now``: no
    stretch of ``fence_after`` or more without the sending of a beat that succeeded
    (``beats_sent``, ascending). A run handed out at ``since`` or later whose answer
    arrives only now (held up by the link) may already have been taken over if not: a beat
    that got through after the gap proves the owner alive, not that the run is still its."""
    # From the newest back: a claim's check reads only the beats sent since it (about
    # one), not the whole history, as it runs for every claimed run.
    last = now
    for sent in reversed(beats_sent):
        if sent <= since:
            break
        if last - sent >= fence_after:
            return False
        last = sent
    return last - since < fence_after


def seconds_to_fence(last_beat_sent: float, now: float, fence_after: float) -> float:
    """How long until ``past_fence`` turns true, if no beat succeeds meanwhile (0 if it
    already is)."""
    return max(0.0, last_beat_sent + fence_after - now)
