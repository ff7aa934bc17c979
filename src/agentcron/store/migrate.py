"""Schema versions: apply them, and refuse to run against a database that lacks them."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from agentcron.errors import DatabaseNotMigratedError

_MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Apply every pending migration in one transaction. Returns (from, to) revisions.
    Safe to run from several nodes at once on PostgreSQL: the advisory lock serialises them."""
    before = current_revision(engine)
    config = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7412001)")
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    return before, head_revision()


def ensure_current(engine: Engine) -> None:
    """Raise DatabaseNotMigratedError unless the schema is at this version's head."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        state = "has no agentcron schema" if current is None else f"is at revision {current}"
        raise DatabaseNotMigratedError(
            f"the database {state}, this agentcron needs revision {head}: "
            "run `agentcron db upgrade` first"
        )
