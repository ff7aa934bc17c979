"""Pausing and resuming many triggers at once: by agent, by a name pattern, or all.

A selection is read and written in batches of ``BATCH`` triggers (keyset by id), a
constant number of statements per batch, in one transaction: a pause of 50,000 triggers
is 50 updates, not 50,000. Resuming computes each trigger's next fire time from now in the
caller (``next_fire``: the schedule maths is not the store's), so the batch is read under
its row locks (``FOR UPDATE`` on PostgreSQL) and then written with one ``executemany``.
Lock order: trigger rows only, each batch locked in id order (``FOR UPDATE`` on
PostgreSQL), so two bulk changes at once wait for each other rather than deadlock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, false, func, or_, select, true, update
from sqlalchemy.engine import Connection

from agentcron.models import Trigger
from agentcron.rules.scheduling import PENDING
from agentcron.store.catalog import read_triggers
from agentcron.store.declaring import BATCH
from agentcron.store.notify import notify
from agentcron.store.schema import triggers


@dataclass(frozen=True)
class Selection:
    """Which triggers: those of ``agent``, those whose name matches ``pattern`` (a glob:
    ``*`` any characters, ``?`` one), or all of them (neither given); both given: both
    must hold."""

    agent: str | None = None
    pattern: str | None = None

    def where(self) -> list[Any]:
        clauses: list[Any] = []
        if self.agent is not None:
            clauses.append(triggers.c.agent == self.agent)
        if self.pattern is not None:
            clauses.append(triggers.c.name.like(glob_to_like(self.pattern), escape="\\"))
        return clauses


def not_pending() -> Any:
    """Triggers not awaiting approval (which no resume may release)."""
    return or_(triggers.c.approval.is_(None), triggers.c.approval != PENDING)


def glob_to_like(pattern: str) -> str:
    """A glob (``*``, ``?``) as a LIKE pattern with ``\\`` as its escape."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def count(conn: Connection, selection: Selection, paused: bool | None = None) -> int:
    """How many selected triggers there are (only those paused or not, when given)."""
    stmt = select(func.count()).select_from(triggers).where(*selection.where())
    if paused is not None:
        stmt = stmt.where(triggers.c.paused == (true() if paused else false()))
    return int(conn.execute(stmt).scalar_one())


def pause_many(conn: Connection, selection: Selection, now: datetime) -> list[str]:
    """Pause the selected triggers not paused yet; returns their ids. Two statements per
    batch (the rows locked in id order, then updated). A user's pause: no
    ``paused_reason``."""
    done: list[str] = []
    after = ""
    while True:
        pick = (select(triggers.c.id).where(*selection.where(), triggers.c.paused == false(),
                                            triggers.c.id > after)
                .order_by(triggers.c.id).limit(BATCH))
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update()  # in id order, as every many-trigger writer
        ids = list(conn.execute(pick).scalars())
        if not ids:
            return done
        conn.execute(update(triggers).where(triggers.c.id.in_(ids),
                                            triggers.c.paused == false())
                     .values(paused=True, updated_at=now))
        done.extend(ids)
        after = ids[-1]


def resume_many(conn: Connection, selection: Selection,
                next_fire: Callable[[Trigger], datetime | None], now: datetime) -> list[str]:
    """Resume the selected paused triggers, each with ``next_fire(trigger)`` as its next
    fire time; clears the breaker's reason and count and a quarantine (as a resume of one
    does). Triggers awaiting approval stay paused (only ``approve`` releases them).
    Returns their ids. Two statements per batch; wakes the tickers."""
    done: list[str] = []
    after = ""
    stmt = (update(triggers).where(triggers.c.id == bindparam("b_id"))
            .values(paused=False, next_fire_at=bindparam("b_next",
                                                         type_=triggers.c.next_fire_at.type),
                    paused_reason=None, consecutive_failures=0, broken_at=None,
                    broken_reason=None, updated_at=now))
    while True:
        read = (select(triggers).where(*selection.where(), triggers.c.paused == true(),
                                       triggers.c.id > after, not_pending())
                .order_by(triggers.c.id).limit(BATCH))
        if conn.dialect.name == "postgresql":
            read = read.with_for_update()
        batch = read_triggers(conn, read)
        if not batch:
            break
        conn.execute(stmt, [{"b_id": t.id, "b_next": next_fire(t)} for t in batch])
        done.extend(t.id for t in batch)
        after = batch[-1].id
    if done:
        notify(conn, "triggers")
    return done
