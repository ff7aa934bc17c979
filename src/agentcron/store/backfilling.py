"""Backfill: runs queued for a trigger's past scheduled times, asked for by a user.

Each batch is one ``INSERT ... SELECT`` over one bulk parameter (``transitions.insert_fired``)
with ``ON CONFLICT (trigger_id, scheduled_for) DO NOTHING``: a time that already has a run
(fired, skipped, or backfilled before) keeps it and is counted as skipped. The unique key
decides, so a backfill racing the ticker or another backfill never makes a second run of a
time. The runs are plain ``queued`` runs: the claim path holds them to the agent's
concurrency limit and budget like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, cast, select
from sqlalchemy.engine import Connection

from agentcron.errors import NotFoundError
from agentcron.models import RunStatus
from agentcron.rules.ids import new_run_id
from agentcron.store import keys, transitions
from agentcron.store.bulk import bulk_source
from agentcron.store.notify import notify
from agentcron.store.schema import triggers
from agentcron.store.types import UTCDateTime

BACKFILL_REASON = "backfill"
"""The ``reason`` a backfilled run carries (until a later transition sets its own)."""

_COLUMNS: dict[str, Any] = {
    "id": String(36),
    "trigger_id": String(40),
    "agent": String(100),
    "scheduled_for": UTCDateTime(),
    "status": String(16),
    "reason": Text(),
    "payload": Text(),  # the trigger's JSON text, copied undecoded (as firing does)
    "coalesced": Integer(),
    "queued_at": UTCDateTime(),
    "run_after": UTCDateTime(),
    "concurrency_key": String(200),
}


def backfill(conn: Connection, trigger_id: str, times: Sequence[tuple[datetime, int]],
             now: datetime) -> int:
    """Queue one run per (scheduled time, how many times it stands for) of ``times`` for
    the trigger, ready now, with the trigger's payload; returns how many were queued (the
    rest already had a run). Two statements."""
    row = conn.execute(select(triggers.c.agent, cast(triggers.c.payload, Text).label("payload"),
                              keys.policy_column(triggers.c.agent))
                       .where(triggers.c.id == trigger_id)).first()
    if row is None:
        raise NotFoundError("trigger", trigger_id)
    if not times:
        return 0
    key = keys.key_of_text(row.key_policy, row.payload)
    rows = [{"id": new_run_id(), "trigger_id": trigger_id, "agent": row.agent,
             "scheduled_for": at, "status": RunStatus.QUEUED.value,
             "reason": BACKFILL_REASON, "payload": row.payload, "coalesced": n,
             "queued_at": now, "run_after": now, "concurrency_key": key}
            for at, n in times]
    source = bulk_source(conn, _COLUMNS, rows)
    queued = conn.execute(transitions.insert_fired(conn, source, list(_COLUMNS))).all()
    if queued:
        notify(conn, "runs")
    return len(queued)
