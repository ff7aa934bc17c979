"""Follow-ups: the triggers a run asked for, written by ``claiming.finish`` in the
transaction of the run's outcome (issue 13).

Only outcomes whose fenced update changed their run write their follow-ups, so a stale
attempt (wrong lease or node) schedules nothing, and an outcome delivered twice (a retried
write) schedules once: the second delivery is fenced. An attempt that will be retried
writes none (its next attempt asks again); they are recorded as refused.

Every follow-up is agent-made (created_by ``run:<run id>``, source ``run`` unless the row
says otherwise) and passes the guardrails (``store/guardrails.py``): the scheduling run's
agent must list the target in ``may_schedule`` (default: itself), and the target's
``max_live`` and ``min_interval`` hold (a one-shot's counted from when the asking attempt
started); expiry and approval are applied. Each created one is a run event ``follow_up``
(its message the trigger id), each refused one ``follow_up_refused`` (its message the
reason).

Lock order: ``lock_targets`` locks the target agents' rows (in name order) before
``finish`` locks any trigger or run row, as the documented order (agents -> triggers ->
runs) wants. Nothing here runs for a batch without follow-ups: no extra statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.engine import Connection

from agentcron.errors import GuardrailError
from agentcron.models import Outcome, RunEvent, SchedulingPolicy
from agentcron.rules.scheduling import MAX_FOLLOW_UPS, policy_from_json
from agentcron.store.guardrails import guard, lock_policies
from agentcron.store.notify import notify
from agentcron.store.schema import agents, triggers
from agentcron.store.secrets import box_of

CREATED = "follow_up"
REFUSED = "follow_up_refused"


class Asker(NamedTuple):
    """The applied attempt that asked for follow-ups."""

    agent: str
    attempt: int
    started_at: datetime | None
    """When the attempt started: its one-shots' gaps count from here (``guard``)."""


def wanted(outcomes: Sequence[Outcome]) -> bool:
    """Whether any outcome carries follow-ups (else ``finish`` does nothing more)."""
    return any(o.follow_ups for o in outcomes)


def lock_targets(conn: Connection, outcomes: Sequence[Outcome]
                 ) -> dict[str, SchedulingPolicy]:
    """Lock the rows of the agents the follow-ups target, in name order; their policies.
    One statement."""
    return lock_policies(conn, {
        str(f.row["agent"]) for o in outcomes for f in o.follow_ups
        if f.row is not None and "agent" in f.row})


def write(conn: Connection, outcomes: Sequence[Outcome], applied: dict[str, Asker],
          policies: dict[str, SchedulingPolicy], node_id: str, now: datetime
          ) -> list[RunEvent]:
    """Create the follow-ups of the outcomes that were applied (``applied``: run id ->
    its attempt); returns the run events to record (the caller records them with its
    own)."""
    events: list[RunEvent] = []
    mine = [o for o in outcomes if o.follow_ups and o.run_id in applied]
    if not mine:
        return events
    schedulers = {applied[o.run_id][0] for o in mine} - set(policies)
    if schedulers:  # read, not locked: their may_schedule is only read
        policies = {**policies, **{
            row.name: policy_from_json(row.scheduling) for row in conn.execute(
                select(agents.c.name, agents.c.scheduling)
                .where(agents.c.name.in_(sorted(schedulers))))}}
    created = False
    for outcome in mine:
        agent, attempt, started_at = applied[outcome.run_id]

        def event(kind: str, message: str, run_id: str = outcome.run_id,
                  attempt: int = attempt) -> None:
            events.append(RunEvent(run_id, now, kind, attempt, node_id, message))

        for i, follow_up in enumerate(outcome.follow_ups):
            if outcome.retry_delay_s is not None:
                event(REFUSED, f"schedule[{i}]: this attempt is retried, so it schedules "
                      "nothing; the next attempt asks again")
            elif follow_up.row is None:
                event(REFUSED, follow_up.refused or f"schedule[{i}]: refused")
            elif i >= MAX_FOLLOW_UPS:
                event(REFUSED, f"schedule[{i}]: a run may schedule at most {MAX_FOLLOW_UPS} "
                      "follow-ups")
            else:
                try:
                    trigger_id = _create(conn, follow_up.row, outcome.run_id, agent,
                                         policies, now, started_at)
                except GuardrailError as exc:
                    event(REFUSED, f"schedule[{i}]: {exc.reason}")
                else:
                    event(CREATED, trigger_id)
                    created = True
    if created:
        notify(conn, "triggers")
    return events


def _create(conn: Connection, row: dict[str, Any], run_id: str, agent: str,
            policies: dict[str, SchedulingPolicy], now: datetime,
            asked_at: datetime | None) -> str:
    values = {**row}
    # Always agent-made, so never past the guardrails: a row that says otherwise (or
    # nothing) is this run's.
    if not str(values.get("created_by") or "").startswith("run:"):
        values["created_by"] = f"run:{run_id}"
    if values.get("source") in (None, "cli"):
        values["source"] = "run"
    values = guard(conn, values, now, policies, by_agent=agent, asked_at=asked_at)
    if values.get("name") is not None and conn.execute(
            select(triggers.c.id).where(triggers.c.agent == values["agent"],
                                        triggers.c.name == values["name"])).first():
        raise GuardrailError(f"agent {values['agent']!r} already has a trigger named "
                             f"{values['name']!r}; give another name, or none")
    if values.get("webhook_secret"):
        values["webhook_secret"] = box_of(conn).seal(values["webhook_secret"])
    conn.execute(triggers.insert().values(**values, created_at=now, updated_at=now))
    return str(values["id"])
