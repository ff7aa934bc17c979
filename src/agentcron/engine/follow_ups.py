"""The hook that turns a run's follow-up requests into ``FollowUp`` rows for ``Store.finish``.

The engine cannot validate a trigger (that is the trigger service's, a layer above), so the
node takes a ``FollowUpBuilder`` from whoever starts it: ``server.run_node`` (``serve`` and
the Python API's ``Agentcron.run``) always injects ``services.follow_ups``. A node built
without one (a test, an embedding that did not ask) refuses every request with
``NO_SUPPORT``, recorded on the run, rather than dropping it silently.

The dispatcher calls the builder only for a succeeded attempt that asked for follow-ups, in
a worker thread (it may read an agent from the store), before the outcome is handed to the
completion writer: a run that asks for nothing costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from agentcron.executors.follow_ups import refused_all
from agentcron.models import ClaimedRun, FollowUp

NO_SUPPORT = "this node was started without follow-up support"


class FollowUpBuilder(Protocol):
    def __call__(self, run: ClaimedRun, requests: Sequence[Any], now: datetime
                 ) -> tuple[FollowUp, ...]:
        """One ``FollowUp`` per request, in order: a validated trigger row, or the reason
        it was refused. Never raises for a bad request."""
        ...


def without_follow_ups(run: ClaimedRun, requests: Sequence[Any], now: datetime
                       ) -> tuple[FollowUp, ...]:
    """The default builder: every request refused (``NO_SUPPORT``)."""
    return refused_all(requests, NO_SUPPORT)
