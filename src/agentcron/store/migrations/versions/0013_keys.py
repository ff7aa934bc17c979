"""Concurrency keys (issue 16): a key per run, and an agent's key policy.

- ``agents.keys``: the agent's concurrency key policy as one JSON object
  (``rules.keys.keys_to_json``: template, max_per_key, weights). Null: runs are not keyed.
- ``runs.concurrency_key``: the key rendered when the run was made; null for runs of
  agents without a key (every existing run).
- ``ix_runs_key_ready`` (agent, key, run_after; queued) and ``ix_runs_key_running``
  (agent, key; running): a claim finds each key's oldest ready runs and counts a key's
  running runs by index probes. Both partial on a non-null key, so plain agents' runs do
  not grow them. ``ix_runs_key_id`` (key, id): ``runs list --key``, newest first.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_READY = "status = 'queued' AND concurrency_key IS NOT NULL"
_RUNNING = "status = 'running' AND concurrency_key IS NOT NULL"
_KEYED = "concurrency_key IS NOT NULL"


def upgrade() -> None:
    op.add_column("agents", sa.Column("keys", sa.JSON))
    op.add_column("runs", sa.Column("concurrency_key", sa.String(200)))
    op.create_index("ix_runs_key_ready", "runs", ["agent", "concurrency_key", "run_after"],
                    postgresql_where=sa.text(_READY), sqlite_where=sa.text(_READY))
    op.create_index("ix_runs_key_running", "runs", ["agent", "concurrency_key"],
                    postgresql_where=sa.text(_RUNNING), sqlite_where=sa.text(_RUNNING))
    op.create_index("ix_runs_key_id", "runs", ["concurrency_key", "id"],
                    postgresql_where=sa.text(_KEYED), sqlite_where=sa.text(_KEYED))


def downgrade() -> None:
    op.drop_index("ix_runs_key_id", table_name="runs")
    op.drop_index("ix_runs_key_running", table_name="runs")
    op.drop_index("ix_runs_key_ready", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("concurrency_key")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("keys")
