"""Checks of user input shared by the service layer: names, ids, choices, bounded numbers,
free text and times. Each raises ``ValidationError`` naming the field, or ``NotFoundError``
for an id that cannot exist."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from agentcron.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from agentcron.store import Store

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


E = TypeVar("E", bound=Enum)


def check_printable(value: str | None, field: str, limit: int) -> str | None:
    """Free text (None passes): at most ``limit`` characters, no control characters but
    tab and line breaks."""
    if value is None:
        return None
    if len(value) > limit or any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValidationError(field, "is too long or contains control characters",
                              f"up to {limit} printable characters")
    return value


def check_one_of(value: str, enum: type[E], field: str) -> E:
    """The member of ``enum`` whose value is ``value``."""
    try:
        return enum(value)
    except ValueError:
        raise _not_one_of(value, [str(member.value) for member in enum], field) from None


def check_in(value: str, allowed: Iterable[str], field: str) -> str:
    """``value`` if it is one of ``allowed``."""
    choices = list(allowed)
    if value not in choices:
        raise _not_one_of(value, choices, field)
    return value


def _not_one_of(value: str, choices: list[str], field: str) -> ValidationError:
    listed = "|".join(choices)
    return ValidationError(field, f"{value!r} is not one of {listed}", f"use one of {listed}")


def check_int_between(value: int, field: str, low: int, high: int) -> int:
    """An int (not a bool) in ``low..high``."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValidationError(field, f"{value!r} is out of range", f"give {low}..{high}")
    return value


def check_aware(value: datetime | None, field: str, example: str = "+00:00"
                ) -> datetime | None:
    """A time with a UTC offset (None passes)."""
    if value is not None and value.utcoffset() is None:
        raise ValidationError(field, "time has no UTC offset", f"add one, e.g. {example}")
    return value


def now_or_store(store: Store, now: datetime | None) -> datetime:
    """``now`` when the caller fixed it (tests, one instant for a whole sync), else the
    database's clock, which every node agrees on."""
    return now if now is not None else store.now()
