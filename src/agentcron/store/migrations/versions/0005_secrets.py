"""Room for an encrypted webhook secret.

With ``AGENTCRON_SECRET_KEY`` set, a webhook secret is stored as ``agentcron-fernet:`` and a
Fernet token (about 170 characters for a ``whsec_`` secret of 32 bytes): too long for the
``VARCHAR(100)`` it had. Agent configs are JSON and need no change.

Only PostgreSQL enforces a VARCHAR's length. On SQLite the column is left as it is: changing
its type would mean recreating the triggers table, and dropping the old one with foreign keys
on would cascade into webhook deliveries and runs.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _postgres() -> bool:
    return bool(op.get_context().dialect.name == "postgresql")


def upgrade() -> None:
    if _postgres():
        op.alter_column("triggers", "webhook_secret", type_=sa.Text,
                        existing_type=sa.String(100), existing_nullable=True)


def downgrade() -> None:
    if _postgres():
        op.alter_column("triggers", "webhook_secret", type_=sa.String(100),
                        existing_type=sa.Text, existing_nullable=True)
