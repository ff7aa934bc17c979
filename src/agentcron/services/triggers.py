"""Triggers in the service layer: ``TriggerService`` validates a ``TriggerInput`` (a trigger
as every front door states it, ``services/trigger_input.py``) into a ``NewTrigger`` and
stores it; names, updates, pauses, approval and listings."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from agentcron.errors import ConflictError, NotFoundError, ValidationError
from agentcron.executors.templates import TemplateError, check_renders
from agentcron.models import (
    AgentKind,
    AgentSpec,
    CatchupMode,
    OverlapPolicy,
    Trigger,
    TriggerKind,
)
from agentcron.rules.ids import new_trigger_id
from agentcron.rules.scheduling import APPROVED, PENDING, agent_made
from agentcron.schedule.base import Schedule
from agentcron.schedule.cron import CronSchedule
from agentcron.schedule.durations import parse_duration
from agentcron.schedule.spec import (
    SPEC_FIELDS,
    ScheduleSpec,
    build_schedule,
    parse_at,
    validate_schedule,
)
from agentcron.services.limits import Limits
from agentcron.services.provenance import check_created_by_filter, trigger_chain
from agentcron.services.trigger_input import (
    TRIGGER_CHANGES,
    NewTrigger,
    TriggerInput,
    input_of,
)
from agentcron.services.validate import (
    ID,
    check_aware,
    check_breaker,
    check_int_between,
    check_name,
    check_one_of,
    check_payload,
    has_bidi_control,
    located,
    now_or_store,
)
from agentcron.store import Store

MAX_BATCH = 1000
"""The most triggers one batch create takes (``POST /api/v1/triggers/batch``)."""

_TRIGGER_NAME = re.compile(r"^(?=\S)[^\x00-\x1f\x7f]{1,100}(?<=\S)$")
#: Most triggers an ambiguous name's error lists.
MAX_CANDIDATES = 10


class TriggerService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def build(self, spec: TriggerInput, now: datetime, *, source: str = "cli",
              agent: AgentSpec | None = None, created_by: str | None = None) -> NewTrigger:
        """Validate a trigger and return it ready to store, with its first fire time.
        ``agent`` is the trigger's agent when the caller has it (else it is read from the
        store): an llm agent's templates must render with the trigger's payload.
        ``created_by`` is its provenance (default: ``source``); the guardrails of an
        agent-made one are the store's, applied when it is written."""
        check_name(spec.agent, "agent")
        if spec.name is not None and (not _TRIGGER_NAME.match(spec.name)
                                      or has_bidi_control(spec.name)):
            raise ValidationError("name", f"{spec.name!r} is not a valid trigger name",
                                  "1-100 printable characters, no leading/trailing space, "
                                  "no bidirectional controls")
        given = [f for f, v in (("cron", spec.cron), ("every", spec.every), ("at", spec.at))
                 if v is not None]
        if not isinstance(spec.paused, bool):
            raise ValidationError("paused", f"{spec.paused!r} is not true or false",
                                  "give true or false")
        if spec.webhook and given:
            raise ValidationError(
                "webhook", f"a webhook trigger has no schedule, but {' and '.join(given)} "
                "was given", "drop --cron/--every/--at, or drop --webhook")
        if spec.webhook:
            pass
        elif len(given) != 1:
            raise ValidationError(
                "schedule",
                "no schedule given" if not given else f"{' and '.join(given)} given together",
                "give exactly one of --cron EXPR, --every 30s, --at ISO-TIME or --webhook",
            )
        if spec.tz is not None and spec.every is not None:
            raise ValidationError("tz", "a time zone does not apply to --every",
                                  "use --tz with --cron or --at")
        timezone = spec.tz or "UTC"
        start = self._time(spec.start, timezone, "start")
        end = self._time(spec.end, timezone, "end")
        extra: dict[str, Any]
        if spec.webhook:
            kind, extra = TriggerKind.WEBHOOK, {}
        elif spec.cron is not None:
            kind, extra = TriggerKind.CRON, {"cron": spec.cron.strip()}
        elif spec.every is not None:
            every_s = parse_duration(spec.every, "every")
            # Anchored to whole seconds, so "every 30s" reads (and fires) on round times.
            anchor = start or now.replace(microsecond=0)
            kind, extra = TriggerKind.INTERVAL, {"every_s": every_s, "anchor_at": anchor}
        else:
            kind, extra = TriggerKind.ONCE, {"at": self._time(spec.at, spec.tz, "at")}
        schedule_spec = ScheduleSpec(kind=kind, timezone=timezone, start_at=start, end_at=end,
                                     **extra)
        with _renamed({"start_at": "start", "end_at": "end", "anchor_at": "start"}):
            schedule = validate_schedule(schedule_spec, now)
        _check_frequency(schedule_spec)
        payload = check_payload(spec.payload, spec.payload_is_json_text)
        self._check_templates(spec.agent, kind, payload, agent)
        overlap = spec.overlap or ("allow" if spec.webhook else "skip")
        secret = None
        if spec.webhook:
            from agentcron.services.access import new_webhook_secret

            secret = new_webhook_secret()
        return NewTrigger(
            id=new_trigger_id(),
            agent=spec.agent,
            name=spec.name,
            schedule=schedule_spec,
            jitter_s=parse_duration(spec.jitter, "jitter", allow_zero=True),
            payload=payload,
            overlap=check_one_of(overlap, OverlapPolicy, "overlap"),
            catchup_window_s=parse_duration(spec.catchup, "catchup", allow_zero=True),
            catchup_mode=check_one_of(spec.catchup_mode, CatchupMode, "catchup-mode"),
            paused=spec.paused,
            next_fire_at=schedule.next_after(now),
            source=source,
            webhook_secret=secret,
            pause_after_failures=check_breaker(spec.pause_after_failures),
            created_by=_provenance(created_by if created_by is not None else source),
        )

    def _check_templates(self, agent_name: str, kind: TriggerKind, payload: Any,
                         agent: AgentSpec | None) -> None:
        """A trigger's payload is static (a webhook's arrives with each delivery): an llm
        agent's prompt and system templates must render with it, or the trigger is refused
        now rather than every one of its runs failing later."""
        if kind is TriggerKind.WEBHOOK:
            return
        if agent is None:
            try:
                agent = self.store.get_agent(agent_name)
            except NotFoundError:
                return  # storing the trigger reports the unknown agent
        if agent.kind is not AgentKind.LLM:
            return
        for field in ("system", "prompt"):
            text = agent.config.get(field)
            if not text:
                continue
            try:
                check_renders(str(text), payload, agent.name)
            except TemplateError as exc:
                raise ValidationError(
                    "payload", f"the {field} template of agent {agent.name!r} cannot be "
                    f"rendered with this payload: {exc}",
                    "add the missing keys to the payload, or change the template",
                ) from None

    @staticmethod
    def _time(value: str | datetime | None, timezone: str | None, field: str
              ) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return check_aware(value, field)
        return parse_at(value, timezone, field)

    def add(self, spec: TriggerInput, now: datetime | None = None,
            source: str = "cli", *, created_by: str | None = None) -> Trigger:
        return self.create(spec, now, source, created_by=created_by)[0]

    def create(self, spec: TriggerInput, now: datetime | None = None,
               source: str = "cli", *, created_by: str | None = None
               ) -> tuple[Trigger, str | None]:
        """Add a trigger; returns it and, for a webhook trigger, its new secret (the only
        time the secret is handed out). ``created_by`` (default ``source``) is who made it;
        an agent-made one (``mcp:``/``run:``) is checked against its agent's guardrails in
        the writing transaction (``GuardrailError`` when refused)."""
        now = now_or_store(self.store, now)
        new = self.build(spec, now, source=source, created_by=created_by)
        limits = Limits.from_env()
        self.store.insert_trigger(
            new.row(), now,
            check_count=lambda n: limits.check_trigger_count(spec.agent, n))
        return self.store.get_trigger(new.id), new.webhook_secret

    def resolve(self, ref: str) -> str:
        """The id of the trigger ``ref`` names: its id, or its name when exactly one trigger
        has that name (names are unique per agent only). An ambiguous name is refused
        (``ValidationError``) listing the triggers it could mean; no match is
        ``NotFoundError``. Every front door addresses a trigger through this."""
        if not isinstance(ref, str) or not (ID.match(ref) or _TRIGGER_NAME.match(ref)):
            raise NotFoundError("trigger", str(ref)[:80])
        found = self.store.trigger_refs(ref, limit=MAX_CANDIDATES + 1)
        if not found:
            raise NotFoundError("trigger", ref)
        if found[0][0] == ref or len(found) == 1:
            return found[0][0]
        listed = ", ".join(f"{tid} (agent {agent})"
                           for tid, agent, _ in found[:MAX_CANDIDATES])
        count = (f"more than {MAX_CANDIDATES}" if len(found) > MAX_CANDIDATES
                 else str(len(found)))
        raise ValidationError(
            "trigger", f"{ref!r} is the name of {count} triggers: {listed}",
            "give the trigger's id instead of its name")

    def create_many(self, specs: Sequence[TriggerInput], now: datetime | None = None,
                    source: str = "api", *, created_by: str | None = None
                    ) -> list[tuple[Trigger, str | None]]:
        """Add up to ``MAX_BATCH`` triggers, all or none: every one is validated first (a
        ``ValidationError`` names ``triggers[i].field``), the agents' trigger limits are
        checked before anything is written, and the store writes them with a constant
        number of statements. Returns each trigger (in order) and its webhook secret."""
        if not 1 <= len(specs) <= MAX_BATCH:
            raise ValidationError("triggers", f"{len(specs)} triggers given",
                                  f"give 1 to {MAX_BATCH} triggers per batch")
        if agent_made(created_by):
            # Each agent-made trigger is judged against the quota as it is written.
            raise ValidationError("triggers", "agent-made triggers are created one at a "
                                  "time", "create them one by one")
        now = now_or_store(self.store, now)
        agents: dict[str, AgentSpec | None] = {}
        new: list[NewTrigger] = []
        for i, spec in enumerate(specs):
            with located(f"triggers[{i}]"):
                check_name(spec.agent, "agent")
                if spec.agent not in agents:
                    try:
                        agents[spec.agent] = self.store.get_agent(spec.agent)
                    except NotFoundError:
                        raise ValidationError("agent", f"no agent named {spec.agent!r}",
                                              "create the agent first") from None
                new.append(self.build(spec, now, source=source, agent=agents[spec.agent],
                                      created_by=created_by))
        first: dict[str, int] = {}
        for i, trigger in enumerate(new):
            first.setdefault(trigger.agent, i)
        limits = Limits.from_env()
        stored = self.store.insert_triggers(
            [t.row() for t in new], now,
            check_total=lambda agent, total: limits.check_trigger_total(
                agent, total, f"triggers[{first[agent]}].agent"))
        return [(trigger, t.webhook_secret) for trigger, t in zip(stored, new, strict=True)]

    def get(self, trigger_id: str) -> Trigger:
        """The trigger with this id, or this unambiguous name (see ``resolve``)."""
        return self.store.get_trigger(self.resolve(trigger_id))

    def update(self, trigger_id: str, changes: Mapping[str, Any],
                       now: datetime | None = None) -> Trigger:
        """Change some of a trigger's settings (names as in ``TRIGGER_CHANGES``); the
        result is validated like a new trigger. A trigger whose schedule is unchanged
        keeps its next fire time; a new schedule starts from now."""
        unknown = sorted(set(changes) - set(TRIGGER_CHANGES))
        if unknown:
            raise ValidationError(unknown[0], "cannot be changed",
                                  "change one of " + ", ".join(TRIGGER_CHANGES))
        now = now_or_store(self.store, now)
        current = self.get(trigger_id)
        base = input_of(current)
        when = {k: v for k, v in changes.items() if k in ("cron", "every", "at")}
        if when and current.kind is TriggerKind.WEBHOOK:
            raise ValidationError("webhook", "a webhook trigger has no schedule",
                                  "create a new trigger for a schedule")
        if when:
            base = replace(base, cron=None, every=None, at=None)
        if "every" in when and "tz" not in changes:
            base = replace(base, tz=None)
        merged = replace(base, **changes)
        if not merged.paused:
            _refuse_pending(current)
        new = self.build(merged, now, source=current.source, created_by=current.created_by)
        values = new.row()
        for key in ("id", "source", "webhook_secret", "created_by"):
            values.pop(key, None)
        if current.expires_at is not None and (
                new.schedule.end_at is None or new.schedule.end_at > current.expires_at):
            # An agent-made trigger never fires after it expires, whatever is changed.
            bounded = replace(new.schedule, end_at=current.expires_at)
            values["end_at"] = current.expires_at
            values["next_fire_at"] = build_schedule(bounded).next_after(now)
            new = replace(new, schedule=bounded)
        if _when(new.schedule) == _when(schedule_spec_for(current)):
            values.pop("next_fire_at")
            values.pop("anchor_at")
            if merged.paused != current.paused and not merged.paused:
                values["next_fire_at"] = schedule_of(current).next_after(now)
        self.store.update_trigger(current.id, values, now)
        return self.store.get_trigger(current.id)

    def rotate_secret(self, trigger_id: str) -> tuple[Trigger, str]:
        """Give a webhook trigger a new signing secret; returns the trigger and the secret
        (the only time it is handed out). Deliveries signed with the old one are refused
        from now on."""
        from agentcron.services.access import new_webhook_secret

        trigger = self.get(trigger_id)
        if trigger.kind is not TriggerKind.WEBHOOK:
            raise ValidationError(
                "trigger", f"{trigger.id} is a {trigger.kind.value} trigger, which has no "
                "secret", "give a webhook trigger")
        secret = new_webhook_secret()
        self.store.set_webhook_secret(trigger.id, secret)
        return trigger, secret

    def page(self, agent: str | None = None, limit: int = 100, offset: int = 0,
             created_by: str | None = None) -> tuple[list[Trigger], int]:
        """A page of triggers (by agent, then creation) and how many there are;
        ``created_by``: exactly, or a prefix ending in ``:`` (``run:``, ``mcp:``)."""
        if agent is not None:
            check_name(agent, "agent")
        check_created_by_filter(created_by)
        check_int_between(limit, "limit", 1, 500)
        check_int_between(offset, "offset", 0, 10_000_000)
        return self.store.triggers_page(agent, limit, offset, created_by)

    def delete(self, trigger_id: str) -> str:
        """Delete a trigger (by id or name); returns its id."""
        found = self.resolve(trigger_id)
        self.store.delete_trigger(found)
        return found

    def pause(self, trigger_id: str, now: datetime | None = None) -> Trigger:
        found = self.resolve(trigger_id)
        self.store.update_trigger(found, {"paused": True}, now)
        return self.store.get_trigger(found)

    def resume(self, trigger_id: str, now: datetime | None = None, *,
               catch_up: bool = False) -> Trigger:
        """Unpause. The schedule restarts from now: times that passed while paused are not
        fired (that is what pausing means), and are not counted as missed; with
        ``catch_up``, those within the trigger's catch-up window are (``resume_at``)."""
        now = now_or_store(self.store, now)
        trigger = self.get(trigger_id)
        _refuse_pending(trigger)
        self.store.update_trigger(
            trigger.id, {"paused": False, "next_fire_at": resume_at(trigger, now, catch_up)},
            now)
        return self.store.get_trigger(trigger.id)

    def approve(self, trigger_id: str, now: datetime | None = None) -> Trigger:
        """Approve a trigger an agent made under a policy that requires approval: it is
        unpaused and fires from now on (its first time after now). ``ConflictError`` when
        it is not awaiting approval."""
        now = now_or_store(self.store, now)
        trigger = self.get(trigger_id)
        if trigger.approval != PENDING or not self.store.approve_trigger(
                trigger.id, resume_at(trigger, now), now):
            state = "was approved already" if trigger.approval == APPROVED else \
                "needs no approval"
            raise ConflictError(f"trigger {trigger.id} is not awaiting approval: it {state}")
        return self.store.get_trigger(trigger.id)

    def next_fire_times(self, trigger_id: str, count: int, now: datetime | None = None
                        ) -> list[datetime]:
        """The trigger's next ``count`` scheduled times (before jitter), from its
        ``next_fire_at`` (or from now for a paused trigger)."""
        check_int_between(count, "n", 1, 1000)
        trigger = self.get(trigger_id)
        schedule = schedule_of(trigger)
        current = trigger.next_fire_at if not trigger.paused else schedule.next_after(
            now_or_store(self.store, now))
        times: list[datetime] = []
        while current is not None and len(times) < count:
            times.append(current)
            current = schedule.next_after(current)
        return times

    def all(self, agent: str | None = None, *, preview: bool = False,
            created_by: str | None = None) -> list[Trigger]:
        """Every trigger (of ``agent``, when given), by agent then creation. ``preview``:
        for a listing, each with only the start of its payload (a longer one is a ``Cut``);
        ``created_by``: only those made by it (a prefix when it ends with ``:``)."""
        check_created_by_filter(created_by)
        return self.store.list_triggers(agent, preview=preview, created_by=created_by)

    def chain(self, trigger: Trigger) -> list[dict[str, Any]]:
        """Where ``trigger`` came from, newest first (``provenance.trigger_chain``)."""
        return trigger_chain(self.store, trigger)

    @staticmethod
    def describe(trigger: Trigger) -> str:
        """The trigger's schedule in words, e.g. "At 09:00 on Monday through Friday".
        Never raises: a listing shows a stored schedule that does not parse (a broken
        trigger) as such rather than failing."""
        try:
            return schedule_of(trigger).describe()
        except Exception:
            return "(cannot read this schedule)"



