"""Durations as people type them (``30s``, ``5m``, ``1h30m``, ``500ms``) and back.

Contract: ``parse_duration`` returns seconds as a float, or raises ``ValidationError`` naming
the caller's field with a hint. ``format_duration`` writes the same notation, rounded to the
millisecond, so ``parse_duration(format_duration(x)) == x`` for whole milliseconds.
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

from agentcron.errors import ValidationError

HINT = "use a number with a unit, e.g. 30s, 5m, 2h, 1d"

#: Ten years (of 365.25 days) in seconds: longer than any schedule means and short enough
#: that adding it to "now" can never overflow ``datetime``.
MAX_SECONDS = 10 * 36525 * 864

# Largest unit first: a compound must list its units in this order, each at most once.
_UNITS: dict[str, int] = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}
_ORDER = list(_UNITS)
_NUMBER = r"\d+(?:\.\d+)?|\.\d+"
_PART = re.compile(rf"({_NUMBER})\s*([a-z]*)\s*")
_PLAIN = re.compile(rf"(?:{_NUMBER})")


def parse_duration(value: str | int | float, field: str, *, allow_zero: bool = False) -> float:
    """Parse ``value`` into seconds (see ``_parse_duration``); cached, as a file of 10,000
    triggers says "10m" 10,000 times."""
    if type(value) in (str, int, float):
        return _cached_duration(value, field, allow_zero)
    return _parse_duration(value, field, allow_zero=allow_zero)


@functools.lru_cache(maxsize=4096, typed=True)  # typed: 1 and 1.0 are kept apart
def _cached_duration(value: str | int | float, field: str, allow_zero: bool) -> float:
    return _parse_duration(value, field, allow_zero=allow_zero)


def _parse_duration(value: str | int | float, field: str, *, allow_zero: bool = False
                    ) -> float:
    """Parse ``value`` into seconds.

    Strings take a number plus unit (``ms s m h d``) or compounds from the largest unit
    down (``1h30m``, ``2m30s500ms``). A string without a unit (``"5"``: seconds? minutes?)
    is refused, whichever front door it comes from, except ``"0"``. Numbers (a JSON, TOML or
    Python ``int``/``float``, typed as such) are seconds. Rejects empty, negative,
    non-finite, zero (unless ``allow_zero``), unknown units and anything over ten years.
    """
    if isinstance(value, bool):
        # bool is an int subclass; True seconds is never what someone meant.
        raise ValidationError(field, f"{value!r} is not a duration", HINT)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValidationError(field, f"{value!r} is not a finite duration", HINT)
        return _check(Fraction(value), str(value), field, allow_zero)
    if not isinstance(value, str):
        raise ValidationError(field, f"{value!r} is not a duration", HINT)
    text = value.strip().lower()
    if not text:
        raise ValidationError(field, "is empty", HINT)
    if text.startswith("-"):
        raise ValidationError(field, f"'{value}' is negative", HINT)
    if _PLAIN.fullmatch(text):
        if Fraction(text) != 0:
            raise ValidationError(field, f"'{value.strip()}' has no unit",
                                  f"write {text}s, {text}m or {text}h")
        return _check(Fraction(text), value, field, allow_zero)
    return _check(_parse_compound(text, value, field), value, field, allow_zero)


def _parse_compound(text: str, original: str, field: str) -> Fraction:
    total = Fraction(0)
    pos = 0
    last_rank = -1
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            raise ValidationError(field, f"'{original}' is not a duration", HINT)
        number, unit = match.groups()
        if not unit:
            raise ValidationError(field, f"'{original}' has a number without a unit", HINT)
        if unit not in _UNITS:
            raise ValidationError(field, f"'{original}' has an unknown unit '{unit}'", HINT)
        rank = _ORDER.index(unit)
        if rank <= last_rank:
            raise ValidationError(
                field,
                f"'{original}' repeats a unit or lists them out of order",
                "give each unit once, largest first, e.g. 1h30m",
            )
        last_rank = rank
        # Fractions keep "0.1s" exactly 0.1 and "1.5h" exactly 5400 before the final float.
        total += Fraction(number) * _UNITS[unit] / 1000
        pos = match.end()
    return total


def _check(seconds: Fraction, shown: str, field: str, allow_zero: bool) -> float:
    if seconds < 0:
        raise ValidationError(field, f"'{shown}' is negative", HINT)
    if seconds == 0 and not allow_zero:
        raise ValidationError(field, f"'{shown}' is zero; it must be more than that", HINT)
    if seconds > MAX_SECONDS:
        raise ValidationError(field, f"'{shown}' is longer than 10 years", HINT)
    return float(seconds)


def format_duration(seconds: float) -> str:
    """Format ``seconds`` compactly, largest unit first: 90 -> ``1m30s``, 0.5 -> ``500ms``.

    Rounds to the millisecond; zero is ``0s``; negative values get a leading ``-``.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"cannot format a non-finite duration: {seconds!r}")
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    sign = "-" if millis < 0 else ""
    millis = abs(millis)
    parts: list[str] = []
    for unit, size in _UNITS.items():
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)
