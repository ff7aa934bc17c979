"""Run state transitions shared by more than one store operation: ``replace``, used by
scheduled fires and webhook deliveries alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Connection

from agentcron.models import ACTIVE_STATUSES, RunEvent, RunStatus
from agentcron.rules.overlap import REPLACED
from agentcron.store.events import record_events
from agentcron.store.notify import notify
from agentcron.store.schema import runs

_ACTIVE = [s.value for s in sorted(ACTIVE_STATUSES)]


def replace(conn: Connection, trigger_ids: Sequence[str], now: datetime) -> int:
    """replace: the active (queued or running) runs of ``trigger_ids`` -> ``cancelled``
    (reason ``REPLACED``), each with a ``cancelled`` run event; when one was running, a
    ``cancel`` notification so its worker stops at once rather than at its next beat.
    Scheduled fires and webhook deliveries both replace through here. The caller holds
    the trigger rows' locks. Two statements for any number of triggers (three with the
    notification). Returns how many runs were cancelled."""
    if not trigger_ids:
        return 0
    replaced = conn.execute(
        update(runs)
        .where(runs.c.trigger_id.in_(list(trigger_ids)), runs.c.status.in_(_ACTIVE))
        .values(status=RunStatus.CANCELLED.value, reason=REPLACED, finished_at=now)
        .returning(runs.c.id, runs.c.attempt, runs.c.node_id)
    ).all()
    record_events(conn, [RunEvent(r.id, now, "cancelled", r.attempt, r.node_id, REPLACED)
                         for r in replaced])
    if any(r.node_id is not None for r in replaced):
        notify(conn, "cancel")
    return len(replaced)
