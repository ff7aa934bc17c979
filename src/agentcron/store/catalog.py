"""Agents and triggers: the things users declare."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, true, update
from sqlalchemy.engine import Connection

from agentcron.errors import ConflictError, NotFoundError
from agentcron.models import AgentSpec, Trigger
from agentcron.store import transitions
from agentcron.store.database import dialect_insert
from agentcron.store.notify import notify
from agentcron.store.rows import agent_from_row, agent_to_row, trigger_from_row
from agentcron.store.schema import agents, triggers
from agentcron.store.secrets import box_of


def upsert_agent(conn: Connection, agent: AgentSpec, now: datetime) -> None:
    """Create the agent or replace its settings; its triggers and runs are kept."""
    row = agent_to_row(agent, box_of(conn))
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


def insert_trigger(conn: Connection, values: dict[str, Any], now: datetime) -> None:
    """Insert a validated trigger; wakes tickers on PostgreSQL."""
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
    result = conn.execute(
        update(triggers).where(triggers.c.id == trigger_id)
        .values(**_sealed(conn, values), updated_at=now)
    )
    if result.rowcount == 0:
        raise NotFoundError("trigger", trigger_id)
    notify(conn, "triggers")


def _sealed(conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
    """Trigger values with the webhook secret sealed (when the store has a key)."""
    if values.get("webhook_secret"):
        return {**values, "webhook_secret": box_of(conn).seal(values["webhook_secret"])}
    return values


def get_trigger(conn: Connection, trigger_id: str, *, lock: bool = False) -> Trigger:
    stmt = select(triggers).where(triggers.c.id == trigger_id)
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise NotFoundError("trigger", trigger_id)
    return trigger_from_row(row)


def find_trigger(conn: Connection, agent: str, name: str) -> Trigger | None:
    row = conn.execute(
        select(triggers).where(triggers.c.agent == agent, triggers.c.name == name)
    ).mappings().first()
    return None if row is None else trigger_from_row(row)


def list_triggers(conn: Connection, agent: str | None = None) -> list[Trigger]:
    stmt = select(triggers).order_by(triggers.c.agent, triggers.c.created_at, triggers.c.id)
    if agent is not None:
        stmt = stmt.where(triggers.c.agent == agent)
    return [trigger_from_row(row) for row in conn.execute(stmt).mappings()]


def delete_trigger(conn: Connection, trigger_id: str) -> None:
    """Delete a trigger. Its run history stays; its queued runs still run."""
    if conn.execute(delete(triggers).where(triggers.c.id == trigger_id)).rowcount == 0:
        raise NotFoundError("trigger", trigger_id)
    notify(conn, "triggers")


# Fields that define when a trigger fires; if they are unchanged a re-sync keeps the
# trigger's place in its schedule (next_fire_at and interval anchor).
SCHEDULE_FIELDS = ("kind", "cron", "timezone", "every_s", "at", "start_at", "end_at")


def apply_declared(conn: Connection, source: str, declared_agents: list[AgentSpec],
                   declared_triggers: list[dict[str, Any]], now: datetime) -> dict[str, int]:
    """Make the agents and triggers owned by ``source`` exactly the declared ones, in one
    transaction. Triggers are matched by (agent, name); a trigger whose schedule did not
    change keeps its next fire time. Things created by other sources are left alone."""
    report = {"agents": 0, "created": 0, "updated": 0, "removed": 0}
    for agent in declared_agents:
        upsert_agent(conn, agent, now)
        report["agents"] += 1
    keep: set[str] = set()
    for values in declared_triggers:
        existing = find_trigger(conn, values["agent"], values["name"])
        if existing is None:
            insert_trigger(conn, values, now)
            keep.add(values["id"])
            report["created"] += 1
            continue
        keep.add(existing.id)
        changes = {k: v for k, v in values.items() if k not in ("id", "next_fire_at", "anchor_at")}
        same_schedule = all(getattr(existing, f) == values[f] for f in SCHEDULE_FIELDS)
        if not same_schedule:
            changes["next_fire_at"] = values["next_fire_at"]
            changes["anchor_at"] = values["anchor_at"]
        update_trigger(conn, existing.id, changes, now)
        report["updated"] += 1
    declared_names = {a.name for a in declared_agents}
    stale = conn.execute(
        select(triggers.c.id).where(triggers.c.source == source,
                                    triggers.c.id.not_in(keep) if keep else true())
    ).scalars().all()
    for trigger_id in stale:
        delete_trigger(conn, trigger_id)
        report["removed"] += 1
    for name in conn.execute(
        select(agents.c.name).where(agents.c.source == source)
    ).scalars().all():
        if name not in declared_names:
            delete_agent(conn, name, now)
    return report
