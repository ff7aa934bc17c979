"""A schedule token's own cap on live agent-made triggers (issue 13, guardrails per token).

- ``api_tokens.max_live``: at most this many live triggers made through this token (those
  whose ``created_by`` is ``mcp:<name>``), across every agent; NULL: no cap of its own
  (each agent's ``max_live`` still holds).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("max_live", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("max_live")
