"""Budgets enforced where runs start: inside the claiming transaction, under the agent's locks.

``enforce`` is called by the claiming code right after it holds all of an agent's
concurrency shards (``store.slots.hold_shards``: an agent with a budget is claimed under all
of them or none) and before it counts free slots, on every path that starts runs. Because it
reads the run rows in a statement that begins after the locks are held, it sees every run
started and every usage recorded by whoever held them before; so two nodes cannot both
start the run the rule in ``agentcron.rules.budgets`` forbids. Budget state is never
stored: it is summed from the run rows each time (one grouped statement, over the
``ix_runs_agent_started`` index).
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime

import structlog
from sqlalchemy import Float, case, func, literal, or_, select, update
from sqlalchemy.engine import Connection

from agentcron.models import AgentSpec, AlertEvent, AlertKind, Budget, OnBudget, RunStatus
from agentcron.rules.budgets import AgentUsage, WindowUsage, day_start, decide, month_start
from agentcron.store import transitions
from agentcron.store.alerts import raise_events
from agentcron.store.schema import runs, triggers
from agentcron.store.types import UTCDateTime

log = structlog.get_logger(__name__)

_RUNNING = RunStatus.RUNNING.value
_counts: Counter[str] = Counter()
_counts_lock = threading.Lock()


def budget_event_counts() -> dict[str, int]:
    """Process-wide counts since start, for metrics: ``runs_skipped`` (runs skipped for a
    budget) and ``pauses`` (times an agent's triggers were paused for one)."""
    with _counts_lock:
        return {"runs_skipped": _counts["runs_skipped"], "pauses": _counts["pauses"]}


def enforce(conn: Connection, locked: dict[str, AgentSpec], now: datetime) -> dict[str, int]:
    """Apply the budgets of the ``locked`` agents (whose shards this transaction holds).

    Returns, for each agent with a budget, how many runs it may start now (0 when it is over
    budget or must wait for runs in flight); agents without a budget are absent, meaning no
    budget limit. Side effects for an agent over budget, in this transaction: its ready
    queued runs become ``skipped`` (reason ``budget_exceeded: ...``); with ``on_budget =
    "pause"`` its unpaused triggers are paused too. Both are logged and counted. Running runs
    are never touched. No statement at all when no locked agent has a budget; otherwise one
    read, plus one update per kind of side effect.
    """
    budgeted = {name: spec.budget for name, spec in locked.items()
                if spec.budget is not None and spec.budget.has_limits}
    if not budgeted:
        return {}
    usage = _usage(conn, budgeted, now)
    room: dict[str, int] = {}
    over: dict[str, str] = {}
    for name, budget in budgeted.items():
        decision = decide(budget, usage[name])
        if decision.over is not None:
            over[name] = decision.over
            room[name] = 0
        elif decision.room is not None:
            room[name] = decision.room
    if over:
        _skip_and_pause(conn, over, budgeted, now)
    return room


def usage(conn: Connection, budgeted: dict[str, Budget], now: datetime
          ) -> dict[str, AgentUsage]:
    """What each of the ``budgeted`` agents has used, counted as ``enforce`` counts it (a
    read for people; no statement when there is nothing to count)."""
    return _usage(conn, budgeted, now) if budgeted else {}


def _usage(conn: Connection, budgeted: dict[str, Budget], now: datetime
           ) -> dict[str, AgentUsage]:
    """One grouped statement: per agent, tokens and cost summed (and the largest single run)
    over the rolling day and over the calendar month, and the runs in flight."""
    day = day_start(now)
    months = {name: month_start(budget, now) for name, budget in budgeted.items()}
    earliest = min(day, *months.values())
    tokens = func.coalesce(runs.c.input_tokens, 0) + func.coalesce(runs.c.output_tokens, 0)
    cost = func.coalesce(runs.c.cost_usd, 0.0)
    month_of_agent = case(
        {name: literal(start, UTCDateTime()) for name, start in months.items()},
        value=runs.c.agent,
    )
    in_day = runs.c.started_at >= literal(day, UTCDateTime())
    in_month = runs.c.started_at >= month_of_agent
    zero = literal(0.0, Float())
    stmt = (
        select(
            runs.c.agent,
            func.sum(case((in_day, tokens), else_=0)).label("day_tokens"),
            func.max(case((in_day, tokens), else_=0)).label("day_max_tokens"),
            func.sum(case((in_day, cost), else_=zero)).label("day_usd"),
            func.max(case((in_day, cost), else_=zero)).label("day_max_usd"),
            func.sum(case((in_month, tokens), else_=0)).label("month_tokens"),
            func.max(case((in_month, tokens), else_=0)).label("month_max_tokens"),
            func.sum(case((in_month, cost), else_=zero)).label("month_usd"),
            func.max(case((in_month, cost), else_=zero)).label("month_max_usd"),
            func.count().filter(runs.c.status == _RUNNING).label("in_flight"),
        )
        .where(
            runs.c.agent.in_(list(budgeted)),
            or_(runs.c.started_at >= literal(earliest, UTCDateTime()),
                runs.c.status == _RUNNING),
        )
        .group_by(runs.c.agent)
    )
    found = {row.agent: row for row in conn.execute(stmt)}
    result: dict[str, AgentUsage] = {}
    for name in budgeted:
        row = found.get(name)
        if row is None:
            result[name] = AgentUsage(WindowUsage(), WindowUsage())
            continue
        result[name] = AgentUsage(
            day=WindowUsage(int(row.day_tokens or 0), int(row.day_max_tokens or 0),
                            float(row.day_usd or 0), float(row.day_max_usd or 0)),
            month=WindowUsage(int(row.month_tokens or 0), int(row.month_max_tokens or 0),
                              float(row.month_usd or 0), float(row.month_max_usd or 0)),
            in_flight=int(row.in_flight or 0),
        )
    return result


def _skip_and_pause(conn: Connection, over: dict[str, str], budgeted: dict[str, Budget],
                    now: datetime) -> None:
    pausing = [name for name in over if budgeted[name].on_budget is OnBudget.PAUSE]
    reasons = {
        name: reason + ("; the agent's triggers are paused" if name in pausing else "")
        for name, reason in over.items()
    }
    skipped = conn.execute(transitions.skip_over_budget(reasons, now)).scalars().all()
    paused: list[tuple[str, str]] = []
    if pausing:
        paused = [
            (row.agent, row.id)
            for row in conn.execute(
                update(triggers)
                .where(triggers.c.agent.in_(pausing), ~triggers.c.paused)
                # Shown as why the trigger is paused, until a person resumes it.
                .values(paused=True, updated_at=now, paused_reason=case(
                    {name: f"budget: {over[name]}"[:1000] for name in pausing},
                    value=triggers.c.agent))
                .returning(triggers.c.agent, triggers.c.id)
            )
        ]
    per_agent = Counter(skipped)
    with _counts_lock:
        _counts["runs_skipped"] += len(skipped)
        _counts["pauses"] += len({agent for agent, _ in paused})
    # The alerts commit with the skips (one event per agent over budget and acting).
    raise_events(conn, [
        AlertEvent(AlertKind.BUDGET, name, None, None,
                   f"{reason}; {per_agent[name]} run(s) skipped"
                   + ("; its triggers were paused" if name in pausing else ""))
        for name, reason in over.items()
        if per_agent[name] or any(agent == name for agent, _ in paused)
    ], now)
    for name, reason in over.items():
        trigger_ids = [tid for agent, tid in paused if agent == name]
        if per_agent[name] or trigger_ids:
            log.warning("budget_exceeded", agent=name, reason=reason,
                        runs_skipped=per_agent[name], triggers_paused=trigger_ids,
                        action="pause" if name in pausing else "skip")
