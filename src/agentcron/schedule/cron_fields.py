"""Validation of cron expressions before and around cronsim, with messages that name the field.

cronsim does all the parsing. This module only (1) maps ``@daily``-style aliases, (2) counts
fields, (3) checks the bounds of every plain number token *before* cronsim sees it, so that
``0-99999999 * * * *`` is rejected in constant time instead of reaching any range expansion,
and (4) turns cronsim's terse ``Bad minute`` errors into messages that say what is wrong
and what would be valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cronsim.cronsim import CronSimError, Field

from agentcron.errors import ValidationError

MAX_LENGTH = 200

ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

COUNT_HINT = "e.g. '*/15 * * * *' or '0 9 * * MON-FRI'"


@dataclass(frozen=True)
class _FieldRule:
    name: str
    field: Field
    low: int
    high: int
    names: tuple[str, ...]  # symbolic names, index + offset = number
    offset: int
    hint: str


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June", "July",
    "August", "September", "October", "November", "December",
)  # fmt: skip
# The most days each month can have (February: leap years), as cronsim assumes.
MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

# In cronsim's (six-field) order: seconds first.
RULES = (
    _FieldRule("second", Field.SECOND, 0, 59, (), 0, "second takes 0-59, e.g. '0' or '*/10'"),
    _FieldRule("minute", Field.MINUTE, 0, 59, (), 0, "minute takes 0-59, e.g. '*/15' or '0,30'"),
    _FieldRule("hour", Field.HOUR, 0, 23, (), 0, "hour takes 0-23, e.g. '9' or '9-17'"),
    _FieldRule(
        "day", Field.DAY, 1, 31, (), 0, "day takes 1-31, L (last) or LW, e.g. '1' or '1,15'"
    ),
    _FieldRule(
        "month",
        Field.MONTH,
        1,
        12,
        _MONTHS,
        1,
        "month takes 1-12 or JAN-DEC, e.g. '1' or 'JAN,JUL'",
    ),
    _FieldRule(
        "weekday",
        Field.DOW,
        0,
        7,
        _DAYS,
        0,
        "weekday takes 0-7 (0 and 7 are Sunday) or SUN-SAT, e.g. 'MON-FRI', '5L' or '1#2'",
    ),
)

_DIGITS = re.compile(r"[0-9]+")


def normalize(expr: str) -> tuple[str, list[str]]:
    """Map aliases and split into fields.

    Returns the expression to hand cronsim (aliases replaced, whitespace collapsed, original
    field count kept: cronsim treats 5 and 6 fields differently across DST) and the fields
    as written, in six-field order (``"0"`` seconds prepended to five-field expressions).
    """
    if not isinstance(expr, str):
        raise ValidationError("cron", f"{expr!r} is not a cron expression", COUNT_HINT)
    if len(expr) > MAX_LENGTH:
        raise ValidationError(
            "cron", f"expression is {len(expr)} characters long; the limit is {MAX_LENGTH}"
        )
    text = expr.strip()
    if not text:
        raise ValidationError("cron", "expression is empty", COUNT_HINT)
    if text.startswith("@"):
        mapped = ALIASES.get(text.lower())
        if mapped is None:
            raise ValidationError(
                "cron", f"unknown alias '{text}'", "use one of " + ", ".join(ALIASES)
            )
        text = mapped
    parts = text.split()
    if len(parts) not in (5, 6):
        raise ValidationError(
            "cron",
            "expected 5 fields (minute hour day month weekday) or 6 (second first), "
            f"got {len(parts)}",
            COUNT_HINT,
        )
    six = parts if len(parts) == 6 else ["0", *parts]
    return " ".join(parts).upper(), six


def check_fields(six: list[str]) -> None:
    """Validate all six fields: bounds first (constant time), then cronsim's own parse,
    then the "can this ever fire" check that needs the parsed day and month sets."""
    upper = [text.upper() for text in six]
    for rule, text, shown in zip(RULES, upper, six, strict=True):
        _check_tokens(rule, text, shown)
    parsed = [
        _parse(rule, text, shown) for rule, text, shown in zip(RULES, upper, six, strict=True)
    ]
    _check_day_exists(upper, parsed[3], parsed[4])


def _fail(rule: _FieldRule, shown: str, problem: str) -> ValidationError:
    """An error quoting the field as the user wrote it."""
    return ValidationError("cron", f"{rule.name} field '{shown}' {problem}", rule.hint)


def _check_tokens(rule: _FieldRule, text: str, shown: str) -> None:
    """Bounds-check every number token, splitting only on ``,`` ``/`` ``-`` (and, for
    weekdays, the ``L`` and ``#n`` suffixes). Anything that is not a plain number or a
    name is left for cronsim to accept or reject."""
    for term in text.split(","):
        if not term:
            raise _fail(rule, shown, "has an empty list item")
        base, has_step, step = term.partition("/")
        if has_step:
            if not _DIGITS.fullmatch(step):
                raise _fail(rule, shown, "has a step that is not a whole number")
            if int(step) < 1:
                raise _fail(rule, shown, "has step 0; step must be >= 1")
        bounds = base.split("-")
        if len(bounds) > 2:
            raise _fail(rule, shown, "has a range with more than two ends")
        values = [_token_value(rule, token, shown) for token in bounds]
        low, high = values[0], values[-1]
        if len(values) == 2 and low is not None and high is not None and low > high:
            raise _fail(rule, shown, f"has range '{base}' that runs backwards")


def _token_value(rule: _FieldRule, token: str, shown: str) -> int | None:
    """The number a range end stands for, or None when it is not a plain number or name."""
    if rule.field is Field.DOW:
        token, has_nth, nth = token.partition("#")
        if has_nth and _DIGITS.fullmatch(nth) and not 1 <= int(nth) <= 5:
            raise _fail(rule, shown, f"has '#{nth}'; a month has at most 5 of each weekday")
        if len(token) > 1 and token.endswith("L"):
            token = token[:-1]
    if token in rule.names:
        return rule.names.index(token) + rule.offset
    if not _DIGITS.fullmatch(token):
        return None
    digits = token.lstrip("0") or "0"  # cronsim accepts leading zeros ("07")
    # Length first: never convert or compare a long digit string.
    if len(digits) > 2 or not rule.low <= int(digits) <= rule.high:
        what = "is out of range" if token == shown else f"has {digits}, out of range"
        raise _fail(rule, shown, what)
    return int(digits)


def _parse(rule: _FieldRule, text: str, shown: str) -> set[int | tuple[int, int]]:
    try:
        return rule.field.parse(text)
    except (CronSimError, ValueError):
        # ValueError is defensive: cronsim calls int() on pieces we already bounds-checked,
        # so one here would still be bad input, not a crash.
        raise _fail(rule, shown, "is not valid") from None


def _check_day_exists(
    six: list[str], days: set[int | tuple[int, int]], months: set[int | tuple[int, int]]
) -> None:
    """Reject day/month combinations that never happen (``0 0 30 2 *``).

    Only when the weekday cannot rescue it: with Debian cron semantics, a day-of-month and
    weekday that are both restricted are OR-ed, so ``0 0 30 2 MON`` fires on Mondays.
    """
    day_and = six[3].startswith("*") or six[5].startswith("*")
    plain_days = [d for d in days if isinstance(d, int) and d > 0]
    if not day_and or len(plain_days) != len(days):
        return  # L / LW always exist
    month_list = sorted(m for m in months if isinstance(m, int))
    first_day = min(plain_days)
    if first_day <= max(MONTH_DAYS[m - 1] for m in month_list):
        return
    names = [MONTH_NAMES[m - 1] for m in month_list]
    subject = names[0] + " has" if len(names) == 1 else _join(names) + " have"
    raise ValidationError(
        "cron",
        f"never fires: {subject} no {_ordinal(first_day)}",
        "pick a day that exists in that month, or use L for the last day",
    )


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
