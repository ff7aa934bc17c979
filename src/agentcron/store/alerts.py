"""The alert outbox: alerts are written here in the transaction of the event that raised
them, and delivered from here by exactly one node at a time.

Raising (``raise_events``, ``raise_alert``): in the caller's transaction, the rules that
match each event (same agent; the event's trigger or every trigger; the event's kind, or
``consecutive_failures`` for a failure when the streak reaches its threshold) each get an
alert row. Repeats are grouped: while an alert of the same rule and trigger is still
``open`` (not yet picked up for delivery), a repeat adds one to its ``count`` instead of
making a row (one partial unique index, ``uq_alerts_open_group``, decides, so two
transactions raising at once make one row). A repeat within ``group_window_s`` of the
last alert of the group that went out waits for the end of that window, collecting what
comes meanwhile, so a trigger failing every minute sends one alert per window with a count.

Delivering (``claim_deliveries``, ``settle``): a node leases due rows (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite) -> ``sending`` with ``lease + 1``
and ``lease_until``; it sends outside any transaction, then settles fenced on ``(id,
lease)``: ``delivered``, or ``retrying`` at the time it gives, or ``failed``. A row whose
node died while sending is due again once its lease has run out, so another node sends it;
the alert's id is the Standard Webhooks ``webhook-id``, the receiver's key to drop the
rare second copy of a delivery whose node died after sending and before settling.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.engine import Connection, RowMapping

from agentcron.models import (
    Alert,
    AlertDelivery,
    AlertEvent,
    AlertKind,
    AlertStatus,
    RunStatus,
)
from agentcron.rules.ids import new_run_id
from agentcron.store.database import dialect_insert
from agentcron.store.schema import alert_rules, alerts, runs
from agentcron.store.secrets import box_of

_OPEN = AlertStatus.OPEN.value
_SENDING = AlertStatus.SENDING.value
_RETRYING = AlertStatus.RETRYING.value
_FINAL_FAILURE = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value)


def dashboard_path(trigger_id: str | None, run_id: str | None) -> str:
    """Where on the dashboard an alert points: its run, else its trigger's runs."""
    if run_id:
        return f"/runs/{run_id}"
    if trigger_id:
        return f"/runs?trigger={trigger_id}"
    return "/alerts"


def missed_reason(count: int, first: datetime | None, last: datetime | None) -> str:
    """The reason of a missed-fire alert."""
    if first is None or last is None:
        span = ""
    elif first == last:
        span = f" ({first.isoformat()})"
    else:
        span = f" ({first.isoformat()} .. {last.isoformat()})"
    return f"{count} scheduled time(s) older than the catch-up window were not run{span}"


def raise_alert(conn: Connection, kind: AlertKind, agent: str, trigger_id: str | None,
                run_id: str | None, reason: str, now: datetime) -> int:
    """Raise one event (see ``raise_events``) in the caller's transaction."""
    return raise_events(conn, [AlertEvent(kind, agent, trigger_id, run_id, reason)], now)


def raise_events(conn: Connection, events: Sequence[AlertEvent], now: datetime) -> int:
    """Write the alerts ``events`` call for into the outbox, in the caller's transaction
    (so they commit or roll back with the event). One read of the rules for all events;
    nothing more when no rule matches. Returns how many alerts were made or grouped."""
    if not events:
        return 0
    kinds = {e.kind.value for e in events}
    if AlertKind.FAILED.value in kinds:
        kinds.add(AlertKind.CONSECUTIVE_FAILURES.value)
    rows = conn.execute(
        select(alert_rules.c.id, alert_rules.c.agent, alert_rules.c.trigger_id,
               alert_rules.c.kind, alert_rules.c.threshold, alert_rules.c.group_window_s)
        .where(alert_rules.c.agent.in_(sorted({e.agent for e in events})),
               alert_rules.c.kind.in_(sorted(kinds)))
        .order_by(alert_rules.c.id)
    ).mappings().all()
    raised = 0
    for event in events:
        for rule in rows:
            if rule["agent"] != event.agent or rule["trigger_id"] not in (None,
                                                                          event.trigger_id):
                continue
            if rule["kind"] == event.kind.value:
                reason = event.reason
            elif (rule["kind"] == AlertKind.CONSECUTIVE_FAILURES.value
                  and event.kind is AlertKind.FAILED):
                streak = _streak_reached(conn, rule, event)
                if streak is None:
                    continue
                reason = f"{streak} consecutive failed runs; the last: {event.reason}"
            else:
                continue
            _put(conn, rule, AlertEvent(AlertKind(rule["kind"]), event.agent,
                                        event.trigger_id, event.run_id, reason), now)
            raised += 1
    return raised


