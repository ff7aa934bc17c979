"""Routing: agents carry tags, and a node records which agents and tags it runs.

- ``agents.tags``: a JSON list of the agent's tags; only nodes offering one of them (or
  naming the agent) claim its runs (``rules.routing``). Null: no tags.
- ``nodes.agents``, ``nodes.tags``: what the node was started with (``serve --agents``,
  ``--tags``), shown by the node listings. Null: none.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("tags", sa.JSON))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("agents", sa.JSON))
        batch.add_column(sa.Column("tags", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("tags")
        batch.drop_column("agents")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("tags")
