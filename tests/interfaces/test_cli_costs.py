"""``agentcron costs``, ``agentcron prices`` and llm/budget options of ``agents add``, against a
real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from agentcron.cli import app
from agentcron.models import Usage
from agentcron.store import Store
from tests.support.budgets import agent_with_budget, spend

Cli = Callable[..., Result]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    store = Store(url)
    store.upgrade()
    store.close()
    return url


@pytest.fixture
def cli(db_url: str) -> Cli:
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["--db", db_url, *args])


def ok(cli: Cli, *args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return result.stdout


def js(cli: Cli, *args: str) -> Any:
    return json.loads(ok(cli, *args, "--json"))


def test_prices_set_list_rm(cli: Cli) -> None:
    assert "price of gpt-4o-mini set: $0.15 in / $0.6 out" in ok(
        cli, "prices", "set", "gpt-4o-mini", "--input", "0.15", "--output", "0.6")
    [price] = js(cli, "prices", "list")
    assert price["model"] == "gpt-4o-mini" and price["input_per_mtok"] == 0.15
    assert "gpt-4o-mini" in ok(cli, "prices", "list")
    ok(cli, "prices", "rm", "gpt-4o-mini")
    assert ok(cli, "prices", "list").strip() == "no prices"
    missing = cli("prices", "rm", "gpt-4o-mini")
    assert missing.exit_code == 1 and "not found" in missing.stderr
    bad = cli("prices", "set", "m", "--input", "-1", "--output", "1")
    assert bad.exit_code == 2 and "input_per_mtok" in bad.stderr


def test_costs_table_and_json(cli: Cli, db_url: str) -> None:
    store = Store(db_url)
    try:
        now = store.now()
        ok(cli, "prices", "set", "m", "--input", "1", "--output", "2")
        agent_with_budget(store, "writer", None, now=now)
        spend(store, "writer", now - timedelta(days=1), Usage(1_000_000, 500_000, model="m"))
        spend(store, "writer", now, Usage(10, 10, model="unpriced"))
    finally:
        store.close()
    doc = js(cli, "costs", "--by", "model")
    assert doc["by"] == "model" and doc["until"] is None and doc["truncated"] is False
    assert {r["key"]: r["cost_usd"] for r in doc["rows"]} == {"m": 2.0, "unpriced": 0.0}
    assert doc["total"] == {"key": "total", "runs": 2, "input_tokens": 1_000_010,
                            "output_tokens": 500_010, "cost_usd": 2.0, "unpriced_runs": 1}
    table = ok(cli, "costs")
    assert "AGENT" in table and "writer" in table and "2.0000" in table
    assert "1 run(s) recorded tokens but no cost" in table
    by_day = js(cli, "costs", "--by", "day", "--since", (now - timedelta(days=3)).date()
                .isoformat())
    assert len(by_day["rows"]) == 2
    assert ok(cli, "costs", "--since", "2000-01-01", "--until", "2000-01-02").startswith(
        "no runs started since 2000-01-01")


@pytest.mark.parametrize(("args", "text"), [
    (["--by", "week"], "by: 'week' is not one of agent|trigger|model|day"),
    (["--since", "last tuesday"], "since: cannot read"),
    (["--limit", "0"], "limit"),
])
def test_costs_bad_input_exits_2(cli: Cli, args: list[str], text: str) -> None:
    result = cli("costs", *args)
    assert result.exit_code == 2 and text in result.stderr


def test_agents_add_llm_with_a_budget(cli: Cli) -> None:
    doc = js(cli, "agents", "add", "digest", "--llm", "gpt-4o-mini",
             "--base-url", "https://api.openai.com/v1", "--api-key-env", "OPENAI_API_KEY",
             "--prompt", "Summarise {{ text }}", "--max-tokens", "300",
             "--usd-per-day", "2.5", "--tokens-per-month", "1000000",
             "--budget-tz", "Europe/Berlin", "--on-budget", "pause")
    assert doc["kind"] == "llm" and doc["config"]["api_key_env"] == "OPENAI_API_KEY"
    assert doc["budget"] == {"tokens_per_day": None, "usd_per_day": 2.5,
                             "tokens_per_month": 1000000, "usd_per_month": None,
                             "tz": "Europe/Berlin", "on_budget": "pause"}
    assert "gpt-4o-mini @ https://api.openai.com/v1" in ok(cli, "agents", "list")
    refused = cli("triggers", "add", "digest", "--every", "1h", "--payload", '{"txt": 1}')
    assert refused.exit_code == 2 and "'text' is undefined" in refused.stderr


@pytest.mark.parametrize(("args", "text"), [
    (["--command", "echo", "--prompt", "x"], "does not apply to a command agent"),
    (["--llm", "m", "--base-url", "http://h/v1", "--prompt", "{{ x"], "syntax error"),
    (["--command", "echo", "--usd-per-day", "0"], "budget.usd_per_day"),
    (["--command", "echo", "--on-budget", "pause"], "budget: no limit given"),
])
def test_agents_add_bad_llm_or_budget_input_exits_2(cli: Cli, args: list[str],
                                                    text: str) -> None:
    result = cli("agents", "add", "x", *args)
    assert result.exit_code == 2 and text in result.stderr, result.stderr
