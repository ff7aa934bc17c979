"""Checks of user input shared by the service layer: names, ids, choices, bounded numbers,
free text, times and JSON values. Each raises ``ValidationError`` naming the field, or
``NotFoundError`` for an id that cannot exist. Every front door's input reaches these
through the services, so a value refused here is refused by the CLI, the API, webhooks,
the agents file and the Python API alike."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar

from agentcron.errors import NotFoundError, ValidationError
from agentcron.schedule.inputs import MAX_PAYLOAD_BYTES, check_instant, parse_payload

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


#: Characters that reorder or hide the text around them (bidirectional controls, and the
#: invisible marks that steer them): a name with one can read as another name.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")


def has_bidi_control(text: str) -> bool:
    """Also True for a lone surrogate, which no database stores as text either."""
    if not BIDI_CONTROLS.isdisjoint(text):
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_printable(value: str | None, field: str, limit: int) -> str | None:
    """Free text (None passes): at most ``limit`` characters, no control characters but
    tab and line breaks, no bidirectional controls."""
    if value is None:
        return None
    if len(value) > limit or any(ord(c) < 32 and c not in "\t\n\r" for c in value) \
            or has_bidi_control(value):
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


MAX_BREAKER = 10_000
"""The largest ``pause_after_failures`` (a circuit breaker's threshold)."""


def check_breaker(value: int | None, field: str = "pause-after-failures") -> int | None:
    """A circuit breaker's threshold: None (no breaker of its own) or 1..``MAX_BREAKER``."""
    if value is None:
        return None
    return check_int_between(value, field, 1, MAX_BREAKER)


def check_aware(value: datetime | None, field: str, example: str = "+00:00"
                ) -> datetime | None:
    """A time with a UTC offset, in the accepted range (1970..9000, see
    ``schedule.inputs.EARLIEST``/``LATEST``), returned in UTC; None passes."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(field, f"{value!r} is not a time", f"e.g. 2026-12-01T09:00{example}")
    if value.utcoffset() is None:
        raise ValidationError(field, "time has no UTC offset", f"add one, e.g. {example}")
    return check_instant(value, field)


#: Deepest nesting of objects and arrays accepted in a JSON value.
MAX_JSON_DEPTH = 64
_JSON_HINT = ("give plain JSON: objects and arrays at most 64 deep, finite numbers, "
              "text without lone surrogates, at most 256 KiB")


def check_json(value: Any, field: str = "payload", max_bytes: int = MAX_PAYLOAD_BYTES) -> Any:
    """``value`` if it is a JSON value every backend stores and every reader reads back:
    only dicts with text keys, lists (tuples), text, finite numbers, booleans and None;
    nested at most ``MAX_JSON_DEPTH`` deep; no text with a lone surrogate (PostgreSQL
    refuses ``\\ud800``, and no UTF-8 encoder writes it); at most ``max_bytes`` as UTF-8
    JSON. The walk is iterative, so a value nested 100,000 deep is refused, not a
    ``RecursionError``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item, field)
        elif item is None or isinstance(item, (bool, int)):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(field, f"contains {item!r}, which is not JSON",
                                      "use null or a finite number")
        elif isinstance(item, (dict, list, tuple)):
            if depth > MAX_JSON_DEPTH:
                raise ValidationError(field, f"is nested more than {MAX_JSON_DEPTH} levels deep",
                                      _JSON_HINT)
            if isinstance(item, dict):
                for key, member in item.items():
                    if not isinstance(key, str):
                        raise ValidationError(field, f"has a key {key!r} that is not text",
                                              "use text keys")
                    _check_text(key, field)
                    stack.append((member, depth + 1))
            else:
                stack.extend((member, depth + 1) for member in item)
        else:
            raise ValidationError(field, f"contains a {type(item).__name__}, which is not JSON",
                                  _JSON_HINT)
    try:
        size = len(json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8"))
    except ValueError:  # an int too long to write as text
        raise ValidationError(field, "contains a number too long to write",
                              "use at most 4300 digits") from None
    if size > max_bytes:
        raise ValidationError(field, f"is {size:,} bytes; the limit is {max_bytes:,}",
                              "pass a reference (a URL or an id) instead of the data")
    return value


def _check_text(text: str, field: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field, "contains a lone surrogate (e.g. \\ud800), which is "
                              "not text", "send valid Unicode text") from None


def check_payload(value: Any, is_json_text: bool = False, field: str = "payload") -> Any:
    """A payload as given: JSON text (``is_json_text``, from a command line) is parsed
    first; either way the value must pass ``check_json``."""
    if is_json_text and value is not None:
        if not isinstance(value, str):
            raise ValidationError(field, "is not JSON text", 'e.g. {"topic": "news"}')
        value = parse_payload(value, field)
    return check_json(value, field)


def now_or_store(store: Store, now: datetime | None) -> datetime:
    """``now`` when the caller fixed it (tests, one instant for a whole sync), else the
    database's clock, which every node agrees on."""
    return now if now is not None else store.now()


@contextmanager
def located(where: str) -> Iterator[None]:
    """Prefix a ValidationError's field with where the value is: an item of a batch
    (``triggers[3]``) or a place in a declarative file (``agents.digest``)."""
    try:
        yield
    except ValidationError as exc:
        raise ValidationError(f"{where}.{exc.field}", exc.message, exc.hint) from None
