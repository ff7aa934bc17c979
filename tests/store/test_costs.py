"""Model prices, the cost of a run, and cost reports, on both backends."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from agentcron.errors import NotFoundError, ValidationError
from agentcron.models import Usage
from agentcron.services import Services
from agentcron.services.agents_file import load_agents_file
from agentcron.services.spending import Spending
from agentcron.store import Store
from tests.conftest import T0
from tests.support.budgets import agent_with_budget, spend


def _finish(store: Store, agent: str, usage: Usage) -> str:
    return spend(store, agent, T0, usage)


def test_prices_are_set_replaced_listed_and_removed(store: Store) -> None:
    spending = Spending(store)
    spending.set_price("gpt-4o-mini", 0.15, 0.6, now=T0)
    spending.set_price("gpt-4o-mini", 0.2, 0.8, now=T0)
    spending.set_price("llama3", 0, 0, now=T0)
    [first, second] = spending.list_prices()
    assert (first.model, first.input_per_mtok, first.output_per_mtok) == ("gpt-4o-mini", 0.2, 0.8)
    assert second.model == "llama3" and first.updated_at == T0
    spending.remove_price("llama3")
    with pytest.raises(NotFoundError):
        spending.remove_price("llama3")
    assert [p.model for p in spending.list_prices()] == ["gpt-4o-mini"]


@pytest.mark.parametrize(("model", "inp", "out", "field"), [
    ("", 1, 1, "model"), ("m", -1, 1, "input_per_mtok"), ("m", 1, float("inf"), "output_per_mtok"),
    ("m", True, 1, "input_per_mtok"), (" m", 1, 1, "model"),
])
def test_bad_prices_are_refused(store: Store, model: str, inp: float, out: float,
                                field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Spending(store).set_price(model, inp, out)
    assert info.value.field == field
    assert Spending(store).list_prices() == []


def test_cost_comes_from_the_price_table_unless_the_agent_reported_one(store: Store) -> None:
    Spending(store).set_price("m", 2.0, 10.0, now=T0)
    agent_with_budget(store, "a", None, now=T0)
    computed = _finish(store, "a", Usage(1000, 500, model="m"))
    reported = _finish(store, "a", Usage(1000, 500, cost_usd=0.5, model="m"))
    one_side = _finish(store, "a", Usage(input_tokens=1_000_000, model="m"))
    assert store.get_run(computed).cost_usd == pytest.approx(0.007)
    assert store.get_run(reported).cost_usd == 0.5
    assert store.get_run(one_side).cost_usd == pytest.approx(2.0)


def test_an_unknown_model_keeps_tokens_no_cost_and_is_logged_once(store: Store) -> None:
    agent_with_budget(store, "a", None, now=T0)
    # Warnings are once per model per process: names no other test uses start unwarned.
    mystery, another = f"mystery-{uuid.uuid4().hex}", f"another-{uuid.uuid4().hex}"
    with structlog.testing.capture_logs() as logs:
        first = _finish(store, "a", Usage(10, 20, model=mystery))
        _finish(store, "a", Usage(1, 2, model=mystery))
        _finish(store, "a", Usage(1, 2, model=another))
    run = store.get_run(first)
    assert (run.input_tokens, run.output_tokens, run.cost_usd, run.model) == (10, 20, None,
                                                                              mystery)
    warned = [e["model"] for e in logs if e["event"] == "model_price_unknown"]
    assert warned == [mystery, another]


def test_a_new_price_applies_to_later_runs_only(store: Store) -> None:
    agent_with_budget(store, "a", None, now=T0)
    before = _finish(store, "a", Usage(1_000_000, 0, model="m"))
    Spending(store).set_price("m", 1.0, 1.0, now=T0)
    after = _finish(store, "a", Usage(1_000_000, 0, model="m"))
    assert store.get_run(before).cost_usd is None
    assert store.get_run(after).cost_usd == 1.0


def _report_fixture(store: Store) -> None:
    Spending(store).set_price("cheap", 1.0, 1.0, now=T0)
    agent_with_budget(store, "a", None, now=T0)
    agent_with_budget(store, "b", None, now=T0)
    spend(store, "a", T0, Usage(1_000_000, 0, model="cheap"))                    # $1
    spend(store, "a", T0 + timedelta(days=1), Usage(0, 2_000_000, model="cheap"))  # $2
    spend(store, "b", T0 + timedelta(days=1), Usage(500, 500, model="unpriced"))  # unknown
    spend(store, "b", T0 + timedelta(days=2), Usage(cost_usd=4.0))               # reported
    store.fire_now("b", None, T0)  # queued, never started: not in any report


def test_cost_report_by_agent_model_trigger_and_day(store: Store) -> None:
    _report_fixture(store)
    spending = Spending(store)
    by_agent = spending.cost_report("agent", since=T0 - timedelta(days=1),
                                    now=T0 + timedelta(days=3)).rows
    assert [(r.key, r.runs, r.input_tokens, r.output_tokens, r.cost_usd, r.unpriced_runs)
            for r in by_agent] == [
        ("b", 2, 500, 500, 4.0, 1),
        ("a", 2, 1_000_000, 2_000_000, 3.0, 0),
    ]
    by_model = {r.key: r for r in spending.cost_report("model", since=T0).rows}
    assert set(by_model) == {"cheap", "unpriced", "(none)"}
    assert by_model["unpriced"].unpriced_runs == 1 and by_model["unpriced"].cost_usd == 0.0
    by_trigger = spending.cost_report("trigger", since=T0).rows
    assert [r.key for r in by_trigger] == ["(manual)"] and by_trigger[0].runs == 4
    by_day = spending.cost_report("day", since="2026-01-05").rows
    assert [(r.key, r.runs, r.cost_usd) for r in by_day] == [
        ("2026-01-05", 1, 1.0), ("2026-01-06", 2, 2.0), ("2026-01-07", 1, 4.0),
    ]


def test_cost_report_range_and_limit(store: Store) -> None:
    _report_fixture(store)
    spending = Spending(store)
    only_day_2 = spending.cost_report("day", since=T0 + timedelta(days=1),
                                      until="2026-01-07")
    assert [r.key for r in only_day_2.rows] == ["2026-01-06"] and not only_day_2.truncated
    two = spending.cost_report("day", since=T0, limit=2)
    assert len(two.rows) == 2 and two.truncated
    default_window = spending.cost_report("agent", now=T0 + timedelta(days=40))
    assert default_window.rows == []  # 30 days back by default
    assert default_window.since == T0 + timedelta(days=10)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"by": "week"}, "by"), ({"limit": 0}, "limit"), ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-05", "until": "2026-01-05"}, "until"),
])
def test_cost_report_input_is_validated(store: Store, kwargs: dict[str, object],
                                        field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Spending(store).cost_report(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_the_agents_file_declares_prices_and_budgets(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('''
[agents.digest]
llm = "gpt-4o-mini"
base_url = "http://127.0.0.1:9/v1"
api_key_env = "OPENAI_API_KEY"
prompt = "Summarise {{ text }}"
budget = { usd_per_day = 2.5, tokens_per_month = 1_000_000, tz = "Europe/Berlin" }
on_budget = "pause"

[[agents.digest.triggers]]
cron = "0 9 * * *"
payload = { text = "the news" }

[prices."gpt-4o-mini"]
input_per_mtok = 0.15
output_per_mtok = 0.6
''')
    Spending(store).set_price("by-hand", 1, 1, now=T0)
    report = Services(store).sync_agents_file(load_agents_file(path), now=T0)
    assert report["prices"] == 1
    agent = store.get_agent("digest")
    assert agent.budget is not None and agent.budget.usd_per_day == 2.5
    assert agent.budget.timezone == "Europe/Berlin" and agent.budget.on_budget.value == "pause"
    assert agent.config["api_key_env"] == "OPENAI_API_KEY"
    assert {p.model: p.source for p in store.list_prices()} == {"gpt-4o-mini": "file",
                                                                "by-hand": "cli"}
    # Dropping the price from the file removes it; the one set by hand stays.
    path.write_text(path.read_text().split("[prices.")[0])
    Services(store).sync_agents_file(load_agents_file(path), now=T0)
    assert [p.model for p in store.list_prices()] == ["by-hand"]
