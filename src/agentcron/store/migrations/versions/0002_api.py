"""The HTTP API: API tokens and dashboard sessions, webhook triggers (a secret per trigger
and a delivery log for replay protection), and an index for time-window reads of runs.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentcron.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        # sha256 hex of the token; the token itself is never stored.
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime),
        sa.PrimaryKeyConstraint("name", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "api_sessions",
        # sha256 hex of the session cookie's value.
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("token_name", sa.String(100), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name="pk_api_sessions"),
        sa.ForeignKeyConstraint(["token_name"], ["api_tokens.name"],
                                name="fk_api_sessions_token_name", ondelete="CASCADE"),
    )
    op.create_index("ix_api_sessions_token_name", "api_sessions", ["token_name"])
    op.create_index("ix_api_sessions_expires_at", "api_sessions", ["expires_at"])

    op.create_table(
        "webhook_deliveries",
        sa.Column("trigger_id", sa.String(40), nullable=False),
        sa.Column("webhook_id", sa.String(255), nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.PrimaryKeyConstraint("trigger_id", "webhook_id", name="pk_webhook_deliveries"),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"],
                                name="fk_webhook_deliveries_trigger_id", ondelete="CASCADE"),
    )
    op.create_index("ix_webhook_deliveries_received_at", "webhook_deliveries",
                    ["received_at"])

    with op.batch_alter_table("triggers") as batch:
        batch.add_column(sa.Column("webhook_secret", sa.String(100)))
    op.create_index("ix_runs_queued_at", "runs", ["queued_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_queued_at", table_name="runs")
    with op.batch_alter_table("triggers") as batch:
        batch.drop_column("webhook_secret")
    op.drop_table("webhook_deliveries")
    op.drop_table("api_sessions")
    op.drop_table("api_tokens")
