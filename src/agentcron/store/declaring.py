"""Many triggers at once: the agents file's sync and the API's batch create.

Both write a constant number of statements per batch of ``BATCH`` triggers, never one per
trigger: the triggers they touch are read in one statement per batch of agents, new ones
are inserted with one ``executemany`` per batch (a multi-row ``INSERT`` on PostgreSQL:
SQLAlchemy's "insertmanyvalues"), changed ones updated with one ``executemany`` per batch,
removed ones deleted with one ``DELETE ... WHERE id IN`` per batch.

Limits come first. The caller's ``check_total(agent, total)`` sees, for each agent the write
touches, how many triggers it will have afterwards, counted under the agents' row locks
(``FOR UPDATE`` on PostgreSQL; SQLite writes one transaction at a time), and may raise to
refuse the whole write: it runs before any trigger is written. Lock order: agents rows
(by name), then triggers rows; the same order a single create takes
(``catalog.insert_trigger``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.engine import Connection, RowMapping

from agentcron.errors import ConflictError, NotFoundError
from agentcron.models import AgentSpec, ModelPrice, Trigger
from agentcron.store.bulk import bulk_source
from agentcron.store.catalog import delete_agent, list_agents, read_triggers, upsert_agent
from agentcron.store.notify import notify
from agentcron.store.pricing import list_prices
from agentcron.store.rows import trigger_from_row
from agentcron.store.schema import agents, triggers
from agentcron.store.secrets import box_of

BATCH = 1000
"""Triggers per statement batch (and agent names per ``IN`` list)."""

CheckTotal = Callable[[str, int], None]

# Fields that define when a trigger fires; if they are unchanged a re-sync keeps the
# trigger's place in its schedule (next_fire_at and interval anchor).
SCHEDULE_FIELDS = ("kind", "cron", "timezone", "every_s", "at", "start_at", "end_at")


def chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def lock_agents(conn: Connection, names: set[str]) -> set[str]:
    """Lock the agents rows of ``names`` (in name order, one statement per batch); returns
    the names that exist."""
    found: set[str] = set()
    for part in chunks(sorted(names)):
        found.update(conn.execute(
            select(agents.c.name).where(agents.c.name.in_(part))
            .order_by(agents.c.name).with_for_update()).scalars())
    return found


def trigger_counts(conn: Connection, names: set[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for part in chunks(sorted(names)):
        for agent, count in conn.execute(
                select(triggers.c.agent, func.count()).where(triggers.c.agent.in_(part))
                .group_by(triggers.c.agent)):
            counts[agent] = count
    return counts


def _sealed_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    box = box_of(conn)
    return [{**row, "webhook_secret": box.seal(row["webhook_secret"])}
            if row.get("webhook_secret") else row for row in rows]


def _insert(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """New triggers, one statement per batch (and key set). PostgreSQL: ``INSERT ...
    SELECT FROM unnest(...)`` (``store/bulk.py``): one statement whose text does not depend
    on the batch size; psycopg's executemany would send one INSERT per row. SQLite: one
    ``executemany``, which runs in-process."""
    for group in _by_keys(rows).values():
        for part in chunks(group):
            values = [{**row, "created_at": now, "updated_at": now}
                      for row in _sealed_rows(conn, part)]
            if conn.dialect.name != "postgresql":
                conn.execute(triggers.insert(), values)
                continue
            keys = list(values[0])
            source = bulk_source(conn, {k: triggers.c[k].type for k in keys}, values)
            conn.execute(triggers.insert().from_select(
                keys, select(*(source[k] for k in keys)).select_from(source.from_clause)))


def inserted(rows: Sequence[dict[str, Any]], now: datetime) -> list[Trigger]:
    """The triggers ``insert_triggers`` wrote, as a read would return them (no read)."""
    defaults = {"last_fired_at": None, "missed_count": 0, "last_missed_at": None,
                "created_at": now, "updated_at": now, "broken_at": None,
                "broken_reason": None, "skipped_count": 0, "last_skipped_at": None,
                "pause_after_failures": None, "consecutive_failures": 0,
                "paused_reason": None, "expires_at": None, "approval": None,
                "created_by": "cli",
                "cron": None, "every_s": None, "at": None, "anchor_at": None,
                "start_at": None, "end_at": None}
    return [trigger_from_row(cast(RowMapping, {**defaults, **row})) for row in rows]


def _update(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Changed triggers (each row has its ``id``), one executemany per batch and key set."""
    for keys, group in _by_keys(rows).items():
        columns = [k for k in keys if k != "id"]
        stmt = (update(triggers).where(triggers.c.id == bindparam("b_id"))
                .values({c: bindparam(f"b_{c}", type_=triggers.c[c].type) for c in columns}
                        | {"updated_at": bindparam("b_updated_at",
                                                   type_=triggers.c.updated_at.type)}))
        for part in chunks(group):
            conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()} | {"b_updated_at": now}
                                for row in _sealed_rows(conn, part)])