def _streak_reached(conn: Connection, rule: RowMapping, event: AlertEvent) -> int | None:
    """The threshold, when the last finished runs of the rule's scope (its trigger, else
    the event's trigger, else the agent's runs) are exactly ``threshold`` failures in a row:
    the streak alerts once, when it reaches the threshold, not at every failure after."""
    n = int(rule["threshold"] or 1)
    trigger_id = rule["trigger_id"] or event.trigger_id
    scope = (runs.c.trigger_id == trigger_id if trigger_id is not None
             else runs.c.agent == event.agent)
    last = conn.execute(
        select(runs.c.status)
        .where(scope, runs.c.status.in_(_FINAL_FAILURE), runs.c.finished_at.is_not(None))
        .order_by(runs.c.finished_at.desc(), runs.c.id.desc())
        .limit(n + 1)
    ).scalars().all()
    failed = RunStatus.FAILED.value
    if len(last) >= n and all(s == failed for s in last[:n]) and (
            len(last) == n or last[n] != failed):
        return n
    return None


def _put(conn: Connection, rule: RowMapping, event: AlertEvent, now: datetime) -> None:
    """One alert into the outbox, or one more repeat counted into the group's open one."""
    group_key = f"{rule['id']}|{event.trigger_id or '-'}"
    window = timedelta(seconds=float(rule["group_window_s"]))
    last_sent = conn.execute(
        select(func.max(alerts.c.first_at))
        .where(alerts.c.group_key == group_key, alerts.c.status != _OPEN)
    ).scalar_one_or_none()
    due = now if last_sent is None or last_sent + window <= now else last_sent + window
    link = dashboard_path(event.trigger_id, event.run_id)
    stmt = dialect_insert(conn, alerts).values(
        id=new_run_id(), rule_id=rule["id"], group_key=group_key, kind=event.kind.value,
        agent=event.agent, trigger_id=event.trigger_id, run_id=event.run_id,
        reason=event.reason, link=link, count=1, first_at=now, last_at=now,
        status=_OPEN, attempts=0, next_attempt_at=due, lease=0,
    )
    excluded = stmt.excluded
    conn.execute(stmt.on_conflict_do_update(
        # A literal predicate: PostgreSQL infers the partial index only from one.
        index_elements=["group_key"], index_where=text("status = 'open'"),
        set_={"count": alerts.c.count + 1, "last_at": excluded.last_at,
              "run_id": excluded.run_id, "reason": excluded.reason, "link": excluded.link},
    ))


# -- delivery --------------------------------------------------------------------------------

def _due(now: datetime) -> Any:
    return or_(
        and_(alerts.c.status.in_([_OPEN, _RETRYING]), alerts.c.next_attempt_at <= now),
        and_(alerts.c.status == _SENDING, alerts.c.lease_until <= now),
    )


