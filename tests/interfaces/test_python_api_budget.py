"""The Python API declares budgets like the agents file does."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcron import Agentcron, RunContext
from agentcron.errors import ValidationError
from agentcron.models import OnBudget
from tests.support.helpers import stored_agent


def summarise(ctx: RunContext) -> str:
    ctx.record_usage(input_tokens=10, output_tokens=5, model="m")
    return "ok"


def test_a_decorated_agent_carries_its_budget(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    app = Agentcron(url, api=False)
    app.agent(budget={"tokens_per_day": 50_000, "usd_per_month": 20},
              on_budget="pause")(summarise)
    app.sync()
    budget = stored_agent(url, "summarise").budget
    assert budget is not None and budget.tokens_per_day == 50_000
    assert budget.usd_per_month == 20.0 and budget.on_budget is OnBudget.PAUSE


def test_a_bad_budget_is_refused_at_sync(tmp_path: Path) -> None:
    app = Agentcron(f"sqlite:///{tmp_path}/hub.db", api=False)
    app.agent(budget={"usd_per_day": 0})(summarise)
    with pytest.raises(ValidationError, match=r"budget\.usd_per_day"):
        app.sync()
