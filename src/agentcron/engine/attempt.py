"""How the engine names one attempt at a run: its run id and lease, as the store does.

A run id alone names the run, not the attempt: after attempt N's outcome is written and
the run is claimed again, a decision about attempt N (the heartbeat found its lease lost,
its progress write was fenced, its outcome was written) must not reach attempt N+1 of
the same run. Every map and set of in-flight work in the engine is keyed by ``Attempt``.
"""

from __future__ import annotations

from typing import NamedTuple

from agentcron.models import ClaimedRun, Outcome


class Attempt(NamedTuple):
    run_id: str
    lease: int

    @classmethod
    def of(cls, item: ClaimedRun | Outcome) -> Attempt:
        """The attempt a claimed run or its outcome belongs to."""
        return cls(item.run_id, item.lease)
