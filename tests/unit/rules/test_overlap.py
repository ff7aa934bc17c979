"""The overlap rule, alone: what new fires become given the trigger's active runs."""

from __future__ import annotations

import pytest

from agentcron.models import OverlapPolicy, RunStatus
from agentcron.rules.overlap import (
    REPLACED,
    SKIPPED_ACTIVE,
    SKIPPED_QUEUED,
    ActiveRuns,
    NewRun,
    OverlapDecision,
    decide_overlap,
)

QUEUED = NewRun(RunStatus.QUEUED)
SKIP_ACTIVE = NewRun(RunStatus.SKIPPED, SKIPPED_ACTIVE)
SKIP_QUEUED = NewRun(RunStatus.SKIPPED, SKIPPED_QUEUED)
OLDER = NewRun(RunStatus.CANCELLED, REPLACED)
NONE, QUEUED_ONLY, RUNNING_ONLY = ActiveRuns(), ActiveRuns(queued=True), ActiveRuns(running=True)


@pytest.mark.parametrize(("policy", "active", "fires", "expected"), [
    (OverlapPolicy.ALLOW, QUEUED_ONLY, 3, OverlapDecision(False, (QUEUED,) * 3)),
    (OverlapPolicy.SKIP, NONE, 1, OverlapDecision(False, (QUEUED,))),
    (OverlapPolicy.SKIP, RUNNING_ONLY, 1, OverlapDecision(False, (SKIP_ACTIVE,))),
    (OverlapPolicy.SKIP, NONE, 3, OverlapDecision(False, (QUEUED, SKIP_ACTIVE, SKIP_ACTIVE))),
    (OverlapPolicy.QUEUE, RUNNING_ONLY, 1, OverlapDecision(False, (QUEUED,))),
    (OverlapPolicy.QUEUE, QUEUED_ONLY, 1, OverlapDecision(False, (SKIP_QUEUED,))),
    (OverlapPolicy.QUEUE, RUNNING_ONLY, 2, OverlapDecision(False, (QUEUED, SKIP_QUEUED))),
    (OverlapPolicy.REPLACE, NONE, 1, OverlapDecision(False, (QUEUED,))),
    (OverlapPolicy.REPLACE, RUNNING_ONLY, 1, OverlapDecision(True, (QUEUED,))),
    (OverlapPolicy.REPLACE, QUEUED_ONLY, 3, OverlapDecision(True, (OLDER, OLDER, QUEUED))),
    (OverlapPolicy.REPLACE, RUNNING_ONLY, 0, OverlapDecision(False, ())),
])
def test_decide_overlap(policy: OverlapPolicy, active: ActiveRuns, fires: int,
                        expected: OverlapDecision) -> None:
    assert decide_overlap(policy, active, fires) == expected
