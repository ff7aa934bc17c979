"""A trigger as every front door states it (``TriggerInput``), and once validated, ready to
store (``NewTrigger``); ``TriggerService`` (``services/triggers.py``) turns one into the
other."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import Enum
from typing import Any

from agentcron.models import CatchupMode, OverlapPolicy, Trigger, TriggerKind
from agentcron.schedule.spec import SPEC_FIELDS, ScheduleSpec
from agentcron.services.agents import Duration


@dataclass(frozen=True)
class TriggerInput:
    """A trigger as a user states it (strings as typed on a command line or in TOML)."""

    agent: str
    cron: str | None = None
    every: Duration | None = None
    at: str | datetime | None = None
    tz: str | None = None
    payload: Any = None
    payload_is_json_text: bool = False
    overlap: str | None = None  # default: skip; allow for a webhook trigger
    catchup: Duration = "10m"
    catchup_mode: str = "coalesce"
    jitter: Duration = 0
    start: str | datetime | None = None
    end: str | datetime | None = None
    name: str | None = None
    paused: bool = False
    webhook: bool = False
    pause_after_failures: int | None = None  # default: the agent's (none: no breaker)


# The fields ``TriggerService.update`` takes (a PATCH): all a user states but what the trigger
# is for and what kind it is.
TRIGGER_CHANGES: tuple[str, ...] = tuple(
    f.name for f in fields(TriggerInput)
    if f.name not in ("agent", "payload_is_json_text", "webhook"))


@dataclass(frozen=True)
class NewTrigger:
    """A validated trigger, ready to store: its schedule, its settings and its first fire
    time. ``webhook_secret`` is set for a webhook trigger only (and handed out once)."""

    id: str
    agent: str
    name: str | None
    schedule: ScheduleSpec
    jitter_s: float
    payload: Any
    overlap: OverlapPolicy
    catchup_window_s: float
    catchup_mode: CatchupMode
    paused: bool
    next_fire_at: datetime | None
    source: str
    webhook_secret: str | None = None
    pause_after_failures: int | None = None
    #: Who made it (``cli``, ``file``, ``python``, ``api:<token>``, ``mcp:<token>``,
    #: ``run:<run id>``). For an agent-made one (``run:``/``mcp:``) the store applies the
    #: target agent's guardrails when it writes the row (expiry, approval, quotas).
    created_by: str = "cli"

    def row(self) -> dict[str, Any]:
        """The trigger's columns as the store writes them (the schedule's fields are columns
        of the same names; no ``webhook_secret`` column for a trigger without one)."""
        values: dict[str, Any] = {
            name: getattr(self.schedule, name) for name in SPEC_FIELDS}
        values.update({f.name: getattr(self, f.name) for f in fields(self)
                       if f.name != "schedule"})
        if self.webhook_secret is None:
            del values["webhook_secret"]
        return {k: v.value if isinstance(v, Enum) else v for k, v in values.items()}


def input_of(trigger: Trigger) -> TriggerInput:
    """A stored trigger as the input that would create it again."""
    kind = trigger.kind
    return TriggerInput(
        agent=trigger.agent,
        cron=trigger.cron if kind is TriggerKind.CRON else None,
        every=trigger.every_s if kind is TriggerKind.INTERVAL else None,
        at=trigger.at if kind is TriggerKind.ONCE else None,
        tz=None if kind is TriggerKind.INTERVAL else trigger.timezone,
        payload=trigger.payload, overlap=trigger.overlap.value,
        catchup=trigger.catchup_window_s, catchup_mode=trigger.catchup_mode.value,
        jitter=trigger.jitter_s, start=trigger.start_at, end=trigger.end_at,
        name=trigger.name, paused=trigger.paused, webhook=kind is TriggerKind.WEBHOOK,
        pause_after_failures=trigger.pause_after_failures,
    )


def with_default_name(spec: TriggerInput) -> TriggerInput:
    """Declared triggers (agents file, Python API) are synced by (agent, name); an unnamed
    one gets a stable name from its schedule so re-syncing finds the same trigger."""
    if spec.name is not None:
        return spec
    if spec.cron is not None:
        name = f"cron {spec.cron}" + (f" {spec.tz}" if spec.tz else "")
    elif spec.every is not None:
        name = f"every {spec.every}"
    else:
        name = f"at {spec.at}"
    return replace(spec, name=name[:100])
