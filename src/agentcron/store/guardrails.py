"""The scheduling guardrails, applied where agent-made triggers are written (issue 13).

A trigger is agent-made when its ``created_by`` starts ``run:`` (a run's follow-up,
written by ``claiming.finish``) or ``mcp:`` (an MCP client, written by
``catalog.insert_trigger``). For those, in the creating transaction:

- the target agent's row is locked (``FOR UPDATE`` on PostgreSQL; SQLite has one writer
  at a time), so two creates for one agent at once are serialised and cannot both pass
  ``max_live``;
- for an MCP-made trigger, its token must still exist, when limited to agents name the
  target, and when capped (``max_live``) have fewer live triggers made through it, across
  every agent (``rules.scheduling.token_refusal``; the token's row read here, and locked
  when capped);
- ``rules.scheduling.refusal`` decides (``may_schedule`` of the scheduling run's agent,
  ``max_live`` counted in this transaction, ``min_interval`` over the schedule's gaps);
- the row gets ``expires_at`` = now + ``expires_after``, and ``end_at`` is brought forward
  to it when later, so the Bounded schedule stops the trigger there: firing needs no extra
  predicate and stays as fast;
- with ``require_approval`` it is created paused (``paused_reason`` "awaiting approval")
  with ``approval`` ``pending``; ``approve`` (``catalog.approve_trigger``) releases it.

Lock order: agents rows, in name order, then a capped token's row, before any trigger or
run row (as everywhere).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, or_, select

from agentcron.errors import GuardrailError
from agentcron.models import SchedulingPolicy, TriggerKind
from agentcron.rules.scheduling import (
    AWAITING_APPROVAL,
    PENDING,
    Candidate,
    agent_made,
    policy_from_json,
    refusal,
    token_refusal,
)
from agentcron.schedule.gaps import smallest_gap
from agentcron.schedule.spec import SPEC_FIELDS, ScheduleSpec, build_schedule
from agentcron.store.schema import agents, api_tokens, triggers


def lock_policies(conn: Connection, names: Iterable[str]) -> dict[str, SchedulingPolicy]:
    """Lock the rows of agents ``names`` (in name order) and return their scheduling
    policies; an agent that does not exist is left out. One statement."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    stmt = (select(agents.c.name, agents.c.scheduling).where(agents.c.name.in_(wanted))
            .order_by(agents.c.name))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {row.name: policy_from_json(row.scheduling) for row in conn.execute(stmt)}


def _live(now: datetime) -> tuple[Any, ...]:
    """A trigger still live: a time left to fire (or pending approval), not expired."""
    return (or_(triggers.c.next_fire_at.is_not(None), triggers.c.approval == PENDING),
            or_(triggers.c.expires_at.is_(None), triggers.c.expires_at > now))


def live_count(conn: Connection, agent: str, now: datetime) -> int:
    """Live agent-made triggers of ``agent``: made by ``run:``/``mcp:``, still live."""
    return int(conn.execute(
        select(func.count()).select_from(triggers).where(
            triggers.c.agent == agent,
            or_(triggers.c.created_by.like("run:%"), triggers.c.created_by.like("mcp:%")),
            *_live(now),
        )).scalar_one())


def made_live_count(conn: Connection, created_by: str, now: datetime) -> int:
    """Live triggers made by exactly ``created_by`` (one MCP token), across every agent."""
    return int(conn.execute(
        select(func.count()).select_from(triggers).where(
            triggers.c.created_by == created_by, *_live(now))).scalar_one())


def _token_refusal(conn: Connection, created_by: str, agent: str, now: datetime
                   ) -> str | None:
    """For an MCP-made trigger, the token's own limits, read in the creating transaction: a
    token revoked or narrowed a moment ago makes nothing, whatever its caller checked. The
    token's row is locked (``FOR UPDATE`` on PostgreSQL; one read), so two creates through
    it for different agents (whose agent locks do not meet) are serialised and cannot both
    pass its ``max_live``. (Creates through one token are a client's, one at a time.)"""
    if not created_by.startswith("mcp:"):
        return None
    stmt = select(api_tokens.c.agents, api_tokens.c.max_live).where(
        api_tokens.c.name == created_by.removeprefix("mcp:"))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    if row is None:
        return token_refusal(created_by, None, False, agent)
    made = made_live_count(conn, created_by, now) if row.max_live is not None else 0
    return token_refusal(created_by, row.agents, True, agent, row.max_live, made)


def guard(conn: Connection, values: dict[str, Any], now: datetime,
          policies: dict[str, SchedulingPolicy], by_agent: str | None = None,
          asked_at: datetime | None = None) -> dict[str, Any]:
    """The row to insert for ``values`` (a ``NewTrigger.row()``), with expiry and approval
    applied; ``GuardrailError`` when the policy refuses it. ``policies`` holds the locked
    policies (``lock_policies``) of the target agent and, for a follow-up, of ``by_agent``
    (the scheduling run's agent). Rows not agent-made are returned unchanged.

    ``asked_at`` is when the trigger was asked for (a follow-up: when the asking attempt
    started; default ``now``): a one-shot's gap to its time counts from then, so "in 1m"
    meets a 1m ``min_interval`` however long the run went on after asking. It must still
    have a time after ``now``."""
    if not agent_made(values.get("created_by")):
        return values
    agent = values["agent"]
    policy = policies.get(agent)
    if policy is None:
        raise GuardrailError(f"no agent named {agent!r}; schedule an existing agent")
    columns: dict[str, Any] = {name: values.get(name) for name in SPEC_FIELDS}
    spec = ScheduleSpec(**{**columns, "kind": TriggerKind(values["kind"])})
    schedule = build_schedule(spec)
    since = now if asked_at is None else min(asked_at, now)
    candidate = Candidate(agent=agent, kind=str(values["kind"]),
                          gap=smallest_gap(schedule, since)
                          if schedule.next_after(now) is not None else None,
                          created_by=values["created_by"], by_agent=by_agent)
    reason = _token_refusal(conn, values["created_by"], agent, now) or refusal(
        candidate, policy, live_count(conn, agent, now), now,
        policies.get(by_agent) if by_agent is not None else None)
    if reason is not None:
        raise GuardrailError(reason)
    expires_at = now + timedelta(seconds=policy.expires_after_s)
    values = {**values, "expires_at": expires_at}
    if spec.end_at is None or spec.end_at > expires_at:
        bounded = replace(spec, end_at=expires_at)
        values["end_at"] = expires_at
        if values.get("next_fire_at") is not None:
            values["next_fire_at"] = build_schedule(bounded).next_after(now)
    if policy.require_approval:
        values.update(paused=True, paused_reason=AWAITING_APPROVAL, approval=PENDING)
    return values
