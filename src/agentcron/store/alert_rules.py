"""Alert rules: stored, listed, removed, and the periodic checks of the rules no single
event raises (a run still running past a duration; a dead man's switch).

``check_rules`` is exactly once across nodes: it locks the rules it checks (``FOR UPDATE
SKIP LOCKED``; ``BEGIN IMMEDIATE`` on SQLite), raises what is due and moves each rule's
``checked_until`` watermark in the same transaction, so a second node checking at the same
time skips those rules, and one checking later starts from the watermark.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, RowMapping

from agentcron.errors import NotFoundError
from agentcron.models import AlertEvent, AlertKind, AlertRule, RunStatus, TriggerKind
from agentcron.schedule.durations import format_duration
from agentcron.schedule.spec import SPEC_FIELDS, ScheduleSpec, build_schedule
from agentcron.store.alerts import raise_events
from agentcron.store.schema import alert_rules, runs, triggers
from agentcron.store.secrets import box_of

_PERIODIC = (AlertKind.LONG_RUNNING.value, AlertKind.DEAD_MAN.value)


def _sealed(conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
    """Channels (Apprise URLs carry tokens) and the webhook secret are secrets at rest."""
    box = box_of(conn)
    secret = values.get("webhook_secret")
    return {**values, "channels": [box.seal(c) for c in values["channels"]],
            "webhook_secret": box.seal(secret) if secret else None}


def _opened(conn: Connection, row: RowMapping) -> dict[str, Any]:
    box = box_of(conn)
    where = f"alert rule {row['id']}"
    secret = row["webhook_secret"]
    return {**row, "channels": [box.open(c, where) for c in row["channels"] or []],
            "webhook_secret": box.open(secret, where) if secret else None}


def insert_rule(conn: Connection, values: dict[str, Any], now: datetime) -> None:
    conn.execute(insert(alert_rules).values(created_at=now, **_sealed(conn, values)))


def list_rules(conn: Connection, agent: str | None = None) -> list[AlertRule]:
    stmt = select(*alert_rules.c).order_by(alert_rules.c.agent, alert_rules.c.created_at,
                                           alert_rules.c.id)
    if agent is not None:
        stmt = stmt.where(alert_rules.c.agent == agent)
    return [_rule(_opened(conn, row)) for row in conn.execute(stmt).mappings()]


def get_rule(conn: Connection, rule_id: str) -> AlertRule:
    row = conn.execute(select(*alert_rules.c).where(alert_rules.c.id == rule_id)
                       ).mappings().first()
    if row is None:
        raise NotFoundError("alert rule", rule_id)
    return _rule(_opened(conn, row))


def delete_rule(conn: Connection, rule_id: str) -> None:
    """Remove a rule and its alerts (the outbox rows name their rule)."""
    if conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount == 0:
        raise NotFoundError("alert rule", rule_id)


def replace_declared(conn: Connection, source: str, rows: list[dict[str, Any]],
                     now: datetime) -> None:
    """A sync: the rules of ``source`` (the agents file) become exactly ``rows``. Rules
    unchanged keep their id and watermark."""
    have = {_identity(_opened(conn, r)): r["id"] for r in conn.execute(
        select(*alert_rules.c).where(alert_rules.c.source == source)).mappings()}
    keep = set()
    for row in rows:
        found = have.get(_identity(row))
        if found is not None:
            keep.add(found)
            continue
        conn.execute(insert(alert_rules).values(
            {**_sealed(conn, row), "created_at": now, "source": source}))
    stale = [rule_id for rule_id in have.values() if rule_id not in keep]
    if stale:
        conn.execute(delete(alert_rules).where(alert_rules.c.id.in_(stale)))


def _identity(row: Any) -> tuple[Any, ...]:
    return (row["agent"], row["trigger_id"], row["kind"], row["threshold"],
            row["duration_s"], row["interval_factor"], tuple(row["channels"]),
            row["webhook_secret"], row["group_window_s"])


def _rule(row: Any) -> AlertRule:
    return AlertRule(
        id=row["id"], agent=row["agent"], trigger_id=row["trigger_id"],
        kind=AlertKind(row["kind"]), threshold=row["threshold"], duration_s=row["duration_s"],
        interval_factor=row["interval_factor"], channels=list(row["channels"] or []),
        group_window_s=float(row["group_window_s"]), source=row["source"],
        created_at=row["created_at"], has_secret=bool(row["webhook_secret"]),
    )


# -- the periodic checks -----------------------------------------------------------------------

def check_rules(conn: Connection, now: datetime) -> int:
    """Raise the alerts of the periodic rules that are due at ``now``; returns how many."""
    locked = select(*alert_rules.c).where(alert_rules.c.kind.in_(_PERIODIC)).order_by(
        alert_rules.c.id)
    if conn.dialect.name == "postgresql":
        locked = locked.with_for_update(skip_locked=True)
    rules = conn.execute(locked).mappings().all()
    raised = 0
    for rule in rules:
        if rule["kind"] == AlertKind.LONG_RUNNING.value:
            raised += _check_long_running(conn, rule, now)
        else:
            raised += _check_dead_man(conn, rule, now)
    return raised


def _scope(rule: RowMapping) -> Any:
    return (runs.c.trigger_id == rule["trigger_id"] if rule["trigger_id"] is not None
            else runs.c.agent == rule["agent"])


def _check_long_running(conn: Connection, rule: RowMapping, now: datetime) -> int:
    """Runs that started after the watermark and are still running ``duration_s`` later:
    each is alerted once, as the watermark moves past its start."""
    duration = float(rule["duration_s"] or 0)
    upto = now - timedelta(seconds=duration)
    since = rule["checked_until"]
    stmt = select(runs.c.id, runs.c.trigger_id, runs.c.started_at).where(
        _scope(rule), runs.c.status == RunStatus.RUNNING.value, runs.c.started_at <= upto)
    if since is not None:
        stmt = stmt.where(runs.c.started_at > since)
    late = conn.execute(stmt.order_by(runs.c.started_at)).all()
    conn.execute(update(alert_rules).where(alert_rules.c.id == rule["id"])
                 .values(checked_until=upto))
    events = [AlertEvent(AlertKind.LONG_RUNNING, rule["agent"], r.trigger_id, r.id,
                         f"still running {format_duration(duration)} after it started")
              for r in late]
    return raise_events(conn, events, now) if events else 0


def _check_dead_man(conn: Connection, rule: RowMapping, now: datetime) -> int:
    """No success in the rule's scope for its period since the later of: the last success,
    the last alert (the watermark), the rule's and the trigger's creation. Then one alert,
    and the watermark moves to ``now``: silence alerts once per period. A paused trigger
    is not watched (being paused, it is meant to be silent)."""
    trigger = None
    if rule["trigger_id"] is not None:
        trigger = conn.execute(select(*triggers.c).where(
            triggers.c.id == rule["trigger_id"])).mappings().first()
        if trigger is None or trigger["paused"]:
            return 0
    last_success = conn.execute(
        select(func.max(runs.c.finished_at)).where(
            _scope(rule), runs.c.status == RunStatus.SUCCEEDED.value)
    ).scalar_one_or_none()
    starts = [rule["created_at"], rule["checked_until"], last_success,
              trigger["created_at"] if trigger is not None else None]
    since = max(s for s in starts if s is not None)
    period = _period_s(rule, trigger, since)
    if period is None or now - since < timedelta(seconds=period):
        return 0
    conn.execute(update(alert_rules).where(alert_rules.c.id == rule["id"])
                 .values(checked_until=now))
    what = "the last success" if last_success is not None and last_success == since else \
        "it was watched from"
    reason = (f"no successful run within {format_duration(period)} "
              f"(since {since.isoformat()}, {what})")
    return raise_events(conn, [AlertEvent(AlertKind.DEAD_MAN, rule["agent"],
                                          rule["trigger_id"], None, reason)], now)


def _period_s(rule: RowMapping, trigger: RowMapping | None, since: datetime) -> float | None:
    """The dead man's period: explicit, or ``interval_factor`` times the trigger's interval
    (for a cron trigger, the gap between its next two times after ``since``)."""
    if rule["duration_s"] is not None:
        return float(rule["duration_s"])
    if trigger is None or rule["interval_factor"] is None:
        return None
    factor = float(rule["interval_factor"])
    if trigger["every_s"] is not None:
        return factor * float(trigger["every_s"])
    try:
        spec = ScheduleSpec(**{**{n: trigger[n] for n in SPEC_FIELDS},
                               "kind": TriggerKind(trigger["kind"])})
        schedule = build_schedule(spec)
        first = schedule.next_after(since)
        second = schedule.next_after(first) if first is not None else None
    except Exception:  # a trigger firing cannot plan is quarantined there, not here
        return None
    if first is None or second is None:
        return None
    return factor * (second - first).total_seconds()
