"""Poison rows: trigger values no front door accepts, written straight into the database
(raw SQL through the store's engine), as a bad migration, a manual fix or another tool
could leave them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from agentcron.store import Store


def poison_trigger(store: Store, trigger_id: str, **values: Any) -> None:
    """``UPDATE triggers SET <column> = <value>, ...`` for one trigger, bypassing every
    check and type conversion (column names are the test's own, never user input)."""
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    with store.engine.begin() as conn:
        updated = conn.execute(text(f"UPDATE triggers SET {assignments} WHERE id = :id"),
                               {**values, "id": trigger_id}).rowcount
    assert updated == 1, f"no trigger {trigger_id}"


def poison_run(store: Store, run_id: str, **values: Any) -> None:
    """``UPDATE runs SET <column> = <value>, ...`` for one run, as ``poison_trigger`` does."""
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    with store.engine.begin() as conn:
        updated = conn.execute(text(f"UPDATE runs SET {assignments} WHERE id = :id"),
                               {**values, "id": run_id}).rowcount
    assert updated == 1, f"no run {run_id}"
