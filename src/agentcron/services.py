"""The operations users ask for, shared by the CLI, the HTTP API and the Python API, so a
rule lives in one place: every input is validated here, before the store is touched, and a
bad input raises ``ValidationError`` naming the field, with nothing written."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from agentcron.agents.validation import validate_agent_config
from agentcron.config import AgentsFile
from agentcron.errors import ValidationError
from agentcron.ids import new_trigger_id
from agentcron.models import (
    AgentKind,
    AgentSpec,
    CatchupMode,
    OverlapPolicy,
    Trigger,
    TriggerKind,
)
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
from agentcron.store import Store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_TRIGGER_NAME = re.compile(r"^(?=\S)[^\x00-\x1f\x7f]{1,100}(?<=\S)$")
_NAME_HINT = "1-100 letters, digits, '_', '.' or '-', starting with a letter or digit"

Duration = str | int | float


def check_name(value: str, field: str) -> str:
    if not _NAME.match(value or ""):
        raise ValidationError(field, f"{value!r} is not a valid name", _NAME_HINT)
    return value


def _choice(value: str, enum: type[Any], field: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = "|".join(member.value for member in enum)
        raise ValidationError(field, f"{value!r} is not one of {allowed}",
                              f"use one of {allowed}") from None


def _bounded_int(value: int, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(field, f"{value!r} is out of range", f"give {low}..{high}")
    return value


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
    overlap: str = "skip"
    catchup: Duration = "10m"
    catchup_mode: str = "coalesce"
    jitter: Duration = 0
    start: str | datetime | None = None
    end: str | datetime | None = None
    name: str | None = None
    paused: bool = False


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


class Services:
    def __init__(self, store: Store) -> None:
        self.store = store

    def now(self, now: datetime | None = None) -> datetime:
        return now if now is not None else self.store.now()

    # -- agents -----------------------------------------------------------------------------

    def build_agent(self, name: str, kind: str | AgentKind, config: dict[str, Any], *,
                    max_concurrency: int = 1, timeout: Duration = "5m", max_attempts: int = 3,
                    zombie_timeout: Duration | None = None, retry_backoff: Duration = "2s",
                    description: str | None = None, source: str = "cli") -> AgentSpec:
        """Validate an agent definition without storing it."""
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
            description=description,
            source=source,
        )

    def add_agent(self, spec: AgentSpec, now: datetime | None = None) -> AgentSpec:
        """Create or replace an agent (validated with ``build_agent``)."""
        self.store.upsert_agent(spec, now)
        return self.store.get_agent(spec.name)

    def remove_agent(self, name: str, now: datetime | None = None) -> int:
        return self.store.delete_agent(name, now)

    # -- triggers ---------------------------------------------------------------------------

    def build_trigger(self, spec: TriggerInput, now: datetime, *, source: str = "cli"
                      ) -> dict[str, Any]:
        """Validate a trigger and return the row to store, with its first fire time."""
        check_name(spec.agent, "agent")
        if spec.name is not None and not _TRIGGER_NAME.match(spec.name):
            raise ValidationError("name", f"{spec.name!r} is not a valid trigger name",
                                  "1-100 printable characters, no leading/trailing space")
        given = [f for f, v in (("cron", spec.cron), ("every", spec.every), ("at", spec.at))
                 if v is not None]
        if len(given) != 1:
            raise ValidationError(
                "schedule",
                "no schedule given" if not given else f"{' and '.join(given)} given together",
                "give exactly one of --cron EXPR, --every 30s or --at ISO-TIME",
            )
        if spec.tz is not None and spec.every is not None:
            raise ValidationError("tz", "a time zone does not apply to --every",
                                  "use --tz with --cron or --at")
        timezone = spec.tz or "UTC"
        start = self._time(spec.start, timezone, "start")
        end = self._time(spec.end, timezone, "end")
        extra: dict[str, Any]
        if spec.cron is not None:
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
            "overlap": _choice(spec.overlap, OverlapPolicy, "overlap").value,
            "catchup_window_s": parse_duration(spec.catchup, "catchup", allow_zero=True),
            "catchup_mode": _choice(spec.catchup_mode, CatchupMode, "catchup-mode").value,
            "paused": spec.paused,
            "next_fire_at": schedule.next_after(now),
            "source": source,
        }

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
        now = self.now(now)
        values = self.build_trigger(spec, now, source=source)
        self.store.insert_trigger(values, now)
        return self.store.get_trigger(values["id"])

    def pause_trigger(self, trigger_id: str, now: datetime | None = None) -> Trigger:
        self.store.update_trigger(trigger_id, {"paused": True}, now)
        return self.store.get_trigger(trigger_id)

    def resume_trigger(self, trigger_id: str, now: datetime | None = None) -> Trigger:
        """Unpause. The schedule restarts from now: times that passed while paused are not
        fired (that is what pausing means), and are not counted as missed."""
        now = self.now(now)
        trigger = self.store.get_trigger(trigger_id)
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
        trigger = self.store.get_trigger(trigger_id)
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
                    description=entry.description, source=source,
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
                        now, source=source,
                    ))
        return self.store.apply_declared(source, specs, rows, now)

    def describe(self, trigger: Trigger) -> str:
        return schedule_of(trigger).describe()


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


def schedule_spec_for(trigger: Trigger) -> ScheduleSpec:
    return ScheduleSpec(**{name: getattr(trigger, name) for name in SPEC_FIELDS})


def schedule_of(trigger: Trigger) -> Schedule:
    """The schedule of a stored trigger (already validated when it was stored)."""
    return build_schedule(schedule_spec_for(trigger))
