"""Trigger specs: the stored fields of a trigger turned into a ``Schedule``, and validation
of the user input that produces them.

``build_schedule`` is what the ticker calls for every due trigger, so it is memoised on the
(frozen, hashable) spec. ``validate_schedule`` is what add/update call before writing: it
also checks the things that depend on ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from typing import Any

from agentcron.errors import ValidationError
from agentcron.models import TriggerKind
from agentcron.schedule.base import NeverSchedule, Schedule
from agentcron.schedule.bounded import Bounded
from agentcron.schedule.cron import CronSchedule
from agentcron.schedule.inputs import parse_at, parse_payload
from agentcron.schedule.interval import IntervalSchedule
from agentcron.schedule.once import OnceSchedule
from agentcron.schedule.zones import EPSILON, ensure_utc, get_zone

__all__ = [
    "SPEC_FIELDS",
    "ScheduleSpec",
    "build_schedule",
    "parse_at",
    "parse_payload",
    "schedule_of_fields",
    "validate_schedule",
]

_KIND_FIELD = {TriggerKind.CRON: "cron", TriggerKind.INTERVAL: "every", TriggerKind.ONCE: "at"}
_ONE_OF_HINT = "give exactly one of cron, every or at (none for a webhook trigger)"


@dataclass(frozen=True)
class ScheduleSpec:
    """The schedule-defining fields of a trigger. Datetimes must be timezone-aware."""

    kind: TriggerKind
    cron: str | None = None
    timezone: str = "UTC"
    every_s: float | None = None
    at: datetime | None = None
    anchor_at: datetime | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None


# The trigger columns a schedule is built from (stored under the same names).
SPEC_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ScheduleSpec))


def build_schedule(spec: ScheduleSpec) -> Schedule:
    """The schedule for ``spec``: cron, interval (anchored at ``anchor_at or start_at``),
    once, or for webhooks one that never fires; clipped to ``[start_at, end_at]``.

    Raises ``ValidationError`` for a spec that cannot be built (wrong fields for its kind,
    bad expression or zone, interval without an anchor). Memoised on the spec's fields
    (``schedule_of_fields``): the result is immutable and shared.
    """
    return schedule_of_fields(tuple([getattr(spec, name) for name in SPEC_FIELDS]))


@lru_cache(maxsize=16_384)
def schedule_of_fields(values: tuple[Any, ...]) -> Schedule:
    """``build_schedule`` for the spec whose fields, in ``SPEC_FIELDS`` order, are
    ``values``: a stored trigger's columns as read (``kind`` as its text will do).

    The one memo of built schedules. Keyed by the fields rather than a ``ScheduleSpec``
    because the firing path looks up every due row's schedule, and building a spec (and
    hashing it) to find one was most of what a lookup cost; rows of a batch often share a
    schedule (an agents file's triggers, a fleet on one cron)."""
    spec = dict(zip(SPEC_FIELDS, values, strict=True))
    return _build(ScheduleSpec(**{**spec, "kind": TriggerKind(spec["kind"])}))


def _build(spec: ScheduleSpec) -> Schedule:
    _check_fields(spec)
    for name in ("at", "anchor_at", "start_at", "end_at"):
        value = getattr(spec, name)
        if value is not None and value.utcoffset() is None:
            raise ValidationError(
                name, f"{value.isoformat()} has no UTC offset", "add an offset such as +00:00"
            )
    inner: Schedule
    if spec.kind == TriggerKind.CRON:
        assert spec.cron is not None  # _check_fields
        inner = CronSchedule(spec.cron, spec.timezone)
    elif spec.kind == TriggerKind.INTERVAL:
        assert spec.every_s is not None
        anchor = spec.anchor_at or spec.start_at
        if anchor is None:
            raise ValidationError(
                "anchor_at", "an interval trigger needs an anchor", "set anchor_at or start_at"
            )
        inner = IntervalSchedule(spec.every_s, anchor)
    elif spec.kind == TriggerKind.ONCE:
        assert spec.at is not None
        inner = OnceSchedule(spec.at)
    else:
        return NeverSchedule()
    if spec.start_at is None and spec.end_at is None:
        return inner
    return Bounded(inner, spec.start_at, spec.end_at)


def _check_fields(spec: ScheduleSpec) -> None:
    """Exactly the one when-field its kind needs (cron / every / at), none for webhooks."""
    given = {"cron": spec.cron, "every": spec.every_s, "at": spec.at}
    wanted = _KIND_FIELD.get(spec.kind)
    trigger = f"{'an' if spec.kind == TriggerKind.INTERVAL else 'a'} {spec.kind} trigger"
    for name, value in given.items():
        if name == wanted and value is None:
            raise ValidationError(name, f"{trigger} needs {name}", _ONE_OF_HINT)
        if name != wanted and value is not None:
            raise ValidationError(name, f"{trigger} does not take {name}", _ONE_OF_HINT)


def validate_schedule(spec: ScheduleSpec, now: datetime) -> Schedule:
    """Build ``spec`` and check it makes sense at ``now``; return the schedule.

    On top of ``build_schedule``'s checks: the zone exists; ``end_at`` is after
    ``start_at``; a once-trigger is in the future; a cron or interval trigger fires at least
    once at or after ``max(now, start_at)`` and no later than ``end_at``.
    """
    now = ensure_utc(now, "now")
    get_zone(spec.timezone)  # every kind: a bad zone is a bad zone even if unused
    schedule = build_schedule(spec)
    start, end = spec.start_at, spec.end_at
    if start is not None and end is not None and end <= start:
        raise ValidationError(
            "end_at",
            f"{_iso(end)} is not after start_at {_iso(start)}",
            "give an end_at later than start_at",
        )
    if spec.kind == TriggerKind.ONCE:
        assert spec.at is not None
        if spec.at <= now:
            raise ValidationError("at", f"{_iso(spec.at)} is in the past", "give a future time")
        if start is not None and spec.at < start:
            raise ValidationError(
                "at", f"{_iso(spec.at)} is before start_at {_iso(start)}", "drop start_at"
            )
    if spec.kind == TriggerKind.WEBHOOK:
        return schedule
    if end is not None and end <= now:
        raise ValidationError("end_at", f"{_iso(end)} is in the past", "give a future end_at")
    if schedule.next_after(now) is None:
        _explain_never(spec, schedule, now)
    return schedule


def _explain_never(spec: ScheduleSpec, schedule: Schedule, now: datetime) -> None:
    """Raise the most useful "never fires" error for a schedule with no time after ``now``."""
    inner = schedule.inner if isinstance(schedule, Bounded) else schedule
    from_ = max(now, spec.start_at - EPSILON) if spec.start_at is not None else now
    first = inner.next_after(from_)
    if first is not None and spec.end_at is not None:
        raise ValidationError(
            "end_at",
            f"never fires: the first fire time {_iso(first)} is after end_at {_iso(spec.end_at)}",
            "move end_at later or start_at earlier",
        )
    field = _KIND_FIELD.get(spec.kind, "at")
    what = (
        "no time matches in the next 50 years" if spec.kind == TriggerKind.CRON else "no time left"
    )
    raise ValidationError(field, f"never fires: {what}", "check the expression and its dates")


def _iso(value: datetime) -> str:
    return ensure_utc(value).isoformat()
