"""Cost reports: tokens and cost of runs, grouped, over a time range. One bounded statement.

A run belongs to the range by the time it *started* (the same clock budgets use); runs that
never started (skipped, cancelled while queued) have no usage and are left out. Days are UTC
calendar days.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, case, func, literal, select
from sqlalchemy.engine import Connection

from agentcron.models import CostRow
from agentcron.store.schema import runs

COST_GROUPS = ("agent", "trigger", "model", "day")
MANUAL = "(manual)"
NO_MODEL = "(none)"


def _key(conn: Connection, by: str) -> Any:
    if by == "agent":
        return runs.c.agent
    if by == "trigger":
        return func.coalesce(runs.c.trigger_id, literal(MANUAL, String()))
    if by == "model":
        return func.coalesce(runs.c.model, literal(NO_MODEL, String()))
    if by == "day":
        if conn.dialect.name == "postgresql":
            return func.to_char(func.timezone("UTC", runs.c.started_at), "YYYY-MM-DD")
        # SQLite stores times as fixed-width UTC text: the date is its first 10 characters.
        return func.substr(runs.c.started_at, 1, 10, type_=String())
    raise ValueError(f"unknown cost grouping {by!r}; one of {', '.join(COST_GROUPS)}")


def cost_report(conn: Connection, by: str, since: datetime, until: datetime | None,
                limit: int) -> list[CostRow]:
    """Runs started in [since, until), grouped by ``by`` (one of ``COST_GROUPS``): at most
    ``limit`` groups, by day in date order, otherwise costliest first."""
    key = _key(conn, by).label("key")
    tokens_known = and_(
        func.coalesce(runs.c.input_tokens, 0) + func.coalesce(runs.c.output_tokens, 0) > 0,
        runs.c.cost_usd.is_(None),
    )
    cost = func.coalesce(func.sum(runs.c.cost_usd), 0.0).label("cost_usd")
    stmt = (
        select(
            key,
            func.count().label("runs"),
            func.coalesce(func.sum(runs.c.input_tokens), 0).label("input_tokens"),
            func.coalesce(func.sum(runs.c.output_tokens), 0).label("output_tokens"),
            cost,
            func.sum(case((tokens_known, 1), else_=0)).label("unpriced"),
        )
        .where(runs.c.started_at.is_not(None), runs.c.started_at >= since)
        .group_by(key)
        .limit(limit)
    )
    if until is not None:
        stmt = stmt.where(runs.c.started_at < until)
    stmt = stmt.order_by(key) if by == "day" else stmt.order_by(cost.desc(), key)
    return [
        CostRow(key=str(row.key), runs=int(row.runs), input_tokens=int(row.input_tokens),
                output_tokens=int(row.output_tokens), cost_usd=float(row.cost_usd),
                unpriced_runs=int(row.unpriced or 0))
        for row in conn.execute(stmt)
    ]
