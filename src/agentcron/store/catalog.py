"""Agents and triggers: the things users declare.

Every read of whole trigger rows goes through ``read_triggers``, which never fails
because of one row: a row whose values do not read back (a time SQLite cannot parse,
payload text that is not JSON, an unknown kind or policy: nothing a front door writes, but
a database can hold anything) is shown as broken, with what could not be read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.engine import Connection, Dialect, RowMapping
from sqlalchemy.exc import DBAPIError

from agentcron.errors import ConflictError, NotFoundError
from agentcron.models import AgentSpec, CatchupMode, OverlapPolicy, Trigger, TriggerKind
from agentcron.rules.keys import keys_from_json
from agentcron.rules.scheduling import APPROVED, PENDING, agent_made
from agentcron.store import transitions
from agentcron.store.database import dialect_insert
from agentcron.store.guardrails import guard, lock_policies
from agentcron.store.keys import rekey_queued
from agentcron.store.lenient import UNKNOWN_TIME, problem, raw_columns, read_leniently
from agentcron.store.notify import notify
from agentcron.store.previews import payload_from_head, payload_head
from agentcron.store.rows import agent_from_row, agent_to_row, trigger_from_row
from agentcron.store.schema import agents, runs, triggers
from agentcron.store.secrets import box_of

_ENUMS: tuple[tuple[str, type[StrEnum], StrEnum], ...] = (
    ("kind", TriggerKind, TriggerKind.CRON),
    ("overlap", OverlapPolicy, OverlapPolicy.SKIP),
    ("catchup_mode", CatchupMode, CatchupMode.COALESCE),
)


def upsert_agent(conn: Connection, agent: AgentSpec, now: datetime) -> None:
    """Create the agent or replace its settings; its triggers and runs are kept. When its
    concurrency key policy changes, its queued runs are given keys under the new one
    (``keys.rekey_queued``) in this transaction."""
    row = agent_to_row(agent, box_of(conn))
    before = conn.execute(select(agents.c["keys"]).where(agents.c.name == agent.name)).first()
    if before is not None and keys_from_json(before[0]) != agent.keys:
        rekey_queued(conn, agent.name, agent.keys)
    stmt = dialect_insert(conn, agents).values(**row, created_at=now, updated_at=now)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={**{k: v for k, v in row.items() if k != "name"}, "updated_at": now},
        )
    )


def get_agent(conn: Connection, name: str) -> AgentSpec:
    row = conn.execute(select(agents).where(agents.c.name == name)).mappings().first()
    if row is None:
        raise NotFoundError("agent", name)
    return agent_from_row(row, box_of(conn))


def list_agents(conn: Connection) -> list[AgentSpec]:
    box = box_of(conn)
    return [
        agent_from_row(row, box)
        for row in conn.execute(select(agents).order_by(agents.c.name)).mappings()
    ]


def delete_agent(conn: Connection, name: str, now: datetime) -> int:
    """Delete the agent and (by cascade) its triggers; its queued runs are cancelled and
    its run history is kept. Returns the number of queued runs cancelled."""
    get_agent(conn, name)
    cancelled = conn.execute(transitions.cancel_queued_of_agent(name, now)).rowcount
    conn.execute(delete(triggers).where(triggers.c.agent == name))
    conn.execute(delete(agents).where(agents.c.name == name))
    return cancelled


def insert_trigger(conn: Connection, values: dict[str, Any], now: datetime,
                   check_count: Callable[[int], None] | None = None) -> None:
    """Insert a validated trigger; wakes tickers on PostgreSQL.

    ``check_count`` is called with the agent's number of triggers before the insert (and
    may raise to refuse it). The count is taken in this transaction while holding the
    agent's row lock (``FOR UPDATE`` on PostgreSQL; SQLite writes one at a time), so two
    concurrent creates for one agent cannot both pass a limit.

    An agent-made trigger (created_by ``run:``/``mcp:``) passes the agent's guardrails
    (``guardrails.guard``, under the same row lock): ``GuardrailError`` when refused, and
    its expiry and approval are set."""
    if agent_made(values.get("created_by")):
        values = guard(conn, values, now, lock_policies(conn, [values["agent"]]))
    if check_count is not None:
        locked = conn.execute(select(agents.c.name).where(agents.c.name == values["agent"])
                              .with_for_update()).first()
        if locked is None:
            raise NotFoundError("agent", values["agent"])
        check_count(conn.execute(select(func.count()).select_from(triggers)
                                 .where(triggers.c.agent == values["agent"])).scalar_one())
    get_agent(conn, values["agent"])
    if values.get("name") is not None:
        clash = conn.execute(
            select(triggers.c.id).where(
                triggers.c.agent == values["agent"], triggers.c.name == values["name"]
            )
        ).first()
        if clash is not None:
            raise ConflictError(
                f"agent {values['agent']!r} already has a trigger named {values['name']!r}"
            )
    conn.execute(triggers.insert().values(**_sealed(conn, values), created_at=now,
                                          updated_at=now))
    notify(conn, "triggers")


def update_trigger(conn: Connection, trigger_id: str, values: dict[str, Any],
                   now: datetime) -> None:
    """Write ``values``. Any change but a pause also lifts a quarantine (``broken_at``):
    a resume or an update is the user's fix, and the next firing judges it again (and
    quarantines it again if it still cannot be planned). A pause keeps the reason shown.
    An unpause also clears the circuit breaker's reason and count (``store/breaker.py``)."""
    if values.get("paused") is not True:
        values = {**values, "broken_at": None, "broken_reason": None}
    if values.get("paused") is False:  # a resume: the breaker starts counting afresh
        values = {**values, "paused_reason": None, "consecutive_failures": 0}
    result = conn.execute(
        update(triggers).where(triggers.c.id == trigger_id)
        .values(**_sealed(conn, values), updated_at=now)
    )
    if result.rowcount == 0:
        raise NotFoundError("trigger", trigger_id)
    notify(conn, "triggers")