def claim_deliveries(conn: Connection, node_id: str, limit: int, lease_s: float,
                     now: datetime) -> list[AlertDelivery]:
    """Lease up to ``limit`` due alerts (open or retrying and due, or sending with a lease
    run out) to ``node_id`` for ``lease_s``: two nodes never hold the same one. Three
    statements at most."""
    picked = select(alerts.c.id).where(_due(now)).order_by(alerts.c.next_attempt_at,
                                                           alerts.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        picked = picked.with_for_update(skip_locked=True)
    ids = list(conn.execute(picked).scalars())
    if not ids:
        return []
    claimed = conn.execute(
        update(alerts)
        .where(alerts.c.id.in_(ids), _due(now))
        .values(status=_SENDING, lease=alerts.c.lease + 1, node_id=node_id,
                lease_until=now + timedelta(seconds=lease_s),
                attempts=alerts.c.attempts + 1)
        .returning(*alerts.c)
    ).mappings().all()
    rules = {
        r["id"]: r for r in conn.execute(
            select(alert_rules.c.id, alert_rules.c.channels, alert_rules.c.webhook_secret)
            .where(alert_rules.c.id.in_(sorted({c["rule_id"] for c in claimed})))
        ).mappings()
    }
    box = box_of(conn)

    def delivery(row: RowMapping) -> AlertDelivery:
        rule = rules[row["rule_id"]]
        where = f"alert rule {row['rule_id']}"
        secret = rule["webhook_secret"]
        return AlertDelivery(
            alert=_alert(row), lease=int(row["lease"]),
            channels=[box.open(c, where) for c in rule["channels"] or []],
            webhook_secret=box.open(secret, where) if secret else None)

    return [delivery(row)
            for row in sorted(claimed, key=lambda r: (r["next_attempt_at"], r["id"]))]


def settle(conn: Connection, alert_id: str, lease: int, now: datetime, *,
           error: str | None = None, retry_in_s: float | None = None) -> bool:
    """The outcome of one delivery, fenced on ``(id, lease)``: with no ``error``,
    ``delivered``; with one, ``retrying`` ``retry_in_s`` after ``now``, or ``failed`` when
    there is no next attempt (None). False when the lease was no longer this node's
    (nothing changed)."""
    if error is None:
        values: dict[str, Any] = {"status": AlertStatus.DELIVERED.value, "delivered_at": now,
                                  "last_error": None}
    elif retry_in_s is not None:
        values = {"status": _RETRYING, "last_error": error[:2000],
                  "next_attempt_at": now + timedelta(seconds=retry_in_s)}
    else:
        values = {"status": AlertStatus.FAILED.value, "last_error": error[:2000]}
    result = conn.execute(
        update(alerts)
        .where(alerts.c.id == alert_id, alerts.c.lease == lease,
               alerts.c.status == _SENDING)
        .values(lease_until=None, **values)
    )
    return result.rowcount == 1


def prune(conn: Connection, before: datetime) -> int:
    """Delete delivered and failed alerts whose last repeat was before ``before``."""
    return conn.execute(
        delete(alerts).where(alerts.c.status.in_([AlertStatus.DELIVERED.value,
                                                  AlertStatus.FAILED.value]),
                             alerts.c.last_at < before)
    ).rowcount


# -- reads -----------------------------------------------------------------------------------

def list_alerts(conn: Connection, *, limit: int = 50, status: str | None = None,
                agent: str | None = None) -> list[Alert]:
    """The newest alerts first."""
    stmt = select(*alerts.c).order_by(alerts.c.first_at.desc(), alerts.c.id.desc())
    if status is not None:
        stmt = stmt.where(alerts.c.status == status)
    if agent is not None:
        stmt = stmt.where(alerts.c.agent == agent)
    return [_alert(row) for row in conn.execute(stmt.limit(limit)).mappings()]


def _alert(row: RowMapping) -> Alert:
    return Alert(
        id=row["id"], rule_id=row["rule_id"], kind=row["kind"], agent=row["agent"],
        trigger_id=row["trigger_id"], run_id=row["run_id"], reason=row["reason"],
        link=row["link"], count=int(row["count"]), first_at=row["first_at"],
        last_at=row["last_at"], status=AlertStatus(row["status"]),
        attempts=int(row["attempts"]), next_attempt_at=row["next_attempt_at"],
        node_id=row["node_id"], delivered_at=row["delivered_at"],
        last_error=row["last_error"],
    )