def resume_at(trigger: Trigger, now: datetime, catch_up: bool = False) -> datetime | None:
    """A resumed trigger's next fire time: its first scheduled time after ``now``, so the
    paused period is neither run nor counted missed. With ``catch_up``, its first time
    after ``now`` minus its catch-up window (but not before where it stood when paused):
    firing then runs those times by its catch-up mode (coalesce or all). A stored schedule
    that does not parse raises ``ValidationError`` (resuming cannot fix it; an update can)."""
    schedule = schedule_of(trigger)
    if not catch_up or trigger.next_fire_at is None:
        return schedule.next_after(now)
    start = schedule.next_after(now - timedelta(seconds=trigger.catchup_window_s))
    if start is None:
        return None
    return max(start, trigger.next_fire_at)


MAX_CREATED_BY = 200


def _refuse_pending(trigger: Trigger) -> None:
    """A trigger awaiting approval is released by an approval only, never by a resume."""
    if trigger.approval == PENDING:
        raise ConflictError(
            f"trigger {trigger.id} is awaiting approval; a resume does not approve it: "
            f"approve it with `agentcron triggers approve {trigger.id}` (or POST "
            f"/api/v1/triggers/{trigger.id}/approve)")


def _provenance(created_by: str) -> str:
    """Who made a trigger, as stored: printable, at most ``MAX_CREATED_BY`` characters."""
    if (not isinstance(created_by, str) or not created_by
            or len(created_by) > MAX_CREATED_BY or has_bidi_control(created_by)
            or any(ord(c) < 32 or ord(c) == 127 for c in created_by)):
        raise ValidationError("created_by", f"{str(created_by)[:80]!r} is not a valid "
                              "provenance", f"1-{MAX_CREATED_BY} printable characters, e.g. "
                              "cli, api:<token name>, run:<run id>")
    return created_by