def approve_trigger(conn: Connection, trigger_id: str, next_fire_at: datetime | None,
                    now: datetime) -> bool:
    """Release a trigger awaiting approval: ``approval`` becomes ``approved``, it is
    unpaused (its "awaiting approval" reason cleared) with ``next_fire_at``. Fenced on
    ``approval = 'pending'``: returns False (and changes nothing) when it was not pending,
    so two approvals at once release it once. Wakes the tickers."""
    result = conn.execute(
        update(triggers).where(triggers.c.id == trigger_id, triggers.c.approval == PENDING)
        .values(approval=APPROVED, paused=False, paused_reason=None, next_fire_at=next_fire_at,
                consecutive_failures=0, updated_at=now))
    if result.rowcount:
        notify(conn, "triggers")
    return bool(result.rowcount)


def _sealed(conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
    """Trigger values with the webhook secret sealed (when the store has a key)."""
    if values.get("webhook_secret"):
        return {**values, "webhook_secret": box_of(conn).seal(values["webhook_secret"])}
    return values


def get_trigger(conn: Connection, trigger_id: str, *, lock: bool = False) -> Trigger:
    stmt = select(triggers).where(triggers.c.id == trigger_id)
    if lock:
        stmt = stmt.with_for_update()
    found = read_triggers(conn, stmt)
    if not found:
        raise NotFoundError("trigger", trigger_id)
    return found[0]


def find_trigger(conn: Connection, agent: str, name: str) -> Trigger | None:
    found = read_triggers(
        conn, select(triggers).where(triggers.c.agent == agent, triggers.c.name == name))
    return found[0] if found else None


def trigger_refs(conn: Connection, ref: str, limit: int) -> list[tuple[str, str, str | None]]:
    """(id, agent, name) of up to ``limit`` triggers whose id or name is ``ref``, the one
    with that id first (one statement; names are unique per agent only)."""
    stmt = (select(triggers.c.id, triggers.c.agent, triggers.c.name)
            .where(or_(triggers.c.id == ref, triggers.c.name == ref))
            .order_by((triggers.c.id == ref).desc(), triggers.c.agent, triggers.c.id)
            .limit(limit))
    return [(str(row.id), str(row.agent), row.name) for row in conn.execute(stmt)]


def agent_footprint(conn: Connection, name: str) -> tuple[int, int, int]:
    """(triggers, queued runs, runs in all) of agent ``name``: what removing it touches."""
    get_agent(conn, name)
    trigger_count = conn.execute(select(func.count()).select_from(triggers)
                                 .where(triggers.c.agent == name)).scalar_one()
    by_status = {str(status): int(n) for status, n in conn.execute(
        select(runs.c.status, func.count()).where(runs.c.agent == name)
        .group_by(runs.c.status))}
    return (int(trigger_count), int(by_status.get("queued", 0)),
            int(sum(by_status.values())))


def list_triggers(conn: Connection, agent: str | None = None, *, preview: bool = False,
                  created_by: str | None = None) -> list[Trigger]:
    """By agent, then creation. ``preview``: see ``read_triggers``; ``created_by``: see
    ``created_by_clause``."""
    stmt = select(triggers).order_by(triggers.c.agent, triggers.c.created_at, triggers.c.id)
    if agent is not None:
        stmt = stmt.where(triggers.c.agent == agent)
    if created_by is not None:
        stmt = stmt.where(created_by_clause(created_by))
    return read_triggers(conn, stmt, preview=preview)


def created_by_clause(created_by: str) -> Any:
    """Triggers made by ``created_by``: exactly, or by its prefix when it ends with ``:``
    (``run:`` every run's, ``mcp:`` every MCP token's)."""
    if created_by.endswith(":"):
        escaped = (created_by.replace("\\", "\\\\").replace("%", "\\%")
                   .replace("_", "\\_"))
        return triggers.c.created_by.like(escaped + "%", escape="\\")
    return triggers.c.created_by == created_by


def read_triggers(conn: Connection, stmt: Select[Any], *, preview: bool = False
                  ) -> list[Trigger]:
    """The triggers ``stmt`` (a ``select(triggers)``) selects. One statement; only if a row
    does not read back, a second one that reads the stored values as they are, and each
    unreadable row comes back as a trigger with ``broken_reason`` saying what could not be
    read (``broken_at`` stays as stored: firing quarantines it when it is due).
    ``preview``: read only the start of each payload (``store.previews``); a payload longer
    than that comes back as a ``Cut``."""
    if preview:
        headed = [payload_head(c) if c is triggers.c.payload else c for c in triggers.c]
        stmt = stmt.with_only_columns(*headed, maintain_column_froms=True)
    result = conn.execute(stmt).mappings()
    try:
        return [trigger_from_row(_with_payload_read(row) if preview else row)
                for row in result]
    except DBAPIError:
        raise  # the database's own error: not a bad row
    except Exception:
        result.close()
    raw = stmt.with_only_columns(*_raw_columns(preview), maintain_column_froms=True)
    return [_lenient_trigger(row, conn.dialect, preview)
            for row in conn.execute(raw).mappings()]


def _with_payload_read(row: RowMapping) -> RowMapping:
    return cast(RowMapping, {**row, "payload": payload_from_head(row["payload"])})


def _raw_columns(preview: bool) -> list[Any]:
    return raw_columns(triggers, {"payload": payload_head(triggers.c.payload)} if preview
                       else None)


def _lenient_trigger(raw: RowMapping, dialect: Dialect, preview: bool) -> Trigger:
    values, problems = read_leniently(raw, triggers, dialect, required_times=("created_at",),
                                      as_read=("payload",) if preview else ())
    if preview:
        values["payload"] = payload_from_head(values["payload"])
    for name, enum, default in _ENUMS:
        try:
            enum(values[name])
        except ValueError as exc:
            problems.append(problem(name, exc))
            values[name] = default.value
    try:
        trigger = trigger_from_row(cast(RowMapping, values))
    except Exception as exc:  # a value no check above foresaw: still show the row
        problems.append(problem("row", exc))
        trigger = Trigger(
            id=str(values["id"]), agent=str(values["agent"]), kind=TriggerKind.CRON,
            name=None, cron=None, timezone="UTC", every_s=None, at=None, anchor_at=None,
            start_at=None, end_at=None, jitter_s=0.0, payload=None,
            overlap=OverlapPolicy.SKIP, catchup_window_s=0.0,
            catchup_mode=CatchupMode.COALESCE, paused=bool(values.get("paused")),
            next_fire_at=None, last_fired_at=None, missed_count=0, last_missed_at=None,
            created_at=UNKNOWN_TIME, broken_at=None, broken_reason=None)
    if not problems or trigger.broken_reason is not None:
        return trigger  # healthy, or already quarantined with its reason
    reason = "cannot read this row: " + "; ".join(problems)
    return replace(trigger, broken_reason=reason[:500])


def delete_trigger(conn: Connection, trigger_id: str) -> None:
    """Delete a trigger. Its run history stays; its queued runs still run."""
    if conn.execute(delete(triggers).where(triggers.c.id == trigger_id)).rowcount == 0:
        raise NotFoundError("trigger", trigger_id)
    notify(conn, "triggers")
