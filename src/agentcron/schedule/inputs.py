"""Parsing of the user-typed values a trigger carries besides its schedule: an ``at`` time
and a JSON payload. Errors name the field and say how to fix the input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from agentcron.errors import ValidationError
from agentcron.schedule.zones import get_zone

#: Largest payload accepted, in bytes of UTF-8.
MAX_PAYLOAD_BYTES = 256 * 1024

#: The instants agentcron accepts, in UTC. Every one of them is stored and read back
#: unchanged by both backends, and a schedule's arithmetic from the last of them (an
#: interval, a catch-up window, a 50-year cron search) stays far from ``datetime.max``.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
_RANGE_HINT = "give a time between 1970-01-01T00:00:00Z and 9000-12-31T23:59:59Z"

_AT_HINT = "use ISO 8601, e.g. 2026-12-01T09:00:00+01:00, or 2026-12-01T09:00 with --tz"


def parse_at(text: str, timezone: str | None, field: str = "at") -> datetime:
    """Parse a point in time; return it in UTC.

    Accepts ISO 8601 with an offset (``2026-12-01T09:00:00+01:00``, ``...Z``), where the
    offset wins over ``timezone``; or a local time without offset plus an IANA ``timezone``
    (``2026-12-01T09:00`` in ``Europe/Berlin``). A local time that does not exist (skipped
    by a DST change) or exists twice (repeated by one) is an error naming ``field``, as is
    a local time with no zone at all.
    """
    value = text.strip() if isinstance(text, str) else ""
    if not value:
        raise ValidationError(field, "is empty", _AT_HINT)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, f"'{value}' is not an ISO 8601 time", _AT_HINT) from None
    if parsed.tzinfo is not None:
        return check_instant(parsed, field)
    if timezone is None:
        raise ValidationError(
            field,
            f"'{value}' has no UTC offset and no time zone was given",
            "add an offset such as +01:00 or Z, or give a time zone with --tz",
        )
    zone = get_zone(timezone)
    first, second = parsed.replace(tzinfo=zone, fold=0), parsed.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        # Round-tripping through UTC changes a wall time that does not exist (the gap) and
        # keeps one that exists twice (the overlap).
        if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != parsed:
            raise ValidationError(
                field,
                f"'{value}' does not exist in {timezone}: the clocks skip it (daylight saving)",
                "pick a time outside the skipped hour, or give an explicit offset",
            )
        raise ValidationError(
            field,
            f"'{value}' happens twice in {timezone}: the clocks repeat it (daylight saving)",
            f"give an explicit offset: {first.isoformat()} or {second.isoformat()}",
        )
    return check_instant(first, field)


def check_instant(value: datetime, field: str) -> datetime:
    """``value`` (aware) in UTC, if it lies between ``EARLIEST`` and ``LATEST``; else a
    ``ValidationError`` naming ``field``. A time near ``datetime.min``/``max`` whose offset
    pushes it past them is refused the same way, not an ``OverflowError``."""
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValidationError(field, f"{value.isoformat()} is outside the accepted range",
                              _RANGE_HINT)
    return utc


def parse_payload(text: str | None, field: str = "payload") -> Any:
    """Parse a JSON payload; None stays None (no payload).

    Rejects more than 256 KiB, invalid JSON (the message gives line, column and character
    position), and NaN/Infinity, which are not JSON and which PostgreSQL refuses to store.
    """
    if text is None:
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        raise ValidationError(
            field,
            f"is {size:,} bytes; the limit is {MAX_PAYLOAD_BYTES:,} (256 KiB)",
            "pass a reference (a URL or an id) instead of the data",
        )
    if not text.strip():
        raise ValidationError(field, "is empty", 'give JSON, e.g. {"topic": "news"}, or null')
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            field,
            f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"(char {exc.pos})",
            'give JSON, e.g. {"topic": "news"}',
        ) from None
    except ValueError as exc:
        raise ValidationError(field, f"is not valid JSON: {exc}", "use null or a number") from None
    except RecursionError:
        # The parser recurses once per level: a document nested thousands deep is refused
        # here, before any checker walks it.
        raise ValidationError(field, "is nested too deeply",
                              "nest objects and arrays at most 64 levels deep") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")
