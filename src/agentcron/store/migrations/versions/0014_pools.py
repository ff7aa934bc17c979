"""Rate limits that hold across nodes (issue 16, item 3).

- ``pools``: shared limits several agents draw from (requests and tokens per minute).
  Claims for a pool's agents lock its row (``FOR UPDATE``): a pool serialises its claims.
- ``pool_starts``: the ledger of starts in the sliding window: one row per (run, attempt, limit) it
  drew from (a pool's name, or ``agent:NAME`` for an agent's own ``rate``), with the tokens
  reserved at the start and those the run reported. Read by (pool, started_at), pruned by
  the pruner once out of every window.
- ``agents.pool`` and ``agents.rate`` (``"60/m"``, ``rules.rates.parse_rate``).
- ``runs.waiting_reason``: why a queued run is not starting (set by a claim that held it
  back, cleared when it is claimed).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from agentcron.store.types import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("requests_per_minute", sa.BigInteger),
        sa.Column("tokens_per_minute", sa.BigInteger),
        sa.Column("source", sa.String(16), nullable=False, server_default="cli"),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_pools"),
    )
    op.create_table(
        "pool_starts",
        sa.Column("run_id", sa.String(36), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("pool", sa.String(120), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("reserved_tokens", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("used_tokens", sa.BigInteger),
        sa.PrimaryKeyConstraint("run_id", "attempt", "pool", name="pk_pool_starts"),
    )
    op.create_index("ix_pool_starts_pool", "pool_starts", ["pool", "started_at"])
    op.create_index("ix_pool_starts_started_at", "pool_starts", ["started_at"])
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("pool", sa.String(100)))
        batch.add_column(sa.Column("rate", sa.String(32)))
    op.add_column("runs", sa.Column("waiting_reason", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("waiting_reason")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("rate")
        batch.drop_column("pool")
    op.drop_index("ix_pool_starts_started_at", table_name="pool_starts")
    op.drop_index("ix_pool_starts_pool", table_name="pool_starts")
    op.drop_table("pool_starts")
    op.drop_table("pools")
