"""An agent's budget through the HTTP API, in-process on both backends: GET shows it, a PUT
with one stores it, and a PUT without one removes it (a PUT replaces the whole agent); and
the cost report the budgets are judged by, ``/api/v1/costs``."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

import httpx

from agentcron.api.app import create_app
from agentcron.models import ModelPrice, Usage
from agentcron.services.access import Access
from agentcron.store import Store
from tests.support.budgets import agent_with_budget, spend

HELLO = {"kind": "python", "config": {"target": "agentcron.examples:hello"}}
BUDGET = {"usd_per_day": 2.5, "tokens_per_month": 5_000_000, "tz": "Europe/Berlin",
          "on_budget": "pause"}
_tokens = itertools.count()


def call(store: Store, requests: list[tuple[str, str, Any]]) -> list[httpx.Response]:
    """Send ``(method, path, json)`` requests in order with an admin token."""
    _, token = Access(store).create_token(f"budget-{next(_tokens)}", "admin")
    app = create_app(store, "budget-node")

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            return [await client.request(method, path, json=body)
                    for method, path, body in requests]

    return asyncio.run(main())


def test_get_shows_the_budget_a_put_stored(store: Store) -> None:
    put, got, listed = call(store, [
        ("PUT", "/api/v1/agents/spender", {**HELLO, "budget": BUDGET}),
        ("GET", "/api/v1/agents/spender", None),
        ("GET", "/api/v1/agents", None),
    ])
    assert put.status_code == 200, put.text
    expected = {"tokens_per_day": None, "usd_per_day": 2.5, "tokens_per_month": 5_000_000,
                "usd_per_month": None, "tz": "Europe/Berlin", "on_budget": "pause"}
    assert put.json()["budget"] == expected
    assert got.json()["budget"] == expected
    assert [a["budget"] for a in listed.json() if a["name"] == "spender"] == [expected]
    budget = store.get_agent("spender").budget
    assert budget is not None and budget.usd_per_day == 2.5
    assert budget.tokens_per_month == 5_000_000 and budget.on_budget.value == "pause"


def test_a_budget_round_trips_and_a_put_without_one_removes_it(store: Store) -> None:
    created, = call(store, [("POST", "/api/v1/agents",
                             {"name": "spender", **HELLO, "budget": {"usd_per_day": 1}})])
    assert created.status_code == 201, created.text
    shown = created.json()["budget"]
    assert shown == {"tokens_per_day": None, "usd_per_day": 1.0, "tokens_per_month": None,
                     "usd_per_month": None, "tz": "UTC", "on_budget": "skip"}
    again, plain = call(store, [
        ("PUT", "/api/v1/agents/spender", {**HELLO, "budget": shown}),
        ("PUT", "/api/v1/agents/spender", HELLO),
    ])
    assert again.json()["budget"] == shown
    assert plain.status_code == 200 and plain.json()["budget"] is None
    assert store.get_agent("spender").budget is None


def test_a_bad_budget_is_422_naming_its_field(store: Store) -> None:
    negative, no_limit, unknown = call(store, [
        ("PUT", "/api/v1/agents/spender", {**HELLO, "budget": {"usd_per_day": -1}}),
        ("PUT", "/api/v1/agents/spender", {**HELLO, "budget": {"on_budget": "pause"}}),
        ("PUT", "/api/v1/agents/spender", {**HELLO, "budget": {"usd_per_week": 1}}),
    ])
    assert negative.status_code == 422 and negative.json()["field"] == "budget.usd_per_day"
    assert no_limit.status_code == 422 and no_limit.json()["field"] == "budget"
    assert unknown.status_code == 422, unknown.text


def test_the_costs_endpoint_answers_the_cli_s_document(store: Store) -> None:
    """``GET /api/v1/costs`` is ``agentcron costs --json``: the same groups, total and
    refusals (``by`` in any case; a bad one is a 422 naming the field)."""
    now = store.now()
    store.set_price(ModelPrice("m", 1.0, 2.0, "cli"), now)
    agent_with_budget(store, "writer", None, now=now)
    spend(store, "writer", now - timedelta(days=1), Usage(1_000_000, 500_000, model="m"))
    spend(store, "writer", now, Usage(10, 10, model="unpriced"))
    by_model, by_agent, bad, too_many = call(store, [
        ("GET", "/api/v1/costs?by=%20Model%20", None),
        ("GET", "/api/v1/costs", None),
        ("GET", "/api/v1/costs?by=week", None),
        ("GET", "/api/v1/costs?limit=0", None),
    ])
    assert by_model.status_code == 200, by_model.text
    doc = by_model.json()
    assert doc["by"] == "model" and doc["until"] is None and doc["truncated"] is False
    assert {r["key"]: r["cost_usd"] for r in doc["rows"]} == {"m": 2.0, "unpriced": 0.0}
    assert doc["total"] == {"key": "total", "runs": 2, "input_tokens": 1_000_010,
                            "output_tokens": 500_010, "cost_usd": 2.0, "unpriced_runs": 1}
    assert [(r["key"], r["runs"]) for r in by_agent.json()["rows"]] == [("writer", 2)]
    assert bad.status_code == 422 and bad.json()["field"] == "by"
    assert "'week' is not one of agent|trigger|model|day" in bad.json()["detail"]
    assert too_many.status_code == 422 and too_many.json()["field"] == "limit"
