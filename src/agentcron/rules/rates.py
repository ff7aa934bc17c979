"""Rate limits: what a rate is (``"60/m"``), what a pool is, and how much room a sliding
60-second window has left. Pure: no clock, no database; the store applies them in the
claiming transaction (``store/pools.py``).

A window is sliding, not fixed buckets: a start counts against a limit for exactly
``WINDOW_S`` seconds after it happened, so no boundary lets twice the rate through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentcron.errors import ValidationError

#: A pool's limits are per minute; an agent's own rate is judged over its own period.
WINDOW_S = 60.0
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")
_RATE_FIX = ("a count per second, minute or hour: '60/m', '2/s', '1000/h' (also '10/5m'); "
             "judged over a sliding window")
#: Pools are named like agents (letters, digits, ``_ . -``), and ``agent:NAME`` is the
#: per-agent rate's own pool, which no user names.
_POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_LIMIT = 10**9


@dataclass(frozen=True)
class Rate:
    """``count`` starts per ``per_s`` seconds, as written (``text``)."""

    count: int
    per_s: float
    text: str


def parse_rate(text: str, field: str = "rate") -> Rate:
    """``"60/m"`` -> ``Rate(60, 60.0)``. Refused (``ValidationError`` naming ``field``):
    no unit, a zero count, a period over a day."""
    match = _RATE.match(text) if isinstance(text, str) else None
    if not match:
        raise ValidationError(field, f"{text!r} is not a rate", _RATE_FIX)
    count, multiple, unit = int(match.group(1)), match.group(2), match.group(3)
    per_s = (int(multiple) if multiple else 1) * _UNITS[unit]
    if count <= 0 or count > MAX_LIMIT:
        raise ValidationError(field, f"{text!r} allows no run" if count <= 0 else
                              f"{text!r} is too large", _RATE_FIX)
    if per_s <= 0 or per_s > 86400:
        raise ValidationError(field, f"{text!r} has a period of zero or over a day", _RATE_FIX)
    return Rate(count, per_s, f"{count}/{multiple}{unit}" if multiple else f"{count}/{unit}")


def check_pool_name(name: str, field: str = "pool") -> str:
    if not isinstance(name, str) or not _POOL_NAME.match(name):
        raise ValidationError(field, f"{str(name)[:100]!r} is not a pool name",
                              "letters, digits, '_', '.', '-', at most 100, e.g. 'openai'")
    return name


def check_limit(value: object, field: str) -> int | None:
    """A per-minute limit: a positive whole number, or None (no limit of that kind)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIMIT:
        raise ValidationError(field, f"{value!r} is not a positive whole number",
                              f"e.g. {field} = 500 (at most {MAX_LIMIT})")
    return value


def agent_pool(agent: str) -> str:
    """The ledger key of an agent's own ``rate`` (distinct from every user pool name)."""
    return f"agent:{agent}"


@dataclass(frozen=True)
class Limit:
    """One limit a start draws from: a pool (``requests``/``tokens`` per minute) or an
    agent's own rate (``requests`` per ``window_s``)."""

    key: str  # the ledger key: the pool's name, or ``agent:NAME``
    label: str  # how people see it: "pool openai", "agent summarise"
    requests: int | None
    tokens: int | None
    window_s: float = WINDOW_S


@dataclass(frozen=True)
class Usage:
    """What a limit's window holds: starts, and tokens (reserved until a run reports)."""

    requests: int = 0
    tokens: int = 0


def room(limit: Limit, used: Usage, reserve: int, wanted: int) -> tuple[int, str | None]:
    """How many of ``wanted`` starts, each reserving ``reserve`` tokens, fit in ``limit``
    given what its window holds; and, when fewer than wanted, why (the run's
    ``waiting_reason``, e.g. ``pool openai at 500/500 requests/min``).

    A run reserving more tokens than the limit allows at all would never start: it may
    start when the window is empty (it then holds the window alone)."""
    n = wanted
    cut_by: str | None = None
    per = "min" if limit.window_s == WINDOW_S else _per(limit.window_s)
    if limit.requests is not None and limit.requests - used.requests < n:
        n, cut_by = max(0, limit.requests - used.requests), "requests"
    if limit.tokens is not None and reserve > 0:
        fits = max(0, limit.tokens - used.tokens) // reserve
        if fits == 0 and used.tokens == 0 and used.requests == 0:
            fits = 1  # too large for the limit: alone in an empty window
        if fits < n:
            n, cut_by = fits, "tokens"
    # The reason states the window as this claim leaves it (its own starts included).
    if cut_by == "requests":
        return n, (f"{limit.label} at {used.requests + n}/{limit.requests} requests/{per}")
    if cut_by == "tokens":
        return n, (f"{limit.label} at {used.tokens + n * reserve}/{limit.tokens} "
                   f"tokens/{per} (a run reserves {reserve})")
    return n, None


def _per(seconds: float) -> str:
    for unit, size in (("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count}{unit}"
    return f"{seconds:g}s"


def reserve_of(config: dict[str, object], estimate: int | None = None) -> int:
    """The tokens a run reserves until it reports usage: an llm agent's ``max_tokens``
    (its config), else ``estimate`` (a configured guess), else 0."""
    value = config.get("max_tokens")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return estimate or 0
