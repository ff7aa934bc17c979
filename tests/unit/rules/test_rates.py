"""The pure rate rules: what a rate is, and how much room a window has left."""

from __future__ import annotations

import pytest

from agentcron.errors import ValidationError
from agentcron.rules.rates import Limit, Usage, parse_rate, reserve_of, room


@pytest.mark.parametrize(("text", "count", "per_s", "shown"), [
    ("60/m", 60, 60.0, "60/m"), ("2/s", 2, 1.0, "2/s"), (" 1000 / h ", 1000, 3600.0, "1000/h"),
    ("10/5m", 10, 300.0, "10/5m"),
])
def test_rates_parse(text: str, count: int, per_s: float, shown: str) -> None:
    rate = parse_rate(text)
    assert (rate.count, rate.per_s, rate.text) == (count, per_s, shown)


@pytest.mark.parametrize("text", ["60", "60/min", "0/m", "-1/m", "m", "", "5/0s", "1/25h",
                                  "10000000000/s"])
def test_bad_rates_are_refused_with_the_field_and_a_fix(text: str) -> None:
    with pytest.raises(ValidationError) as bad:
        parse_rate(text)
    assert bad.value.field == "rate" and "60/m" in (bad.value.hint or "")


POOL = Limit("openai", "pool openai", requests=500, tokens=200_000)


def test_room_is_what_requests_and_tokens_leave() -> None:
    assert room(POOL, Usage(0, 0), 1000, 10) == (10, None)
    assert room(POOL, Usage(498, 0), 1000, 10) == (2, "pool openai at 500/500 requests/min")
    n, why = room(POOL, Usage(10, 197_000), 1000, 10)
    assert n == 3 and why == "pool openai at 200000/200000 tokens/min (a run reserves 1000)"
    assert room(POOL, Usage(500, 0), 0, 1) == (0, "pool openai at 500/500 requests/min")


def test_a_run_reserving_more_than_the_limit_starts_alone_in_an_empty_window() -> None:
    small = Limit("p", "pool p", None, 100)
    assert room(small, Usage(), 500, 3)[0] == 1
    assert room(small, Usage(1, 500), 500, 3)[0] == 0


def test_an_agents_rate_names_its_own_period() -> None:
    rate = Limit("agent:a", "agent a", 2, None, 1.0)
    assert room(rate, Usage(2, 0), 0, 1) == (0, "agent a at 2/2 requests/s")


def test_a_run_reserves_its_max_tokens_else_the_estimate() -> None:
    assert reserve_of({"max_tokens": 300}) == 300
    assert reserve_of({}) == 0 and reserve_of({}, 50) == 50
    assert reserve_of({"max_tokens": True}) == 0
