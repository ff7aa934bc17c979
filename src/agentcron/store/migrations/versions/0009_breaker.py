"""A circuit breaker on triggers: paused after N consecutive failed runs, with the reason.

- ``triggers.pause_after_failures`` / ``agents.pause_after_failures``: the breaker's
  threshold, on the trigger or as its agent's default (NULL: no breaker).
- ``triggers.consecutive_failures``: final failures of the trigger's runs since its last
  success (or resume), counted in the transaction that writes each outcome.
- ``triggers.paused_reason``: why a trigger was paused by agentcron rather than a user
  (the breaker); cleared on resume.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("pause_after_failures", sa.Integer))
        batch.add_column(sa.Column("consecutive_failures", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("paused_reason", sa.Text))
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("pause_after_failures", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("pause_after_failures")
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("paused_reason")
        batch.drop_column("consecutive_failures")
        batch.drop_column("pause_after_failures")
