"""Budgets: what an agent may spend, and whether one more of its runs may start. Pure: no I/O,
no clock (``now`` is passed in). The store applies ``decide`` inside the claiming transaction
(``store.budgets``), under all of the agent's concurrency shards (``store.slots``).

What counts
    The usage of an agent's runs that *started* inside the window: a rolling day (the 24
    hours before now) or the calendar month (from midnight on the 1st in the budget's zone).
    A run's usage is what its finished attempts recorded on the run row: tokens are input +
    output tokens; cost is ``cost_usd``, and a run whose cost is unknown (no price for its
    model, none reported) counts 0 toward cost limits while its tokens still count toward
    token limits. A run still running has not reported yet and counts 0 until it does.
    Nothing is kept in a counter: every decision is recomputed from the run rows.

When a run may start ("would start over budget")
    The next run's usage cannot be known before it runs, so agentcron does not guess it away.
    For every limit ``L`` of the agent, with ``U`` the usage counted in its window, ``P`` the
    largest usage a single run recorded in that window (0 when none has) and ``F`` the
    agent's runs in flight, the k-th run this claim would start (k = 1, 2, ...) may start
    only if

    1. ``U < L`` -- the limit is not already reached by runs counted; and
    2. ``F + k == 1`` or ``U + (F + k) * P <= L`` -- the runs in flight and this one, each
       assumed to use as much as the largest run so far, fit in what is left. With nothing
       else in flight, (1) alone decides.

    A run refused by (1) is over budget: it becomes ``skipped`` with a reason starting
    ``budget_exceeded`` (and with ``on_budget = "pause"`` the agent's triggers are paused
    too). A run refused only by (2) is not over budget yet: it stays queued and starts when
    the runs in flight have reported and the rule lets it.

    Consequences, stated plainly: a run that starts under the limit may end above it (its
    own usage is only known afterwards), so the total can pass a limit by about one run's
    usage; runs larger than any run before them in the window can pass it by more. A run
    already running is never cut off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentcron.errors import ValidationError
from agentcron.models import Budget, OnBudget

BUDGET_EXCEEDED = "budget_exceeded"
"""The reason every run skipped for its budget starts with."""
ROLLING_DAY = timedelta(hours=24)
MAX_TOKENS = 10**15
MAX_USD = 10.0**9
_LIMITS = ("tokens_per_day", "usd_per_day", "tokens_per_month", "usd_per_month")
BUDGET_KEYS = (*_LIMITS, "tz")


# -- input ----------------------------------------------------------------------------------


def parse_budget(raw: Mapping[str, Any] | None, on_budget: str | None = None) -> Budget | None:
    """A ``Budget`` from user input (``{"tokens_per_day": ..., "usd_per_month": ...,
    "tz": "Europe/Berlin"}``) and ``on_budget`` (``skip`` | ``pause``); None when no limit
    is given. ``ValidationError`` naming ``budget.<field>`` for anything invalid."""
    raw = dict(raw or {})
    for key in raw:
        if key not in BUDGET_KEYS:
            raise ValidationError(f"budget.{key}", "unknown budget setting",
                                  "valid: " + ", ".join(BUDGET_KEYS))
    limits: dict[str, Any] = {}
    for key in _LIMITS:
        value = raw.get(key)
        if value is not None:
            limits[key] = _tokens(key, value) if key.startswith("tokens") else _usd(key, value)
    zone = raw.get("tz")
    if zone is not None:
        _zone(zone)
    policy = OnBudget.SKIP
    if on_budget is not None:
        try:
            policy = OnBudget(on_budget)
        except ValueError:
            raise ValidationError("on_budget", f"{on_budget!r} is not one of skip|pause",
                                  "use skip (default) or pause") from None
    if not limits:
        if on_budget is not None or zone is not None:
            raise ValidationError("budget", "no limit given",
                                  "set tokens_per_day, usd_per_day, tokens_per_month or "
                                  "usd_per_month")
        return None
    return Budget(**limits, timezone=zone or "UTC", on_budget=policy)


def budget_to_json(budget: Budget | None) -> dict[str, Any] | None:
    """The stored (and shown) form of a budget."""
    if budget is None:
        return None
    return {
        "tokens_per_day": budget.tokens_per_day,
        "usd_per_day": budget.usd_per_day,
        "tokens_per_month": budget.tokens_per_month,
        "usd_per_month": budget.usd_per_month,
        "tz": budget.timezone,
        "on_budget": budget.on_budget.value,
    }


def budget_from_json(doc: Mapping[str, Any] | None) -> Budget | None:
    """The inverse of ``budget_to_json`` (for stored, already validated values)."""
    if not doc:
        return None
    return Budget(
        tokens_per_day=doc.get("tokens_per_day"),
        usd_per_day=doc.get("usd_per_day"),
        tokens_per_month=doc.get("tokens_per_month"),
        usd_per_month=doc.get("usd_per_month"),
        timezone=doc.get("tz") or "UTC",
        on_budget=OnBudget(doc.get("on_budget") or OnBudget.SKIP.value),
    )


def _tokens(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS:
        raise ValidationError(f"budget.{key}", f"invalid {value!r}",
                              "a whole number of tokens, at least 1")
    return value


def _usd(key: str, value: Any) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 < value <= MAX_USD:
        raise ValidationError(f"budget.{key}", f"invalid {value!r}",
                              "US dollars, a number above 0 (e.g. 2.5)")
    return float(value)


def _zone(value: Any) -> ZoneInfo:
    try:
        if not isinstance(value, str) or not value:
            raise ValueError
        return ZoneInfo(value)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValidationError("budget.tz", f"unknown time zone {value!r}",
                              "an IANA zone such as UTC or Europe/Berlin") from None


# -- windows and decisions -----------------------------------------------------------------


def day_start(now: datetime) -> datetime:
    """Start of the rolling day that ends at ``now``."""
    return now - ROLLING_DAY


def month_start(budget: Budget, now: datetime) -> datetime:
    """Midnight on the 1st of ``now``'s month in the budget's zone, as an aware time."""
    local = now.astimezone(ZoneInfo(budget.timezone))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0, fold=0)
    # Round-trip through UTC: a zone whose midnight does not exist on the 1st lands on the
    # first real instant of the day.
    return first.astimezone(ZoneInfo("UTC")).astimezone(first.tzinfo)


@dataclass(frozen=True)
class WindowUsage:
    """Usage counted in one window: totals and the largest single run."""

    tokens: int = 0
    max_run_tokens: int = 0
    usd: float = 0.0
    max_run_usd: float = 0.0


@dataclass(frozen=True)
class AgentUsage:
    day: WindowUsage
    month: WindowUsage
    in_flight: int = 0


@dataclass(frozen=True)
class Decision:
    """``over`` is the skip reason when the agent is over budget (nothing may start);
    otherwise ``room`` is how many runs may start now (None: no budget limit applies)."""

    over: str | None = None
    room: int | None = None


def decide(budget: Budget, usage: AgentUsage) -> Decision:
    """Apply the rule in the module docstring to every limit of ``budget``."""
    checks: list[tuple[str, float | None, float, float]] = [
        ("tokens per day", budget.tokens_per_day, usage.day.tokens, usage.day.max_run_tokens),
        ("USD per day", budget.usd_per_day, usage.day.usd, usage.day.max_run_usd),
        (f"tokens per month ({budget.timezone})", budget.tokens_per_month,
         usage.month.tokens, usage.month.max_run_tokens),
        (f"USD per month ({budget.timezone})", budget.usd_per_month, usage.month.usd,
         usage.month.max_run_usd),
    ]
    room: int | None = None
    for label, limit, used, per_run in checks:
        if limit is None:
            continue
        if used >= limit:
            return Decision(over=f"{BUDGET_EXCEEDED}: {_amount(label, used)} used of "
                                 f"{_amount(label, limit)} {label}")
        fits = _room(limit, used, per_run, usage.in_flight)
        if fits is not None:
            room = fits if room is None else min(room, fits)
    return Decision(room=room)


@dataclass(frozen=True)
class LimitState:
    """One limit of a budget as shown to people: ``label`` ("tokens per day"), what is
    used and the limit (formatted), and whether the limit is reached."""

    label: str
    used: str
    limit: str
    reached: bool


def _limits(budget: Budget, usage: AgentUsage) -> list[tuple[str, float | None, float]]:
    return [
        ("tokens per day", budget.tokens_per_day, usage.day.tokens),
        ("USD per day", budget.usd_per_day, usage.day.usd),
        (f"tokens per month ({budget.timezone})", budget.tokens_per_month,
         usage.month.tokens),
        (f"USD per month ({budget.timezone})", budget.usd_per_month, usage.month.usd),
    ]


def limit_states(budget: Budget, usage: AgentUsage) -> list[LimitState]:
    """Each limit the budget sets, with the usage counted against it (as ``decide`` counts
    it), in a fixed order."""
    return [LimitState(label, _amount(label, used), _amount(label, limit), used >= limit)
            for label, limit, used in _limits(budget, usage) if limit is not None]


def describe_budget(budget: Budget | None) -> str:
    """A budget in words: ``5,000 tokens per day; $2.0000 USD per month (UTC); over budget:
    skip``, or ``none``."""
    if budget is None or not budget.has_limits:
        return "none"
    parts = [f"{_amount(label, limit)} {label}"
             for label, limit, _ in _limits(budget, AgentUsage(WindowUsage(), WindowUsage()))
             if limit is not None]
    return "; ".join(parts) + f"; over budget: {budget.on_budget.value}"


def _room(limit: float, used: float, per_run: float, in_flight: int) -> int | None:
    if per_run <= 0:
        return None
    fits = math.floor((limit - used) / per_run + 1e-9) - in_flight
    return max(fits, 1 if in_flight == 0 else 0)


def _amount(label: str, value: float) -> str:
    return f"${format_usd(value)}" if label.startswith("USD") else f"{int(value):,}"


def format_usd(value: float) -> str:
    """Dollars for people: 4 decimals, or as many as a sub-cent amount needs (up to 8)."""
    if value == 0 or abs(value) >= 0.01:
        return f"{value:,.4f}"
    return f"{value:.8f}".rstrip("0")
