"""Provenance and guardrails for triggers that agents make (issue 13).

- ``triggers.created_by``: who made the trigger (``cli``, ``file``, ``python``,
  ``api:<token name>``, ``mcp:<token name>``, ``run:<run id>``); ``source`` stays the
  kind. Existing rows take their ``source``.
- ``triggers.expires_at``: an agent-made trigger never fires after this (its ``end_at`` is
  brought forward to it, so firing needs no new predicate).
- ``triggers.approval``: ``pending`` (created paused until a person approves it) or
  ``approved``; null when no approval was required.
- ``agents.scheduling``: the agent's scheduling policy as one JSON object
  (``rules.scheduling.policy_to_json``), read with the agent row the guardrails lock, like
  ``budget``; a new setting needs no migration. Null: the defaults.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentcron.store.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("created_by", sa.String(200), nullable=False,
                                   server_default="cli"))
        batch.add_column(sa.Column("expires_at", UTCDateTime))
        batch.add_column(sa.Column("approval", sa.String(16)))
    op.execute("UPDATE triggers SET created_by = source")
    op.add_column("agents", sa.Column("scheduling", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("scheduling")
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("approval")
        batch.drop_column("expires_at")
        batch.drop_column("created_by")
