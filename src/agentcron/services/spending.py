"""The service layer for money: model prices and cost reports, shared by the CLI and the HTTP
API (``Services.spending``). Every input is validated here, before the store is touched; a
bad input raises ``ValidationError`` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from agentcron.errors import ValidationError
from agentcron.models import AgentSpec, CostRow, ModelPrice
from agentcron.rules.budgets import LimitState, decide, limit_states
from agentcron.rules.pricing import check_model, parse_price
from agentcron.services.validate import check_aware, check_in, check_int_between
from agentcron.store import Store
from agentcron.store.costs import COST_GROUPS

DEFAULT_REPORT_DAYS = 30
MAX_REPORT_ROWS = 1000


@dataclass(frozen=True)
class CostReport:
    """A cost report: the groups of runs started in [since, until) and, when more groups
    exist than were asked for, ``truncated``."""

    by: str
    since: datetime
    until: datetime | None
    rows: list[CostRow]
    truncated: bool


@dataclass(frozen=True)
class BudgetState:
    """An agent's budget as it stands: each limit with what is used of it, and ``over``
    (the reason its runs are skipped) when a limit is reached."""

    limits: list[LimitState]
    over: str | None


class Spending:
    def __init__(self, store: Store) -> None:
        self.store = store

    def set_price(self, model: str, input_per_mtok: float, output_per_mtok: float, *,
                  source: str = "cli", now: datetime | None = None) -> ModelPrice:
        """Create or replace a model's price (USD per million input / output tokens). It
        applies to attempts written from now on; recorded costs are not recomputed."""
        price = parse_price(model, input_per_mtok, output_per_mtok, source)
        self.store.set_price(price, now)
        return next(p for p in self.store.list_prices() if p.model == price.model)

    def budget_states(self, agents: list[AgentSpec], now: datetime | None = None
                      ) -> dict[str, BudgetState]:
        """The budget state of each of ``agents`` that has a budget, by name, counted as
        the claiming transaction counts it."""
        budgeted = {a.name: a.budget for a in agents
                    if a.budget is not None and a.budget.has_limits}
        used = self.store.budget_usage(budgeted, now)
        return {name: BudgetState(limit_states(budget, used[name]),
                                  decide(budget, used[name]).over)
                for name, budget in budgeted.items()}

    def list_prices(self) -> list[ModelPrice]:
        return self.store.list_prices()

    def remove_price(self, model: str) -> None:
        """NotFoundError when the model has no price."""
        self.store.delete_price(check_model(model))

    def cost_report(self, by: str = "agent", since: str | date | datetime | None = None,
                    until: str | date | datetime | None = None, *, limit: int = MAX_REPORT_ROWS,
                    now: datetime | None = None) -> CostReport:
        """Tokens and cost of runs started in [since, until) grouped ``by`` agent, trigger,
        model or day (UTC). ``since`` defaults to 30 days before now; dates mean midnight
        UTC. At most ``limit`` groups (1..1000); ``by`` as ``cost_group`` reads it."""
        by = cost_group(by)
        check_int_between(limit, "limit", 1, MAX_REPORT_ROWS)
        start = parse_day_or_time(since, "since")
        end = parse_day_or_time(until, "until")
        if start is None:
            start = ((now or self.store.now()) - timedelta(days=DEFAULT_REPORT_DAYS)
                     ).replace(microsecond=0)
        if end is not None and end <= start:
            raise ValidationError("until", "is not after since", "give a later time")
        rows = self.store.cost_report(by, start, end, limit + 1)
        return CostReport(by, start, end, rows[:limit], truncated=len(rows) > limit)


def cost_group(by: str) -> str:
    """What a cost report is grouped by, as typed at any front door: any case, spaces
    around it; ``ValidationError`` naming ``by`` for anything but agent, trigger, model
    or day."""
    return check_in(by.strip().lower() if isinstance(by, str) else by, COST_GROUPS, "by")


def parse_day_or_time(value: str | date | datetime | None, field: str) -> datetime | None:
    """``2026-01-31`` (midnight UTC) or an ISO 8601 time with an offset (``Z`` allowed)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return check_aware(value, field) or value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = value.strip()
    try:
        if len(text) == 10:
            return parse_day_or_time(date.fromisoformat(text), field)
        return parse_day_or_time(datetime.fromisoformat(text.replace("Z", "+00:00")), field)
    except ValueError:
        raise ValidationError(field, f"cannot read {value!r} as a date or time",
                              "e.g. 2026-01-31 or 2026-01-31T09:00:00+01:00") from None
