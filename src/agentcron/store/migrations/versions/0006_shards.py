"""Concurrency shards: a running run records the shard of its agent's limit it holds.

An agent's ``max_concurrency`` is split over a fixed number of shards (``store/slots.py``);
a claim locks only the shards it fills, so nodes claiming for one agent no longer take turns
on the agent's row. The running runs of an agent are counted per shard, from the partial
index on ``(agent, shard)``. Existing runs are in shard 0.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_RUNNING = "status = 'running'"


def _agent_running_index(*columns: str) -> None:
    op.create_index("ix_runs_agent_running", "runs", list(columns),
                    postgresql_where=sa.text(_RUNNING), sqlite_where=sa.text(_RUNNING))


def upgrade() -> None:
    # A plain ADD COLUMN: a batch (copy and move) of runs would cascade on SQLite.
    op.add_column("runs", sa.Column("shard", sa.SmallInteger, nullable=False,
                                    server_default="0"))
    op.drop_index("ix_runs_agent_running", table_name="runs")
    _agent_running_index("agent", "shard")


def downgrade() -> None:
    op.drop_index("ix_runs_agent_running", table_name="runs")
    _agent_running_index("agent")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("shard")
