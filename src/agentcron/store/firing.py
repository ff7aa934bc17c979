"""``fire_due``: due triggers -> run rows, in one transaction and a constant number of
statements per batch.

The statements, whatever the number of due triggers:

1. select and lock due triggers (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the
   ``BEGIN IMMEDIATE`` write lock already excludes every other writer), with whether each
   trigger has a queued and a running run, for the overlap policy;
2. (only if a trigger has overlap ``replace`` and active runs) cancel the runs being
   replaced, record their run events, and (if one was running) notify its worker
   (``transitions.replace``, shared with webhook deliveries);
3. insert the new runs, ``ON CONFLICT (trigger_id, scheduled_for) DO NOTHING``;
4. advance every trigger's ``next_fire_at`` and its missed-fire counters;
5. (PostgreSQL, only if a run was queued) ``pg_notify`` so idle nodes claim at once.

Deciding what to insert is pure Python (``store.fire_plan.decide``) over the schedule maths
and the overlap rule (``rules.overlap``).

Quarantine (README guarantee 6): a trigger row that cannot be planned (a cron string or
time zone that does not parse, a time that does not read back, an unknown policy: rows no
front door accepts, written some other way) must not stop the batch, or every later
batch, since it would be selected again. Its planning error is caught, the trigger is
marked broken (``broken_at``, ``broken_reason``) in the same transaction (one more
statement, only when there is one) and the rest of the batch fires. A broken trigger is
left out of firing until a user resumes or updates it (``catalog``). A batch whose rows
cannot even be read is read again one row at a time to find the bad ones: a slow path
taken only then.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import DBAPIError

from agentcron.models import (
    AgentKind,
    AlertEvent,
    AlertKind,
    ClaimedRun,
    OverlapPolicy,
    RunStatus,
)
from agentcron.rules.routing import Routing
from agentcron.store import keys, pools, transitions
from agentcron.store.alerts import missed_reason, raise_events
from agentcron.store.bulk import bulk_source
from agentcron.store.fire_plan import (
    MAX_RUNS_PER_BATCH,
    BrokenTrigger,
    MissedFires,
    broken_reason,
    decide,
)
from agentcron.store.notify import notify
from agentcron.store.schema import runs, triggers
from agentcron.store.slots import free_slots, hold_shards, read_specs, routed
from agentcron.store.types import UTCDateTime

_RUN_COLUMNS: dict[str, Any] = {
    "id": String(36),
    "trigger_id": String(40),
    "agent": String(100),
    "scheduled_for": UTCDateTime(),
    "status": String(16),
    "reason": Text(),
    # JSON text straight from the trigger row: never decoded and re-encoded per run.
    "payload": Text(),
    "coalesced": Integer(),
    "queued_at": UTCDateTime(),
    "run_after": UTCDateTime(),
    "finished_at": UTCDateTime(),
    "node_id": String(100),
    "lease": Integer(),
    "attempt": Integer(),
    "started_at": UTCDateTime(),
    "heartbeat_at": UTCDateTime(),
    "deadline_at": UTCDateTime(),
    "shard": Integer(),
    "concurrency_key": String(200),
}
_BROKEN_COLUMNS: dict[str, Any] = {"id": String(40), "reason": Text()}
_ADVANCE_COLUMNS: dict[str, Any] = {
    "id": String(40),
    "next_fire_at": UTCDateTime(),
    "missed": BigInteger(),
    "last_missed_at": UTCDateTime(),
    "last_fired_at": UTCDateTime(),
    "skipped": BigInteger(),
    "last_skipped_at": UTCDateTime(),
}


@dataclass
class FireResult:
    """What one ``fire_due`` batch did. ``full`` means the batch hit its limit and more
    triggers may be due right now."""

    now: datetime
    triggers: int = 0
    queued: int = 0
    skipped: int = 0
    cancelled: int = 0
    duplicates: int = 0
    replaced: int = 0
    full: bool = False
    missed: list[MissedFires] = field(default_factory=list)
    fire_lags: list[float] = field(default_factory=list)
    queued_by_kind: dict[str, int] = field(default_factory=dict)
    claimed: list[ClaimedRun] = field(default_factory=list)
    # Triggers selected to fire ahead whose runs could not be claimed, and triggers held
    # back: left to fire at their time, or when a node has a free slot.
    left_for_later: int = 0
    # Triggers whose runs were due but the firing node had no free slot (``claim_for``):
    # left due rather than queued. A node that holds some back is at capacity.
    held_back: int = 0
    # Triggers quarantined by this batch (their planning raised): marked broken, not fired.
    broken: list[BrokenTrigger] = field(default_factory=list)
    # Seconds after ``now`` at which queued runs of this batch become ready (jitter): the
    # dispatcher claims them then instead of at its next poll.
    ready_in_s: list[float] = field(default_factory=list)


def _has_run(status: RunStatus) -> Any:
    """1 if the trigger has a run in ``status``, else 0: the overlap policy only asks
    whether one exists, so one index probe (``ix_runs_trigger_active``), never a count of
    a queue that may be long. Correlated to the trigger row explicitly: as a derived table
    the probe would join ``triggers`` again and ask whether *any* trigger has such a run."""
    probe = (
        select(runs.c.id)
        .where(runs.c.trigger_id == triggers.c.id, runs.c.status == status.value)
        .correlate(triggers)
        .exists()
    )
    return case((probe, 1), else_=0)


def _due_query(now: datetime, horizon: datetime, limit: int, *, ids_only: bool = False,
               sqlite: bool = False) -> Any:
    """Due triggers, and (``horizon`` > ``now``) ``allow``-overlap triggers due by then:
    their overlap check cannot change in between, so they may be fired ahead.
    ``ids_only``: only their ids and agents (plain strings, always readable). ``sqlite``:
    also whether the payload text is JSON (``payload_ok``; PostgreSQL's jsonb always is),
    since the payload is copied into runs undecoded and a run whose payload does not
    decode could never be claimed."""
    queued = _has_run(RunStatus.QUEUED)
    running = _has_run(RunStatus.RUNNING)
    due = triggers.c.next_fire_at <= now
    if horizon > now:
        due = and_(triggers.c.next_fire_at <= horizon,
                   or_(due, triggers.c.overlap == OverlapPolicy.ALLOW.value))
    columns: tuple[Any, ...] = (triggers.c.id, triggers.c.agent)
    if not ids_only:
        columns += (
            triggers.c.kind, triggers.c.cron,
            triggers.c.timezone, triggers.c.every_s, triggers.c.at, triggers.c.anchor_at,
            triggers.c.start_at, triggers.c.end_at, triggers.c.jitter_s,
            cast(triggers.c.payload, Text).label("payload"),
            triggers.c.overlap, triggers.c.catchup_window_s, triggers.c.catchup_mode,
            triggers.c.next_fire_at, queued.label("n_queued"), running.label("n_running"),
            # The agent's key policy: a keyed agent's runs get their key as they are made.
            keys.policy_column(triggers.c.agent),
        )
        if sqlite:
            columns += (func.json_valid(triggers.c.payload).label("payload_ok"),)
    return (
        select(*columns)
        .where(~triggers.c.paused, triggers.c.broken_at.is_(None), due)
        .order_by(triggers.c.next_fire_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=triggers)
    )


def fire_due(conn: Connection, now: datetime, limit: int,
             claim_for: tuple[str, int] | None = None, lookahead_s: float = 0.0,
             routing: Routing | None = None) -> FireResult:
    """Turn every due trigger (up to ``limit``) into run rows and advance it.

    Locks: the due trigger rows, until the caller's transaction commits. Two nodes running
    this at once take disjoint triggers; and even if a trigger row were processed twice,
    the unique constraint on ``(trigger_id, scheduled_for)`` makes the second insert a no-op.
    Guarantees: a trigger's runs and its new ``next_fire_at`` commit together or not at all,
    so a crash anywhere leaves the trigger due again for the same scheduled times.

    ``claim_for=(node_id, slots)``: the firing node also claims up to ``slots`` of the new
    runs in the same transaction (inserting them as ``running``, lease 1), saving a claim
    round trip and a row version per run. It goes through the same agent locks and slot
    count as ``claim_runs`` (guarantee 3), and only for agents with no ready backlog, so
    runs already waiting keep their turn, and only for the agents ``routing`` lets the
    node run (as ``claim_runs``). Two more statements when used. Once its slots are taken
    (or with none), the triggers of the remaining ready runs of agents it runs are held
    back: left due, for a node with a free slot to fire, oldest first
    (``FireResult.held_back``). So an overloaded node keeps every run on the two-write path
    instead of queuing a backlog it cannot work off. It also plans no more runs than
    ``max(slots, limit)``; the rows past them stay due, untouched.

    ``lookahead_s`` (only with ``claim_for``): also fire, ahead of time, triggers with
    overlap ``allow`` due within that many seconds, and claim their runs now for a start
    at their time plus jitter (``ClaimedRun.start_at``; ``started_at`` is that time). Their
    overlap check cannot change in between, and a run that cannot be claimed at once (no
    slot, a backlog, an agent with a budget) is not inserted: its trigger stays as it was
    and fires at its time like any other. So an aligned
    burst is written before its second comes, and its runs start on time.
    """
    horizon = now + timedelta(seconds=lookahead_s) if claim_for and lookahead_s > 0 else now
    rows, unreadable = _read_due(conn, now, horizon, limit)
    selected = len(rows) + len(unreadable)
    result = FireResult(now=now, triggers=selected, full=selected >= limit)
    if not selected:
        return result
    # A node claiming what it fires plans only about as many runs as it can start: past
    # that they would be held back anyway, and a trigger far behind (catch-up all) would
    # cost a run planned per missed time, every batch, for nothing.
    decision = decide(rows, now, max(claim_for[1], limit) if claim_for else MAX_RUNS_PER_BATCH)
    decision.broken = unreadable + decision.broken
    if decision.broken:
        _mark_broken(conn, decision.broken, now)
        result.broken = decision.broken

    result.replaced = transitions.replace(conn, decision.replace_trigger_ids, now)
    _give_keys(rows, decision.new_runs)

    claimed, full_node = (_claim_fresh(conn, decision.new_runs, claim_for, now, horizon,
                                       decision.ahead_trigger_ids, routing)
                          if claim_for else ([], []))
    result.held_back = decision.hold_back(full_node, claimed)
    result.missed = decision.missed
    result.left_for_later = decision.drop_ahead_unless_claimed() + result.held_back
    # A batch that advanced none of its triggers (each left for later, or past the run
    # budget) is not "full": firing again at once would only select the same ones.
    result.full = result.full and bool(decision.advances or decision.broken)
    if decision.new_runs:
        inserted = _insert_runs(conn, decision.new_runs)
        result.duplicates = len(decision.new_runs) - len(inserted)
        by_id = {run["id"]: run for run in decision.new_runs}
        kind_of = {row["id"]: str(row["kind"]) for row in rows}
        for run_id in inserted:
            run = by_id[run_id]
            if run["status"] in (RunStatus.QUEUED.value, RunStatus.RUNNING.value):
                result.queued += 1
                result.fire_lags.append(max(0.0, (now - run["scheduled_for"]).total_seconds()))
                if run["status"] == RunStatus.QUEUED.value and run["run_after"] > now:
                    result.ready_in_s.append((run["run_after"] - now).total_seconds())
                kind = kind_of[run["trigger_id"]]
                result.queued_by_kind[kind] = result.queued_by_kind.get(kind, 0) + 1
            elif run["status"] == RunStatus.SKIPPED.value:
                result.skipped += 1
            else:
                result.cancelled += 1

        kept = set(inserted)
        result.claimed = [run for run in claimed if run.run_id in kept]
    if decision.advances:
        _advance_triggers(conn, decision.advances, now)
        # Missed times raise their alerts with the advance that counts them; a fire left
        # for later (not advanced) has counted nothing yet.
        advanced = {a["id"] for a in decision.advances}
        raise_events(conn, [
            AlertEvent(AlertKind.MISSED, m.agent, m.trigger_id, None,
                       missed_reason(m.count, m.first, m.last))
            for m in decision.missed if m.trigger_id in advanced
        ], now)
    if result.queued > len(result.claimed):
        notify(conn, "runs")
    return result


def _give_keys(rows: list[RowMapping], new_runs: list[dict[str, Any]]) -> None:
    """Each new run's concurrency key (None for agents without a key; the payload is
    decoded only for keyed agents)."""
    policy_of = {row["id"]: row["key_policy"] for row in rows if row["key_policy"]}
    for run in new_runs:
        policy = policy_of.get(run["trigger_id"])
        run["concurrency_key"] = (None if policy is None
                                  else keys.key_of_text(policy, run["payload"]))


def _read_due(conn: Connection, now: datetime, horizon: datetime, limit: int
              ) -> tuple[list[RowMapping], list[BrokenTrigger]]:
    """The locked due rows, and the due triggers whose row cannot be read (each found by
    reading the batch again one row at a time, only when the batch read fails)."""
    sqlite = conn.dialect.name == "sqlite"
    result = conn.execute(_due_query(now, horizon, limit, sqlite=sqlite)).mappings()
    try:
        return list(result), []
    except DBAPIError:
        raise  # the database's own error (an outage, a lock timeout): not a bad row
    except Exception:
        result.close()
    rows: list[RowMapping] = []
    unreadable: list[BrokenTrigger] = []
    for trigger_id, agent in conn.execute(_due_query(now, horizon, limit, ids_only=True)).all():
        try:
            row = conn.execute(_due_query(now, horizon, 1, sqlite=sqlite)
                               .where(triggers.c.id == trigger_id)).mappings().first()
        except DBAPIError:
            raise
        except Exception as exc:
            unreadable.append(BrokenTrigger(trigger_id, agent,
                                            broken_reason(exc) + " (the row cannot be read)"))
            continue
        if row is not None:
            rows.append(row)
    return rows, unreadable


def _mark_broken(conn: Connection, broken: list[BrokenTrigger], now: datetime) -> None:
    """Quarantine: one statement for every broken trigger of the batch."""
    source = bulk_source(conn, _BROKEN_COLUMNS,
                         [{"id": b.trigger_id, "reason": b.reason} for b in broken])
    conn.execute(
        update(triggers)
        .where(triggers.c.id == source["id"])
        .values(broken_at=now, broken_reason=source["reason"])
    )


def _claim_fresh(conn: Connection, new_runs: list[dict[str, Any]],
                 claim_for: tuple[str, int], now: datetime, horizon: datetime,
                 ahead: set[str], routing: Routing | None
                 ) -> tuple[list[ClaimedRun], list[dict[str, Any]]]:
    """Mark up to ``slots`` of the new ready runs as claimed by the firing node (in place,
    before they are inserted) and return them, with the ready runs it had no slot left
    for (``Decision.hold_back``). A run of a trigger fired ahead (``ahead``)
    counts as ready if its ``run_after`` is by ``horizon``; it starts then: that is its
    ``started_at`` and ``start_at``. Runs of agents with a budget are never claimed ahead:
    a budget is judged when a run starts (a monthly one can reset in between)."""
    node_id, slots = claim_for

    def is_ahead(run: dict[str, Any]) -> bool:
        return run["trigger_id"] in ahead

    ready = [run for run in new_runs
             if run["status"] == RunStatus.QUEUED.value
             and run["run_after"] <= (horizon if is_ahead(run) else now)]
    if not ready:
        return [], []
    # The agents this node runs (never a remote one, and only those its routing lets it):
    # only their runs can wait for one of its slots.
    specs = routed({name: spec for name, spec in
                    read_specs(conn, sorted({r["agent"] for r in ready})).items()
                    if spec.kind is not AgentKind.REMOTE},  # workers claim those, never a node
                   routing)
    local = set(specs)

    def waits_for_slot(run: dict[str, Any]) -> bool:
        return run["agent"] in local and not is_ahead(run)

    if slots <= 0:
        return [], [run for run in ready if waits_for_slot(run)]
    # Rate-limited agents (a pool or a rate) are never claimed here: their runs queue and
    # ``claim_runs`` judges every start of theirs against the limit's window.
    specs = {name: spec for name, spec in specs.items() if not pools.limited(spec)}
    due_agents = {r["agent"] for r in ready if not is_ahead(r)}
    budgeted = {name for name, spec in specs.items() if spec.budget is not None}
    specs = {name: spec for name, spec in specs.items()
             if name not in budgeted or name in due_agents}
    held = free_slots(conn, specs, hold_shards(conn, specs, slots), now, with_backlog=True)
    claimed: list[ClaimedRun] = []
    for index, run in enumerate(ready):
        if len(claimed) >= slots:
            # Full: what was not even looked at waits for a slot, here or on another node.
            return claimed, [r for r in ready[index:] if waits_for_slot(r)]
        state = held.get(run["agent"])
        if (state is None or state.backlog or not state.total
                or (is_ahead(run) and run["agent"] in budgeted)
                or run["concurrency_key"] is not None):
            # The agent's limit (or the shard of it this claim holds), its backlog, its
            # budget or its concurrency key (only claim_runs takes a key's lock and turn)
            # decides, not this node: it queues, and claim_runs finds it.
            continue
        spec = state.spec
        start = max(now, run["run_after"])
        deadline = start + timedelta(seconds=spec.timeout_s)
        run.update(status=RunStatus.RUNNING.value, node_id=node_id, lease=1, attempt=1,
                   started_at=start, heartbeat_at=now, deadline_at=deadline,
                   shard=state.take(1)[0])
        claimed.append(ClaimedRun(
            run_id=run["id"], lease=1, attempt=1, agent=spec, trigger_id=run["trigger_id"],
            scheduled_for=run["scheduled_for"], started_at=start, deadline_at=deadline,
            payload=_decoded(run["payload"]),
            start_at=start if start > now else None,
        ))
    return claimed, []


def _decoded(payload: str | None) -> Any:
    """A payload copied from its trigger as JSON text, decoded (``null``, what most
    triggers hold, without a parse)."""
    return None if payload is None or payload == "null" else json.loads(payload)


def _insert_runs(conn: Connection, new_runs: list[dict[str, Any]]) -> list[str]:
    source = bulk_source(conn, _RUN_COLUMNS, new_runs)
    stmt = transitions.insert_fired(conn, source, list(_RUN_COLUMNS))
    return [row[0] for row in conn.execute(stmt)]


def _advance_triggers(conn: Connection, advances: list[dict[str, Any]], now: datetime) -> None:
    source = bulk_source(conn, _ADVANCE_COLUMNS, advances)
    conn.execute(
        update(triggers)
        .where(triggers.c.id == source["id"])
        .values(
            next_fire_at=source["next_fire_at"],
            missed_count=triggers.c.missed_count + source["missed"],
            last_missed_at=func.coalesce(source["last_missed_at"], triggers.c.last_missed_at),
            last_fired_at=func.coalesce(source["last_fired_at"], triggers.c.last_fired_at),
            # Skipped fires are counted in the same statement (their run rows are pruned
            # after a short window; the count is what lasts).
            skipped_count=triggers.c.skipped_count + source["skipped"],
            last_skipped_at=func.coalesce(source["last_skipped_at"],
                                          triggers.c.last_skipped_at),
        )
    )


def next_due_at(conn: Connection) -> datetime | None:
    """The earliest ``next_fire_at`` of an unpaused, unbroken trigger (the ticker sleeps until
    then)."""
    value = conn.execute(
        select(func.min(triggers.c.next_fire_at)).where(~triggers.c.paused,
                                                        triggers.c.broken_at.is_(None))
    ).scalar_one_or_none()
    return value if isinstance(value, datetime) else None

