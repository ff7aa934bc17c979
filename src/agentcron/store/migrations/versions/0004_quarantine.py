"""Triggers that cannot be fired are quarantined, and skipped fires are counted on the trigger.

- ``broken_at`` / ``broken_reason``: set when firing a trigger keeps failing; a broken
  trigger is left out of firing (the due index excludes it) and shown as broken until a
  user fixes or resumes it.
- ``skipped_count`` / ``last_skipped_at``: fires skipped by the overlap policy are counted
  here, so a trigger that is always skipped does not add a run row per fire forever.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentcron.store.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_DUE_BEFORE = "NOT paused AND next_fire_at IS NOT NULL"
_DUE_AFTER = "NOT paused AND next_fire_at IS NOT NULL AND broken_at IS NULL"


def _due_index(where: str) -> None:
    op.create_index("ix_triggers_due", "triggers", ["next_fire_at"],
                    postgresql_where=sa.text(where), sqlite_where=sa.text(where))


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("broken_at", UTCDateTime))
        batch.add_column(sa.Column("broken_reason", sa.Text))
        batch.add_column(sa.Column("skipped_count", sa.BigInteger, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("last_skipped_at", UTCDateTime))
    op.drop_index("ix_triggers_due", table_name="triggers")
    _due_index(_DUE_AFTER)


def downgrade() -> None:
    op.drop_index("ix_triggers_due", table_name="triggers")
    _due_index(_DUE_BEFORE)
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("last_skipped_at")
        batch.drop_column("skipped_count")
        batch.drop_column("broken_reason")
        batch.drop_column("broken_at")
