"""The overlap policy: what a trigger's new fires become, given the runs it already has
active. Pure (no I/O): scheduled firing and webhook deliveries both ask it, so the two
paths cannot decide differently.

- ``allow``: every fire is queued.
- ``skip``: a fire is skipped (``SKIPPED_ACTIVE``) while the trigger has an active run,
  counting one queued by an earlier fire of the same batch.
- ``queue``: a fire is skipped (``SKIPPED_QUEUED``) while the trigger has a queued run, so
  a running run may be followed by one queued, never more.
- ``replace``: the trigger's active runs are cancelled (``REPLACED``); the last fire is
  queued, earlier fires of the same batch are inserted already cancelled.

"Active" means ``queued`` or ``running``; only whether such runs exist matters, never how
many. Several fires at once come from catch-up in ``all`` mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentcron.models import OverlapPolicy, RunStatus

SKIPPED_ACTIVE = "overlap: the previous run is still active"
SKIPPED_QUEUED = "overlap: a run is already queued"
REPLACED = "replaced by a newer fire"
"""The reason (and run event message) of a run cancelled by a newer fire of its trigger,
scheduled or delivered by webhook."""


@dataclass(frozen=True)
class ActiveRuns:
    """Whether the trigger has a queued and a running run right now."""

    queued: bool = False
    running: bool = False


@dataclass(frozen=True)
class NewRun:
    """The state a new run is inserted in: ``queued``, or already final (``skipped`` or
    ``cancelled``) with its reason."""

    status: RunStatus
    reason: str | None = None


@dataclass(frozen=True)
class OverlapDecision:
    """``cancel_active``: cancel the trigger's active runs (reason ``REPLACED``) before
    inserting. ``new_runs``: one per fire, in the order of the fires."""

    cancel_active: bool
    new_runs: tuple[NewRun, ...]


_QUEUED = NewRun(RunStatus.QUEUED)


def decide_overlap(policy: OverlapPolicy, active: ActiveRuns, fires: int) -> OverlapDecision:
    """What ``fires`` new fires of one trigger become under ``policy`` (no fires, nothing
    to do: an active run is never cancelled without a newer one to replace it)."""
    if fires <= 0:
        return OverlapDecision(False, ())
    if policy is OverlapPolicy.REPLACE:
        older = NewRun(RunStatus.CANCELLED, REPLACED)
        return OverlapDecision(active.queued or active.running,
                               (older,) * (fires - 1) + (_QUEUED,))
    queued, running = active.queued, active.running
    new_runs: list[NewRun] = []
    for _ in range(fires):
        if policy is OverlapPolicy.SKIP and (queued or running):
            new_runs.append(NewRun(RunStatus.SKIPPED, SKIPPED_ACTIVE))
        elif policy is OverlapPolicy.QUEUE and queued:
            new_runs.append(NewRun(RunStatus.SKIPPED, SKIPPED_QUEUED))
        else:
            new_runs.append(_QUEUED)
            queued = True
    return OverlapDecision(False, tuple(new_runs))
