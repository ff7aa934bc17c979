"""A run keeps a command's stderr next to its output, and a retry of a succeeded run says
which run it retries.

- ``stderr``: what a command agent wrote to stderr in its last attempt (capped like the
  output), kept on success and on failure; ``output`` is its stdout in both cases.
- ``retry_of``: set on the new run a user's retry of a *succeeded* run creates, so the
  original keeps its output; the id of that original.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("stderr", sa.Text))
        batch.add_column(sa.Column("retry_of", sa.String(36)))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("retry_of")
        batch.drop_column("stderr")
