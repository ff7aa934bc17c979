"""Remote workers: a worker is a row of ``nodes`` with kind ``worker``, and a worker token
names the agents it may run.

- ``nodes.kind``: ``node`` (an ``agentcron serve`` process) or ``worker`` (a process that
  pulls runs of remote agents over HTTP). A run's ``node_id`` names either, so the fenced
  writes, the heartbeat and the sweeper treat both alike.
- ``nodes.agents``: the agents a worker last asked for; ``nodes.token_name``: the token it
  speaks with (another token cannot take over its id).
- ``api_tokens.agents``: the agents a ``worker`` token may claim, beat, complete and release.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs: nothing to copy, on either backend.
    op.add_column("nodes", sa.Column("kind", sa.String(16), nullable=False,
                                     server_default="node"))
    op.add_column("nodes", sa.Column("agents", sa.JSON))
    op.add_column("nodes", sa.Column("token_name", sa.String(100)))
    op.add_column("api_tokens", sa.Column("agents", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("agents")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("token_name")
        batch.drop_column("agents")
        batch.drop_column("kind")