def _check_frequency(spec: ScheduleSpec) -> None:
    """The deployment's floor on how often one trigger may fire (``services/limits.py``);
    ``spec`` is already valid."""
    limits = Limits.from_env()
    if spec.kind is TriggerKind.INTERVAL and spec.every_s is not None:
        limits.check_every(spec.every_s)
    elif spec.kind is TriggerKind.CRON and spec.cron is not None:
        limits.check_cron(CronSchedule(spec.cron, spec.timezone))


@contextmanager
def _renamed(names: dict[str, str]) -> Iterator[None]:
    """Report a field by the name the user typed (``--end``), not its column (``end_at``)."""
    try:
        yield
    except ValidationError as exc:
        if exc.field in names:
            raise ValidationError(names[exc.field], exc.message, exc.hint) from None
        raise


def _when(spec: ScheduleSpec) -> ScheduleSpec:
    """What decides when a trigger fires: its schedule but the interval anchor, which a
    re-validated trigger takes from now."""
    return replace(spec, anchor_at=None)


def schedule_spec_for(trigger: Trigger) -> ScheduleSpec:
    return ScheduleSpec(**{name: getattr(trigger, name) for name in SPEC_FIELDS})


def schedule_of(trigger: Trigger) -> Schedule:
    """The schedule of a stored trigger (already validated when it was stored)."""
    return build_schedule(schedule_spec_for(trigger))
