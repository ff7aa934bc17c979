"""The budget rule and budget input, as pure functions (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentcron.errors import ValidationError
from agentcron.models import Budget, OnBudget
from agentcron.rules.budgets import (
    AgentUsage,
    WindowUsage,
    budget_from_json,
    budget_to_json,
    decide,
    month_start,
    parse_budget,
)


def usage(day_tokens: int = 0, day_max: int = 0, in_flight: int = 0, day_usd: float = 0.0,
          day_max_usd: float = 0.0) -> AgentUsage:
    return AgentUsage(day=WindowUsage(day_tokens, day_max, day_usd, day_max_usd),
                      month=WindowUsage(), in_flight=in_flight)


@pytest.mark.parametrize(
    ("used", "per_run", "in_flight", "room"),
    [
        (0, 0, 0, None),      # nothing known about run sizes: only the limit itself counts
        (0, 0, 5, None),
        (600, 100, 0, 4),     # 600 + 4 x 100 = 1000 fits
        (900, 100, 0, 1),
        (950, 100, 0, 1),     # nothing in flight and under the limit: one may start
        (950, 100, 1, 0),     # one in flight may use the rest: wait for it
        (600, 100, 2, 2),
        (600, 100, 4, 0),
    ],
)
def test_room_under_the_limit(used: int, per_run: int, in_flight: int, room: int | None) -> None:
    decision = decide(Budget(tokens_per_day=1000), usage(used, per_run, in_flight))
    assert decision.over is None and decision.room == room


def test_reaching_the_limit_is_over_budget() -> None:
    decision = decide(Budget(tokens_per_day=1000), usage(1000, 10))
    assert decision.over == "budget_exceeded: 1,000 used of 1,000 tokens per day"
    assert decide(Budget(usd_per_day=1.0), usage(day_usd=1.25)).over == (
        "budget_exceeded: $1.2500 used of $1.0000 USD per day")


def test_small_amounts_keep_their_digits() -> None:
    decision = decide(Budget(usd_per_day=0.000005), usage(day_usd=0.0000072))
    assert decision.over == "budget_exceeded: $0.0000072 used of $0.000005 USD per day"


def test_the_tightest_limit_wins() -> None:
    budget = Budget(tokens_per_day=1000, usd_per_day=1.0)
    decision = decide(budget, usage(100, 100, 0, day_usd=0.5, day_max_usd=0.25))
    assert decision.room == 2  # tokens allow 9, dollars 2


def test_float_costs_do_not_lose_a_run_to_rounding() -> None:
    decision = decide(Budget(usd_per_day=1.0), usage(day_usd=0.7, day_max_usd=0.1))
    assert decision.room == 3


@pytest.mark.parametrize(
    ("now", "zone", "start"),
    [
        (datetime(2026, 3, 15, 12, tzinfo=UTC), "UTC", datetime(2026, 3, 1, tzinfo=UTC)),
        (datetime(2026, 2, 28, 23, 30, tzinfo=UTC), "Europe/Berlin",
         datetime(2026, 2, 28, 23, 0, tzinfo=UTC)),   # already 1 March in Berlin
        (datetime(2026, 3, 31, 23, 0, tzinfo=UTC), "America/New_York",
         datetime(2026, 3, 1, 5, 0, tzinfo=UTC)),     # EST on the 1st, EDT now
        (datetime(2026, 4, 2, tzinfo=UTC), "America/New_York",
         datetime(2026, 4, 1, 4, 0, tzinfo=UTC)),
    ],
)
def test_month_start_in_a_zone(now: datetime, zone: str, start: datetime) -> None:
    assert month_start(Budget(tokens_per_month=1, timezone=zone), now) == start


def test_parse_budget_normalises_and_round_trips() -> None:
    budget = parse_budget({"tokens_per_day": 10, "usd_per_month": 5, "tz": "Europe/Berlin"},
                          "pause")
    assert budget == Budget(tokens_per_day=10, usd_per_month=5.0, timezone="Europe/Berlin",
                            on_budget=OnBudget.PAUSE)
    assert budget_from_json(budget_to_json(budget)) == budget
    assert parse_budget(None) is None and parse_budget({}) is None


@pytest.mark.parametrize(
    ("raw", "on_budget", "field"),
    [
        ({"tokens_per_dya": 5}, None, "budget.tokens_per_dya"),
        ({"tokens_per_day": 0}, None, "budget.tokens_per_day"),
        ({"tokens_per_day": 1.5}, None, "budget.tokens_per_day"),
        ({"usd_per_day": -1}, None, "budget.usd_per_day"),
        ({"usd_per_month": float("nan")}, None, "budget.usd_per_month"),
        ({"usd_per_day": 1, "tz": "Mars/Olympus"}, None, "budget.tz"),
        ({"usd_per_day": 1}, "stop", "on_budget"),
        ({}, "pause", "budget"),
        ({"tz": "UTC"}, None, "budget"),
    ],
)
def test_bad_budgets_name_the_field(raw: dict[str, Any], on_budget: str | None,
                                    field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_budget(raw, on_budget)
    assert info.value.field == field
