"""Routing: agents carry tags, and a node records the tags it offers.

- ``agents.tags``: a JSON list of the agent's tags; only nodes offering one of them (or
  naming the agent) claim its runs (``rules.routing``). Null: no tags.
- ``nodes.tags``: the tags a node was started with (``serve --tags``), shown by the node
  listings; the agents it runs by name (``serve --agents``) go in ``nodes.agents``
  (migration 0010). Null: none.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: nothing to copy, on either backend.
    op.add_column("agents", sa.Column("tags", sa.JSON))
    op.add_column("nodes", sa.Column("tags", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("tags")
