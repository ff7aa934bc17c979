"""Read-side aggregates for the API, the dashboard and the metrics endpoint.

Every query here is bounded, so pages stay fast with a long history: a time window over the
``ix_runs_queued_at`` index, a count over a partial index (queued, running), a fixed number
of the newest rows by primary key, or one correlated lookup per row of an already bounded
page. None of them loads the runs table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from agentcron.models import RunStatus, Trigger
from agentcron.store.catalog import created_by_clause, read_triggers
from agentcron.store.schema import runs, triggers

_QUEUED = RunStatus.QUEUED.value
_RUNNING = RunStatus.RUNNING.value


@dataclass(frozen=True)
class ActiveCounts:
    queued: int
    ready: int
    running: int
    # Triggers due for over ``OVERDUE_AFTER_S`` that no node has fired yet (counted up to
    # ``OVERDUE_CAP``), and the oldest due time: while nodes are at capacity, fires wait
    # here (held back, not queued), so this is where an overload shows.
    overdue: int = 0
    oldest_due_at: datetime | None = None


#: A trigger this late is overdue (a healthy node fires within milliseconds).
OVERDUE_AFTER_S = 1.0
#: The overdue count stops here: a bounded read of the due index however far behind.
OVERDUE_CAP = 100_000


@dataclass(frozen=True)
class AgentDayUsage:
    agent: str
    day: datetime
    runs: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced: int = 0  # runs with tokens but no cost (no price for their model)


@dataclass(frozen=True)
class LagSample:
    scheduled_for: datetime
    queued_at: datetime
    run_after: datetime
    started_at: datetime | None


def _truncated(conn: Connection, column: Any, unit: str) -> ColumnElement[Any]:
    """``column`` (a UTC time) cut down to the hour or the day, as the backend stores it."""
    if conn.dialect.name == "postgresql":
        return func.date_trunc(unit, column)
    # SQLite keeps times as fixed-width 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text.
    return func.substr(column, 1, 13 if unit == "hour" else 10)


def _as_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    fmt = "%Y-%m-%d %H" if len(text) == 13 else "%Y-%m-%d"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def status_by_hour(conn: Connection, since: datetime, until: datetime
                   ) -> list[tuple[datetime, str, int]]:
    """(hour, status, count) of the runs queued in [since, until): one range scan."""
    hour = _truncated(conn, runs.c.queued_at, "hour").label("hour")
    stmt = (
        select(hour, runs.c.status, func.count())
        .where(runs.c.queued_at >= since, runs.c.queued_at < until)
        .group_by(hour, runs.c.status)
    )
    return [(_as_time(h), str(status), int(n)) for h, status, n in conn.execute(stmt)]


def usage_by_agent_day(conn: Connection, since: datetime, until: datetime
                       ) -> list[AgentDayUsage]:
    """Runs, tokens and cost per agent per UTC day for runs queued in [since, until)."""
    day = _truncated(conn, runs.c.queued_at, "day").label("day")
    unpriced = and_(  # as ``costs`` counts them (store/costs.py)
        func.coalesce(runs.c.input_tokens, 0) + func.coalesce(runs.c.output_tokens, 0) > 0,
        runs.c.cost_usd.is_(None),
    )
    stmt = (
        select(runs.c.agent, day, func.count(),
               func.coalesce(func.sum(runs.c.input_tokens), 0),
               func.coalesce(func.sum(runs.c.output_tokens), 0),
               func.coalesce(func.sum(runs.c.cost_usd), 0.0),
               func.coalesce(func.sum(case((unpriced, 1), else_=0)), 0))
        .where(runs.c.queued_at >= since, runs.c.queued_at < until)
        .group_by(runs.c.agent, day)
        .order_by(runs.c.agent, day)
    )
    return [
        AgentDayUsage(agent, _as_time(d), int(n), int(i), int(o), float(c), int(u))
        for agent, d, n, i, o, c, u in conn.execute(stmt)
    ]


def active_counts(conn: Connection, now: datetime) -> ActiveCounts:
    """Queued runs (all, and those ready to start at ``now``), running runs, overdue
    triggers and the oldest due time; each a bounded read of a partial index."""
    def count(*where: ColumnElement[bool]) -> Any:
        return select(func.count()).select_from(runs).where(*where).scalar_subquery()

    firing = (~triggers.c.paused, triggers.c.broken_at.is_(None),
              triggers.c.next_fire_at.is_not(None))
    overdue = (select(triggers.c.id)
               .where(*firing,
                      triggers.c.next_fire_at < now - timedelta(seconds=OVERDUE_AFTER_S))
               .limit(OVERDUE_CAP).subquery())
    row = conn.execute(select(
        count(runs.c.status == _QUEUED),
        count(runs.c.status == _QUEUED, runs.c.run_after <= now),
        count(runs.c.status == _RUNNING),
        select(func.count()).select_from(overdue).scalar_subquery(),
        select(func.min(triggers.c.next_fire_at)).where(*firing).scalar_subquery(),
    )).one()
    return ActiveCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4])


def lag_samples(conn: Connection, limit: int) -> list[LagSample]:
    """The newest ``limit`` runs fired by a trigger (newest first, by primary key)."""
    stmt = (
        select(runs.c.scheduled_for, runs.c.queued_at, runs.c.run_after, runs.c.started_at)
        .where(runs.c.trigger_id.is_not(None))
        .order_by(runs.c.id.desc())
        .limit(limit)
    )
    return [LagSample(*row) for row in conn.execute(stmt)]


def triggers_page(conn: Connection, agent: str | None, limit: int, offset: int,
                  created_by: str | None = None) -> tuple[list[Trigger], int]:
    """One page of triggers (by agent, then creation) and the total count; a listing, so
    each trigger carries only the start of its payload (``read_triggers(preview=True)``)."""
    stmt = select(triggers).order_by(triggers.c.agent, triggers.c.created_at, triggers.c.id)
    total = select(func.count()).select_from(triggers)
    if agent is not None:
        stmt = stmt.where(triggers.c.agent == agent)
        total = total.where(triggers.c.agent == agent)
    if created_by is not None:
        stmt = stmt.where(created_by_clause(created_by))
        total = total.where(created_by_clause(created_by))
    page = read_triggers(conn, stmt.limit(limit).offset(offset), preview=True)
    return page, int(conn.execute(total).scalar_one())


def last_run_status(conn: Connection, trigger_ids: list[str]) -> dict[str, str]:
    """The status of each trigger's latest run: one correlated lookup per trigger on the
    unique (trigger_id, scheduled_for) index; callers pass a bounded page of ids."""
    if not trigger_ids:
        return {}
    latest = (
        select(runs.c.status)
        .where(runs.c.trigger_id == triggers.c.id)
        .order_by(runs.c.scheduled_for.desc())
        .limit(1)
        .correlate(triggers)
        .scalar_subquery()
    )
    stmt = select(triggers.c.id, latest).where(triggers.c.id.in_(trigger_ids))
    return {tid: status for tid, status in conn.execute(stmt) if status is not None}
