"""Checks of user input shared by the service layer (``services``, ``services_runs``,
``access``): names, ids, choices, bounded numbers and free text. Each raises
``ValidationError`` naming the field, or ``NotFoundError`` for an id that cannot exist."""

from __future__ import annotations

import re
from typing import Any

from agentcron.errors import NotFoundError, ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
_NAME_HINT = "1-100 letters, digits, '_', '.' or '-', starting with a letter or digit"
ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
RUN_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_name(value: str, field: str) -> str:
    if not _NAME.match(value or ""):
        raise ValidationError(field, f"{value!r} is not a valid name", _NAME_HINT)
    return value


def known_id(value: str, kind: str) -> str:
    """An id as typed; one that cannot exist (bad characters, too long) is simply not
    found, and never reaches the database."""
    pattern = RUN_ID if kind == "run" else ID
    if not isinstance(value, str) or not pattern.match(value):
        raise NotFoundError(kind, str(value)[:80])
    return value


def _text(value: str | None, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if len(value) > limit or any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValidationError(field, "is too long or contains control characters",
                              f"up to {limit} printable characters")
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
