"""record_events: the one writer of run_events, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from agentcron.models import RunEvent
from agentcron.store import Store
from agentcron.store.events import record_events
from tests.conftest import T0


def test_one_and_many_events_are_recorded_as_given(store: Store) -> None:
    many = [RunEvent("r1", T0 + timedelta(seconds=i), "lost", i, None if i else "n1",
                     None if i == 2 else f"why {i}") for i in range(3)]
    with store.engine.begin() as conn:
        record_events(conn, [])
        record_events(conn, [RunEvent("r2", T0, "cancelled", 1, "n2", "by a user")])
    with store.count_statements() as statements, store.engine.begin() as conn:
        record_events(conn, many)
    # One INSERT however many events (SQLite's BEGIN IMMEDIATE is counted too).
    assert [s.split()[0] for s in statements if not s.startswith("BEGIN")] == ["INSERT"]
    assert store.run_history("r1") == many
    assert store.run_history("r2") == [RunEvent("r2", T0, "cancelled", 1, "n2", "by a user")]
