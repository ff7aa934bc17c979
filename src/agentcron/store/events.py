"""Run events: the append-only history of what happened to a run beyond its current row
(failed attempts, retries, lost leases, cancellations, releases). ``record_events`` is the
only code that appends to ``run_events`` (pruning deletes events with their runs); every
transition that leaves a trace calls it in the transaction that changed the run, so a
run's history and its row never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Integer, String, Text, insert, select
from sqlalchemy.engine import Connection

from agentcron.models import RunEvent
from agentcron.store.bulk import bulk_source
from agentcron.store.schema import run_events
from agentcron.store.types import UTCDateTime

_EVENT_COLUMNS: dict[str, Any] = {
    "run_id": String(36),
    "at": UTCDateTime(),
    "kind": String(24),
    "attempt": Integer(),
    "node_id": String(100),
    "message": Text(),
}


def record_events(conn: Connection, events: Sequence[RunEvent]) -> None:
    """Append ``events`` in the caller's transaction: nothing for none, one statement for
    any number (an ``INSERT ... SELECT`` over one bulk parameter, so a batch of a thousand
    lost runs is not a thousand inserts). An event's ``attempt`` is the attempt it is
    about: for a release, the one interrupted, not the one given back."""
    if not events:
        return
    if len(events) == 1:
        conn.execute(insert(run_events).values(asdict(events[0])))
        return
    source = bulk_source(conn, _EVENT_COLUMNS, [asdict(e) for e in events])
    names = list(_EVENT_COLUMNS)
    conn.execute(
        insert(run_events).from_select(
            names, select(*(source[name] for name in names)).select_from(source.from_clause)
        )
    )
