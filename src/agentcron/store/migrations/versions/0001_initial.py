"""Initial schema: agents, triggers, runs, run_events, nodes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentcron.store.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_QUEUED = sa.text("status = 'queued'")
_RUNNING = sa.text("status = 'running'")
_ACTIVE = sa.text("status IN ('queued', 'running')")
_DUE = sa.text("NOT paused AND next_fire_at IS NOT NULL")


def _partial_index(name: str, table: str, columns: list[str], where: sa.TextClause) -> None:
    op.create_index(name, table, columns, postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("max_concurrency", sa.Integer, nullable=False, server_default="1"),
        sa.Column("timeout_s", sa.Float, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
        sa.Column("zombie_timeout_s", sa.Float),
        sa.Column("retry_backoff_s", sa.Float, nullable=False, server_default="2"),
        sa.Column("description", sa.Text),
        sa.Column("source", sa.String(16), nullable=False, server_default="cli"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_agents"),
    )
    op.create_table(
        "triggers",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("agent", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("cron", sa.String(200)),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("every_s", sa.Float),
        sa.Column("at", UTCDateTime),
        sa.Column("anchor_at", UTCDateTime),
        sa.Column("start_at", UTCDateTime),
        sa.Column("end_at", UTCDateTime),
        sa.Column("jitter_s", sa.Float, nullable=False, server_default="0"),
        sa.Column("payload", sa.JSON),
        sa.Column("overlap", sa.String(16), nullable=False, server_default="skip"),
        sa.Column("catchup_window_s", sa.Float, nullable=False, server_default="600"),
        sa.Column("catchup_mode", sa.String(16), nullable=False, server_default="coalesce"),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("next_fire_at", UTCDateTime),
        sa.Column("last_fired_at", UTCDateTime),
        sa.Column("missed_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_missed_at", UTCDateTime),
        sa.Column("source", sa.String(16), nullable=False, server_default="cli"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_triggers"),
        sa.ForeignKeyConstraint(
            ["agent"], ["agents.name"], name="fk_triggers_agent", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("agent", "name", name="uq_triggers_agent_name"),
    )
    _partial_index("ix_triggers_due", "triggers", ["next_fire_at"], _DUE)
    op.create_index("ix_triggers_agent", "triggers", ["agent"])

    op.create_table(
        "runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("trigger_id", sa.String(40)),
        sa.Column("agent", sa.String(100), nullable=False),
        sa.Column("scheduled_for", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease", sa.Integer, nullable=False, server_default="0"),
        sa.Column("node_id", sa.String(100)),
        sa.Column("payload", sa.JSON),
        sa.Column("coalesced", sa.Integer, nullable=False, server_default="1"),
        sa.Column("queued_at", UTCDateTime, nullable=False),
        sa.Column("run_after", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("deadline_at", UTCDateTime),
        sa.Column("heartbeat_at", UTCDateTime),
        sa.Column("progress", sa.Text),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("cost_usd", sa.Float),
        sa.Column("model", sa.String(100)),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("trigger_id", "scheduled_for", name="uq_runs_trigger_scheduled"),
    )
    _partial_index("ix_runs_ready", "runs", ["agent", "run_after"], _QUEUED)
    _partial_index("ix_runs_running", "runs", ["node_id"], _RUNNING)
    _partial_index("ix_runs_agent_running", "runs", ["agent"], _RUNNING)
    _partial_index("ix_runs_trigger_active", "runs", ["trigger_id"], _ACTIVE)
    op.create_index("ix_runs_finished_at", "runs", ["finished_at"])
    op.create_index("ix_runs_agent_id", "runs", ["agent", "id"])

    op.create_table(
        "run_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("node_id", sa.String(100)),
        sa.Column("message", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_run_events"),
    )
    op.create_index("ix_run_events_run_id", "run_events", ["run_id"])

    op.create_table(
        "nodes",
        sa.Column("id", sa.String(100), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("heartbeat_at", UTCDateTime, nullable=False),
        sa.Column("zombie_timeout_s", sa.Float, nullable=False),
        sa.Column("draining", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
    )


def downgrade() -> None:
    for table in ("nodes", "run_events", "runs", "triggers", "agents"):
        op.drop_table(table)
