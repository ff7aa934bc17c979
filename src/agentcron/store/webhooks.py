"""Webhook triggers: the secret a delivery is checked against, and turning one verified
delivery into exactly one run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from agentcron.errors import ConflictError, NotFoundError
from agentcron.models import ACTIVE_STATUSES, OverlapPolicy, RunStatus, TriggerKind
from agentcron.rules.ids import new_run_id
from agentcron.rules.overlap import ActiveRuns, NewRun, decide_overlap
from agentcron.store import keys, transitions
from agentcron.store.database import dialect_insert
from agentcron.store.notify import notify
from agentcron.store.schema import runs, triggers, webhook_deliveries
from agentcron.store.secrets import box_of

_ACTIVE = [s.value for s in ACTIVE_STATUSES]
ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class WebhookTarget:
    trigger_id: str
    agent: str
    paused: bool
    secret: str


@dataclass(frozen=True)
class Delivery:
    run_id: str
    status: RunStatus
    scheduled_for: datetime
    reason: str | None = None


def webhook_target(conn: Connection, trigger_id: str) -> WebhookTarget:
    """The webhook trigger ``trigger_id`` with its secret; NotFoundError if there is no
    such trigger or it is not a webhook trigger (the two are not told apart)."""
    row = conn.execute(
        select(triggers.c.id, triggers.c.agent, triggers.c.paused, triggers.c.webhook_secret)
        .where(triggers.c.id == trigger_id, triggers.c.kind == TriggerKind.WEBHOOK.value)
    ).first()
    if row is None or not row.webhook_secret:
        raise NotFoundError("webhook trigger", trigger_id)
    secret = box_of(conn).open(row.webhook_secret, f"webhook trigger {row.id}")
    return WebhookTarget(row.id, row.agent, bool(row.paused), secret)


def set_webhook_secret(conn: Connection, trigger_id: str, secret: str) -> None:
    changed = conn.execute(
        update(triggers)
        .where(triggers.c.id == trigger_id, triggers.c.kind == TriggerKind.WEBHOOK.value)
        .values(webhook_secret=box_of(conn).seal(secret))
    ).rowcount
    if not changed:
        raise NotFoundError("webhook trigger", trigger_id)


def deliver(conn: Connection, trigger_id: str, webhook_id: str, payload: Any,
            now: datetime) -> Delivery:
    """Record the delivery ``webhook_id`` and queue its run, in the caller's transaction.

    Locks: the trigger row (``FOR UPDATE``; on SQLite ``BEGIN IMMEDIATE`` already holds the
    write lock), so deliveries to one trigger are serialised.
    Guarantees:
    - a ``webhook_id`` is accepted once per trigger: the primary key of
      ``webhook_deliveries`` decides, so a replay (even to another node, at the same
      moment) raises ConflictError and queues nothing;
    - one accepted delivery is exactly one run: the delivery row and the run commit
      together. The run's ``scheduled_for`` is the receive time, moved to one microsecond
      after the trigger's previous fire when needed, so two deliveries in the same
      microsecond never collide on the unique (trigger_id, scheduled_for) key;
    - the trigger's overlap policy applies exactly as for scheduled fires, through the same
      rule and side effects (``rules.overlap``; ``replace`` goes through
      ``transitions.replace``): ``skip``/``queue`` may record the run as ``skipped``.
    A paused trigger refuses deliveries (ConflictError) and records nothing, so the sender
    can deliver again after a resume.
    """
    stmt = select(triggers.c.id, triggers.c.agent, triggers.c.kind, triggers.c.paused,
                  triggers.c.overlap, triggers.c.last_fired_at).where(triggers.c.id == trigger_id)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    trigger = conn.execute(stmt).first()
    if trigger is None or trigger.kind != TriggerKind.WEBHOOK.value:
        raise NotFoundError("webhook trigger", trigger_id)
    if trigger.paused:
        raise ConflictError(f"trigger {trigger_id} is paused; resume it to accept deliveries")
    run_id = new_run_id()
    recorded = conn.execute(
        dialect_insert(conn, webhook_deliveries)
        .values(trigger_id=trigger_id, webhook_id=webhook_id, received_at=now, run_id=run_id)
        .on_conflict_do_nothing(index_elements=["trigger_id", "webhook_id"])
        .returning(webhook_deliveries.c.run_id)
    ).first()
    if recorded is None:
        raise ConflictError(f"webhook-id {webhook_id!r} was already delivered to trigger "
                            f"{trigger_id} (replay refused)")
    scheduled = now
    if trigger.last_fired_at is not None and trigger.last_fired_at >= now:
        scheduled = trigger.last_fired_at + ONE_MICROSECOND
    new_run = _overlap(conn, trigger_id, OverlapPolicy(trigger.overlap), now)
    status, reason = new_run.status, new_run.reason
    conn.execute(transitions.insert_one(
        id=run_id, trigger_id=trigger_id, agent=trigger.agent, scheduled_for=scheduled,
        status=status.value, reason=reason, payload=payload, coalesced=1, queued_at=now,
        run_after=now, finished_at=None if status is RunStatus.QUEUED else now,
        concurrency_key=keys.key_of(keys.agent_keys(conn, trigger.agent), payload),
    ))
    # A skipped delivery is counted on the trigger in the same statement (its run row is
    # pruned after the short skipped retention).
    skipped = status is RunStatus.SKIPPED
    conn.execute(update(triggers).where(triggers.c.id == trigger_id).values(
        last_fired_at=scheduled,
        skipped_count=triggers.c.skipped_count + (1 if skipped else 0),
        last_skipped_at=scheduled if skipped else triggers.c.last_skipped_at))
    if status is RunStatus.QUEUED:
        notify(conn, "runs")
    return Delivery(run_id, status, scheduled, reason)


def _overlap(conn: Connection, trigger_id: str, policy: OverlapPolicy, now: datetime
             ) -> NewRun:
    """The overlap rule for one delivery, with its side effects (``replace``) applied."""
    if policy is OverlapPolicy.ALLOW:
        return decide_overlap(policy, ActiveRuns(), 1).new_runs[0]
    active = set(conn.execute(
        select(runs.c.status).distinct()
        .where(runs.c.trigger_id == trigger_id, runs.c.status.in_(_ACTIVE))
    ).scalars())
    decision = decide_overlap(policy, ActiveRuns(queued=RunStatus.QUEUED.value in active,
                                                 running=RunStatus.RUNNING.value in active), 1)
    if decision.cancel_active:
        transitions.replace(conn, [trigger_id], now)
    return decision.new_runs[0]


def prune_deliveries(conn: Connection, received_before: datetime) -> int:
    """Forget deliveries older than the cutoff (an indexed range delete). Safe once the
    cutoff is past the signature tolerance: an older delivery's timestamp is refused
    anyway, so its id cannot be replayed."""
    return conn.execute(
        delete(webhook_deliveries).where(webhook_deliveries.c.received_at < received_before)
    ).rowcount
