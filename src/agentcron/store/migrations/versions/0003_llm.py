"""LLM agents and costs: agent budgets, the model price table, and an index to sum an agent's
runs by start time (budgets, cost reports).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentcron.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("budget", sa.JSON))
    op.create_index("ix_runs_agent_started", "runs", ["agent", "started_at"])
    op.create_table(
        "model_prices",
        sa.Column("model", sa.String(100), nullable=False),
        sa.Column("input_per_mtok", sa.Float, nullable=False),
        sa.Column("output_per_mtok", sa.Float, nullable=False),
        sa.Column("source", sa.String(16), nullable=False, server_default="cli"),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("model", name="pk_model_prices"),
    )


def downgrade() -> None:
    op.drop_table("model_prices")
    op.drop_index("ix_runs_agent_started", table_name="runs")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("budget")
