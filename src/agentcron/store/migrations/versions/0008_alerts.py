"""Alerts: rules that tell a person when runs fail or stop happening, and the outbox their
alerts are written to in the transaction of the event, delivered by one node at a time.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentcron.store.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'open'")
_DUE = sa.text("status IN ('open', 'retrying', 'sending')")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("agent", sa.String(100), nullable=False),
        sa.Column("trigger_id", sa.String(40)),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("threshold", sa.Integer),
        sa.Column("duration_s", sa.Float),
        sa.Column("interval_factor", sa.Float),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("webhook_secret", sa.String(100).with_variant(sa.Text, "postgresql")),
        sa.Column("group_window_s", sa.Float, nullable=False, server_default="3600"),
        sa.Column("source", sa.String(16), nullable=False, server_default="cli"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("checked_until", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
        sa.ForeignKeyConstraint(["agent"], ["agents.name"], name="fk_alert_rules_agent",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["trigger_id"], ["triggers.id"],
                                name="fk_alert_rules_trigger_id", ondelete="CASCADE"),
    )
    op.create_index("ix_alert_rules_agent", "alert_rules", ["agent"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("rule_id", sa.String(40), nullable=False),
        sa.Column("group_key", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("agent", sa.String(100), nullable=False),
        sa.Column("trigger_id", sa.String(40)),
        sa.Column("run_id", sa.String(36)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("link", sa.Text),
        sa.Column("count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("first_at", UTCDateTime, nullable=False),
        sa.Column("last_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        sa.Column("lease", sa.Integer, nullable=False, server_default="0"),
        sa.Column("node_id", sa.String(100)),
        sa.Column("lease_until", UTCDateTime),
        sa.Column("delivered_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"], name="fk_alerts_rule_id",
                                ondelete="CASCADE"),
    )
    op.create_index("uq_alerts_open_group", "alerts", ["group_key"], unique=True,
                    postgresql_where=_OPEN, sqlite_where=_OPEN)
    op.create_index("ix_alerts_due", "alerts", ["next_attempt_at"],
                    postgresql_where=_DUE, sqlite_where=_DUE)
    op.create_index("ix_alerts_rule_id", "alerts", ["rule_id"])
    op.create_index("ix_alerts_group_key", "alerts", ["group_key", "first_at"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("alert_rules")
