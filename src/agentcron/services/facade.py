"""The operations users ask for, shared by the CLI, the HTTP API and the Python API, so a
rule lives in one place: every input is validated here, before the store is touched, and a
bad input raises ``ValidationError`` naming the field, with nothing written.

Two neighbours hold the rest of the service layer: ``agentcron.services.access`` (API tokens and
dashboard sessions) and ``agentcron.services.overview`` (the numbers the dashboard and ``/stats``
show)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from agentcron.errors import NotFoundError, ValidationError
from agentcron.executors.templates import TemplateError, check_renders
from agentcron.executors.validation import validate_agent_config
from agentcron.models import (
    AgentKind,
    AgentSpec,
    CatchupMode,
    OverlapPolicy,
    Trigger,
    TriggerKind,
)
from agentcron.rules.budgets import parse_budget
from agentcron.rules.ids import new_trigger_id
from agentcron.rules.pricing import parse_price
from agentcron.schedule.base import Schedule
from agentcron.schedule.durations import parse_duration
from agentcron.schedule.spec import (
    SPEC_FIELDS,
    ScheduleSpec,
    build_schedule,
    parse_at,
    parse_payload,
    validate_schedule,
)
from agentcron.services.agents_file import AgentsFile
from agentcron.services.runs import RunServices
from agentcron.services.validate import (
    _bounded_int,
    _choice,
    _text,
    check_name,
    known_id,
)

_TRIGGER_NAME = re.compile(r"^(?=\S)[^\x00-\x1f\x7f]{1,100}(?<=\S)$")
MAX_DESCRIPTION = 2000

Duration = str | int | float


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


# The fields ``update_trigger`` takes (a PATCH), by the names TriggerInput uses.
TRIGGER_CHANGES = ("cron", "every", "at", "tz", "payload", "overlap", "catchup",
                   "catchup_mode", "jitter", "start", "end", "name", "paused")


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


class Services(RunServices):
    """Agents and triggers here; runs, nodes and webhook deliveries in ``RunServices``."""

    # -- agents -----------------------------------------------------------------------------

    def build_agent(self, name: str, kind: str | AgentKind, config: dict[str, Any], *,
                    max_concurrency: int = 1, timeout: Duration = "5m", max_attempts: int = 3,
                    zombie_timeout: Duration | None = None, retry_backoff: Duration = "2s",
                    description: str | None = None, source: str = "cli",
                    budget: Mapping[str, Any] | None = None, on_budget: str | None = None
                    ) -> AgentSpec:
        """Validate an agent definition without storing it. ``budget`` holds optional
        limits (see ``budgets.parse_budget``), ``on_budget`` is ``skip`` or ``pause``."""
        check_name(name, "name")
        agent_kind = _choice(kind.value if isinstance(kind, AgentKind) else kind, AgentKind,
                             "kind")
        return AgentSpec(
            name=name,
            kind=agent_kind,
            config=validate_agent_config(agent_kind, config),
            max_concurrency=_bounded_int(max_concurrency, "max-concurrency", 1, 100_000),
            timeout_s=parse_duration(timeout, "timeout"),
            max_attempts=_bounded_int(max_attempts, "max-attempts", 1, 100),
            zombie_timeout_s=(
                None if zombie_timeout is None
                else parse_duration(zombie_timeout, "zombie-timeout")
            ),
            retry_backoff_s=parse_duration(retry_backoff, "retry-backoff"),
            description=_text(description, "description", MAX_DESCRIPTION),
            source=source,
            budget=parse_budget(budget, on_budget),
        )

    def add_agent(self, spec: AgentSpec, now: datetime | None = None) -> AgentSpec:
        """Create or replace an agent (validated with ``build_agent``)."""
        self.store.upsert_agent(spec, now)
        return self.store.get_agent(spec.name)

    def remove_agent(self, name: str, now: datetime | None = None) -> int:
        return self.store.delete_agent(name, now)

    # -- triggers ---------------------------------------------------------------------------

    def build_trigger(self, spec: TriggerInput, now: datetime, *, source: str = "cli",
                      agent: AgentSpec | None = None) -> dict[str, Any]:
        """Validate a trigger and return the row to store, with its first fire time.
        ``agent`` is the trigger's agent when the caller has it (else it is read from the
        store): an llm agent's templates must render with the trigger's payload."""
        check_name(spec.agent, "agent")
        if spec.name is not None and not _TRIGGER_NAME.match(spec.name):
            raise ValidationError("name", f"{spec.name!r} is not a valid trigger name",
                                  "1-100 printable characters, no leading/trailing space")
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
        payload = (
            parse_payload(spec.payload) if spec.payload_is_json_text else spec.payload
        )
        self._check_templates(spec.agent, kind, payload, agent)
        overlap = spec.overlap or ("allow" if spec.webhook else "skip")
        secret: dict[str, Any] = {}
        if spec.webhook:
            from agentcron.services.access import new_webhook_secret

            secret = {"webhook_secret": new_webhook_secret()}
        return {
            "id": new_trigger_id(),
            "agent": spec.agent,
            "name": spec.name,
            "kind": kind.value,
            "cron": schedule_spec.cron,
            "timezone": timezone,
            "every_s": schedule_spec.every_s,
            "at": schedule_spec.at,
            "anchor_at": schedule_spec.anchor_at,
            "start_at": start,
            "end_at": end,
            "jitter_s": parse_duration(spec.jitter, "jitter", allow_zero=True),
            "payload": payload,
            "overlap": _choice(overlap, OverlapPolicy, "overlap").value,
            "catchup_window_s": parse_duration(spec.catchup, "catchup", allow_zero=True),
            "catchup_mode": _choice(spec.catchup_mode, CatchupMode, "catchup-mode").value,
            "paused": spec.paused,
            "next_fire_at": schedule.next_after(now),
            "source": source,
            **secret,
        }

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
            if isinstance(value, datetime) and value.utcoffset() is None:
                raise ValidationError(field, "time has no UTC offset", "add one, e.g. +00:00")
            return value
        return parse_at(value, timezone, field)

    def add_trigger(self, spec: TriggerInput, now: datetime | None = None,
                    source: str = "cli") -> Trigger:
        return self.create_trigger(spec, now, source)[0]

    def create_trigger(self, spec: TriggerInput, now: datetime | None = None,
                       source: str = "cli") -> tuple[Trigger, str | None]:
        """Add a trigger; returns it and, for a webhook trigger, its new secret (the only
        time the secret is handed out)."""
        now = self.now(now)
        values = self.build_trigger(spec, now, source=source)
        self.store.insert_trigger(values, now)
        return self.store.get_trigger(values["id"]), values.get("webhook_secret")

    def get_trigger(self, trigger_id: str) -> Trigger:
        return self.store.get_trigger(known_id(trigger_id, "trigger"))

    def update_trigger(self, trigger_id: str, changes: Mapping[str, Any],
                       now: datetime | None = None) -> Trigger:
        """Change some of a trigger's settings (names as in ``TRIGGER_CHANGES``); the
        result is validated like a new trigger. A trigger whose schedule is unchanged
        keeps its next fire time; a new schedule starts from now."""
        unknown = sorted(set(changes) - set(TRIGGER_CHANGES))
        if unknown:
            raise ValidationError(unknown[0], "cannot be changed",
                                  "change one of " + ", ".join(TRIGGER_CHANGES))
        now = self.now(now)
        current = self.get_trigger(trigger_id)
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
        values = self.build_trigger(merged, now, source=current.source)
        for key in ("id", "source", "webhook_secret"):
            values.pop(key, None)
        if all(getattr(current, f) == values[f] for f in _SCHEDULE_FIELDS):
            values.pop("next_fire_at")
            values.pop("anchor_at")
            if merged.paused != current.paused and not merged.paused:
                values["next_fire_at"] = schedule_of(current).next_after(now)
        self.store.update_trigger(current.id, values, now)
        return self.store.get_trigger(current.id)

    def triggers_page(self, agent: str | None = None, limit: int = 100, offset: int = 0
                      ) -> tuple[list[Trigger], int]:
        """A page of triggers (by agent, then creation) and how many there are."""
        if agent is not None:
            check_name(agent, "agent")
        _bounded_int(limit, "limit", 1, 500)
        _bounded_int(offset, "offset", 0, 10_000_000)
        return self.store.triggers_page(agent, limit, offset)

    def delete_trigger(self, trigger_id: str) -> None:
        self.store.delete_trigger(known_id(trigger_id, "trigger"))

    def pause_trigger(self, trigger_id: str, now: datetime | None = None) -> Trigger:
        self.store.update_trigger(known_id(trigger_id, "trigger"), {"paused": True}, now)
        return self.store.get_trigger(trigger_id)

    def resume_trigger(self, trigger_id: str, now: datetime | None = None) -> Trigger:
        """Unpause. The schedule restarts from now: times that passed while paused are not
        fired (that is what pausing means), and are not counted as missed."""
        now = self.now(now)
        trigger = self.get_trigger(trigger_id)
        schedule = schedule_of(trigger)
        self.store.update_trigger(
            trigger_id, {"paused": False, "next_fire_at": schedule.next_after(now)}, now
        )
        return self.store.get_trigger(trigger_id)

    def next_fire_times(self, trigger_id: str, count: int, now: datetime | None = None
                        ) -> list[datetime]:
        """The trigger's next ``count`` scheduled times (before jitter), from its
        ``next_fire_at`` (or from now for a paused trigger)."""
        _bounded_int(count, "n", 1, 1000)
        trigger = self.get_trigger(trigger_id)
        schedule = schedule_of(trigger)
        current = trigger.next_fire_at if not trigger.paused else schedule.next_after(
            self.now(now))
        times: list[datetime] = []
        while current is not None and len(times) < count:
            times.append(current)
            current = schedule.next_after(current)
        return times

    def sync_agents_file(self, declared: AgentsFile, source: str = "file",
                         now: datetime | None = None) -> dict[str, int]:
        """Validate every agent and trigger in the file first (a bad entry writes nothing,
        and the error names its place in the file), then sync them in one transaction."""
        now = self.now(now)
        specs: list[AgentSpec] = []
        rows: list[dict[str, Any]] = []
        for name, entry in declared.agents.items():
            where = f"agents.{name}"
            kind, config = entry.kind_and_config(where)
            with _located(where):
                specs.append(self.build_agent(
                    name, kind, config, max_concurrency=entry.max_concurrency,
                    timeout=entry.timeout, max_attempts=entry.max_attempts,
                    zombie_timeout=entry.zombie_timeout, retry_backoff=entry.retry_backoff,
                    description=entry.description, source=source, budget=entry.budget,
                    on_budget=entry.on_budget,
                ))
            for i, t in enumerate(entry.triggers):
                with _located(f"{where}.triggers[{i}]"):
                    rows.append(self.build_trigger(
                        with_default_name(TriggerInput(
                            agent=name, cron=t.cron, every=t.every, at=t.at, tz=t.tz,
                            payload=t.payload, overlap=t.overlap, catchup=t.catchup,
                            catchup_mode=t.catchup_mode, jitter=t.jitter, start=t.start,
                            end=t.end, name=t.name, paused=t.paused,
                        )),
                        now, source=source, agent=specs[-1],
                    ))
        prices = []
        for model, price in declared.prices.items():
            with _located(f'prices."{model}"'):
                prices.append(parse_price(model, price.input_per_mtok, price.output_per_mtok,
                                          source))
        return self.store.apply_declared(source, specs, rows, now, declared_prices=prices)

    def describe(self, trigger: Trigger) -> str:
        return schedule_of(trigger).describe()

    def get_agent(self, name: str) -> AgentSpec:
        check_name(name, "name")
        return self.store.get_agent(name)



@contextmanager
def _renamed(names: dict[str, str]) -> Iterator[None]:
    """Report a field by the name the user typed (``--end``), not its column (``end_at``)."""
    try:
        yield
    except ValidationError as exc:
        if exc.field in names:
            raise ValidationError(names[exc.field], exc.message, exc.hint) from None
        raise


@contextmanager
def _located(where: str) -> Iterator[None]:
    """Prefix a ValidationError's field with where it is in a declarative file."""
    try:
        yield
    except ValidationError as exc:
        raise ValidationError(f"{where}.{exc.field}", exc.message, exc.hint) from None


# Fields that define when a trigger fires (as in ``store.catalog.SCHEDULE_FIELDS``).
_SCHEDULE_FIELDS = ("kind", "cron", "timezone", "every_s", "at", "start_at", "end_at")


def schedule_spec_for(trigger: Trigger) -> ScheduleSpec:
    return ScheduleSpec(**{name: getattr(trigger, name) for name in SPEC_FIELDS})


def schedule_of(trigger: Trigger) -> Schedule:
    """The schedule of a stored trigger (already validated when it was stored)."""
    return build_schedule(schedule_spec_for(trigger))
