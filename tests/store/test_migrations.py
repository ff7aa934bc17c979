"""Migrations create exactly the schema the code declares, and serve/CLI refuse an
unmigrated database."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from agentcron.errors import DatabaseNotMigratedError
from agentcron.store import Store
from agentcron.store.schema import metadata


def test_migrated_schema_matches_the_declared_one(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_unmigrated_database_is_refused_with_the_fix(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(DatabaseNotMigratedError, match="agentcron db upgrade"):
        store.ensure_migrated()
    store.upgrade()
    store.ensure_migrated()
    assert store.upgrade()[0] == store.upgrade()[1]  # idempotent
    store.close()