def _by_keys(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return groups


def _existing(conn: Connection, names: set[str]) -> list[Trigger]:
    found: list[Trigger] = []
    for part in chunks(sorted(names)):
        found.extend(read_triggers(conn, select(triggers).where(triggers.c.agent.in_(part))))
    return found


def read_by_id(conn: Connection, ids: Sequence[str]) -> list[Trigger]:
    found: list[Trigger] = []
    for part in chunks(ids):
        found.extend(read_triggers(conn, select(triggers).where(triggers.c.id.in_(part))))
    return found


def insert_triggers(conn: Connection, rows: Sequence[dict[str, Any]], now: datetime,
                    check_total: CheckTotal | None = None) -> list[Trigger]:
    """Insert validated triggers, all or none: ``NotFoundError`` for an unknown agent,
    ``ConflictError`` for a name its agent already has (or that two rows share), and
    whatever ``check_total`` raises; each before anything is written."""
    names = {row["agent"] for row in rows}
    known = lock_agents(conn, names)
    for row in rows:
        if row["agent"] not in known:
            raise NotFoundError("agent", row["agent"])
    if check_total is not None:
        counts = trigger_counts(conn, names)
        for agent, adding in sorted(Counter(row["agent"] for row in rows).items()):
            check_total(agent, counts[agent] + adding)
    named = [(row["agent"], row["name"]) for row in rows if row.get("name") is not None]
    if named:
        taken = {(t.agent, t.name) for t in _existing(conn, {a for a, _ in named})}
        seen: set[tuple[str, str]] = set()
        for key in named:
            if key in taken or key in seen:
                raise ConflictError(f"agent {key[0]!r} already has a trigger named {key[1]!r}")
            seen.add(key)
    _insert(conn, rows, now)
    notify(conn, "triggers")
    return inserted(rows, now)


def apply_declared(conn: Connection, source: str, declared_agents: list[AgentSpec],
                   declared_triggers: list[dict[str, Any]], now: datetime,
                   check_total: CheckTotal | None = None) -> dict[str, int]:
    """Make the agents and triggers owned by ``source`` exactly the declared ones, in one
    transaction. Triggers are matched by (agent, name) (a later declaration of the same
    pair wins); a trigger whose schedule did not change keeps its next fire time, and one
    that did not change at all is not written. Things created by other sources are left
    alone. ``check_total`` sees each touched agent's trigger count after the sync, before
    any trigger is written."""
    report = {"agents": 0, "created": 0, "updated": 0, "removed": 0}
    for agent in sorted(declared_agents, key=lambda a: a.name):  # lock order: by name
        upsert_agent(conn, agent, now)
        report["agents"] += 1
    wanted = _wanted(declared_triggers)
    names = {agent for agent, _ in wanted}
    known = lock_agents(conn, names)
    plan = _plan_triggers(conn, source, wanted, known, check_total)
    for part in chunks([tid for tid, _, _ in plan.stale]):
        conn.execute(delete(triggers).where(triggers.c.id.in_(part)))
    _insert(conn, plan.create, now)
    _update(conn, plan.change, now)
    report.update(created=len(plan.create), updated=len(plan.change), removed=len(plan.stale))
    if plan.create or plan.change or plan.stale:
        notify(conn, "triggers")
    declared_names = {a.name for a in declared_agents}
    for name in conn.execute(
        select(agents.c.name).where(agents.c.source == source)
    ).scalars().all():
        if name not in declared_names:
            delete_agent(conn, name, now)
    return report


@dataclass(frozen=True)
class PlannedChange:
    """One thing a sync would change: ``kind`` agent, trigger or price; ``name`` the
    agent, ``agent/trigger-name`` or the model; ``action`` create, update or remove;
    ``detail`` the fields an update changes (or a removed trigger's id)."""

    kind: str
    name: str
    action: str
    detail: str = ""


def plan_declared(conn: Connection, source: str, declared_agents: list[AgentSpec],
                  declared_triggers: list[dict[str, Any]],
                  declared_prices: list[ModelPrice] | None,
                  check_total: CheckTotal | None = None) -> list[PlannedChange]:
    """What ``apply_declared`` (and, with ``declared_prices``, the prices' sync) would
    change, reading only: the same matching, and the same ``check_total`` refusal."""
    planned: list[PlannedChange] = []
    declared_names = {a.name for a in declared_agents}
    existing_agents = {a.name: a for a in list_agents(conn)}
    for agent in sorted(declared_agents, key=lambda a: a.name):
        stored = existing_agents.get(agent.name)
        if stored is None:
            planned.append(PlannedChange("agent", agent.name, "create"))
            continue
        changed = [f.name for f in fields(AgentSpec) if f.name != "created_at"
                   and getattr(stored, f.name) != getattr(agent, f.name)]
        if changed:
            planned.append(PlannedChange("agent", agent.name, "update", ", ".join(changed)))
    removed_agents = sorted(name for name, a in existing_agents.items()
                            if a.source == source and name not in declared_names)
    wanted = _wanted(declared_triggers)
    names = {agent for agent, _ in wanted}
    plan = _plan_triggers(conn, source, wanted, set(existing_agents) | declared_names,
                          check_total)
    current_of = {t.id: t for t in _existing(conn, names)}
    for values in plan.create:
        planned.append(PlannedChange("trigger", f"{values['agent']}/{values['name']}",
                                     "create"))
    for change in plan.change:
        was = current_of[change["id"]]
        fields_changed = sorted(k for k, v in change.items()
                                if k not in ("id", "broken_at", "broken_reason",
                                             "webhook_secret", "next_fire_at", "anchor_at")
                                and getattr(was, k, v) != v)
        planned.append(PlannedChange("trigger", f"{was.agent}/{was.name}", "update",
                                     ", ".join(fields_changed) or "lifts a quarantine"))
    for tid, owner, name in plan.stale:
        planned.append(PlannedChange("trigger", f"{owner}/{name}", "remove", tid))
    planned.extend(PlannedChange("agent", name, "remove") for name in removed_agents)
    if declared_prices is not None:
        planned.extend(plan_prices(conn, source, declared_prices))
    return planned


def plan_prices(conn: Connection, source: str, prices: list[ModelPrice]
                ) -> list[PlannedChange]:
    """What ``pricing.apply_declared_prices`` would change."""
    existing = {p.model: p for p in list_prices(conn)}
    planned: list[PlannedChange] = []
    for price in prices:
        current = existing.get(price.model)
        if current is None:
            planned.append(PlannedChange("price", price.model, "create"))
        elif (current.input_per_mtok, current.output_per_mtok, current.source) != (
                price.input_per_mtok, price.output_per_mtok, source):
            planned.append(PlannedChange("price", price.model, "update"))
    declared = {p.model for p in prices}
    planned.extend(PlannedChange("price", model, "remove") for model, p in existing.items()
                   if p.source == source and model not in declared)
    return planned


@dataclass(frozen=True)
class _TriggerPlan:
    create: list[dict[str, Any]]
    change: list[dict[str, Any]]
    stale: list[tuple[str, str, str | None]]  # (id, agent, name)


def _wanted(declared_triggers: list[dict[str, Any]]
            ) -> dict[tuple[str, str | None], dict[str, Any]]:
    wanted: dict[tuple[str, str | None], dict[str, Any]] = {}
    for values in declared_triggers:
        wanted[(values["agent"], values["name"])] = values
    return wanted


def _plan_triggers(conn: Connection, source: str,
                   wanted: dict[tuple[str, str | None], dict[str, Any]], known: set[str],
                   check_total: CheckTotal | None) -> _TriggerPlan:
    """The triggers to create, change and remove to make ``source``'s the ``wanted``
    ones; ``NotFoundError`` for an agent not in ``known``, and whatever ``check_total``
    raises. Reads only."""
    names = {agent for agent, _ in wanted}
    for name, _ in wanted:
        if name not in known:
            raise NotFoundError("agent", name)
    existing = {(t.agent, t.name): t for t in _existing(conn, names)}
    owned = conn.execute(select(triggers.c.id, triggers.c.agent, triggers.c.name)
                         .where(triggers.c.source == source)).all()
    create: list[dict[str, Any]] = []
    change: list[dict[str, Any]] = []
    keep: set[str] = set()
    for key, values in wanted.items():
        current = existing.get(key)
        if current is None:
            create.append(values)
            continue
        keep.add(current.id)
        changes = _changes(current, values)
        if changes is not None:
            change.append(changes)
    stale = [(tid, agent, name) for tid, agent, name in owned if tid not in keep]
    if check_total is not None:
        counts = trigger_counts(conn, names | {agent for _, agent, _ in stale})
        counts.update(Counter(values["agent"] for values in create))
        counts.subtract(Counter(agent for _, agent, _ in stale))
        # Only agents that gain triggers: a sync that adds none to an agent already past a
        # lowered limit still applies.
        for agent in sorted({values["agent"] for values in create}):
            check_total(agent, counts[agent])
    return _TriggerPlan(create, change, stale)


def _changes(current: Trigger, values: dict[str, Any]) -> dict[str, Any] | None:
    """The columns to write for a declared trigger matching ``current``, with its ``id``;
    None when nothing would change. An unchanged schedule keeps its place (next fire time
    and anchor); any change lifts a quarantine, as an update by hand does, unless the
    trigger stays paused. A trigger agentcron paused (``paused_reason``: the circuit
    breaker, a budget) stays paused: a node's restart re-syncing its file must not resume
    what keeps failing or spending; a user's resume does."""
    if current.paused_reason is not None and not values.get("paused"):
        values = {**values, "paused": True}
    same_schedule = all(getattr(current, f) == values[f] for f in SCHEDULE_FIELDS)
    changes = {k: v for k, v in values.items() if k not in ("id", "next_fire_at", "anchor_at")}
    if not same_schedule:
        changes["next_fire_at"] = values["next_fire_at"]
        changes["anchor_at"] = values["anchor_at"]
    settled = all(getattr(current, k) == v for k, v in changes.items()
                  if k not in ("next_fire_at", "anchor_at", "webhook_secret"))
    if same_schedule and settled and current.broken_at is None:
        return None  # untouched: a webhook trigger keeps its secret, too
    if changes.get("paused") is not True:
        changes.update(broken_at=None, broken_reason=None)
    else:
        changes.update(broken_at=current.broken_at, broken_reason=current.broken_reason)
    changes["id"] = current.id
    return changes
