"""The model price table, and pricing finished attempts as they are written.

``price_outcomes`` runs inside ``Store.finish``'s transaction, before the fenced write: an
outcome with tokens and a model but no reported cost gets its cost from the table as it is
at that moment (see ``agentcron.rules.pricing``). One read for the whole batch, and none when no
outcome needs a price. A model without a price leaves the cost null (tokens are kept) and is
logged once per model per process (``model_price_unknown``).
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime

import structlog
from sqlalchemy import delete, select, true
from sqlalchemy.engine import Connection, RowMapping

from agentcron.errors import NotFoundError
from agentcron.models import ModelPrice, Outcome
from agentcron.rules.pricing import cost_of, needs_price
from agentcron.store.database import dialect_insert
from agentcron.store.schema import model_prices

log = structlog.get_logger(__name__)

_warned: set[str] = set()
_warned_lock = threading.Lock()


def price_outcomes(conn: Connection, outcomes: list[Outcome]) -> list[Outcome]:
    """``outcomes`` with ``usage.cost_usd`` filled in from the price table where the agent
    reported tokens and a model but no cost. Order and everything else unchanged."""
    models = {o.usage.model for o in outcomes if needs_price(o.usage)}
    if not models:
        return outcomes
    prices = {
        row["model"]: _price(row)
        for row in conn.execute(
            select(model_prices).where(model_prices.c.model.in_(sorted(m for m in models if m)))
        ).mappings()
    }
    priced: list[Outcome] = []
    for outcome in outcomes:
        model = outcome.usage.model
        if not needs_price(outcome.usage) or model is None:
            priced.append(outcome)
        elif model in prices:
            cost = cost_of(outcome.usage, prices[model])
            priced.append(replace(outcome, usage=replace(outcome.usage, cost_usd=cost)))
        else:
            _warn_unpriced(model)
            priced.append(outcome)
    return priced


def _warn_unpriced(model: str) -> None:
    with _warned_lock:
        if model in _warned:
            return
        _warned.add(model)
    log.warning("model_price_unknown", model=model,
                detail="tokens are recorded, cost stays empty; set a price with "
                       f"`agentcron prices set {model!r} --input USD --output USD` or "
                       "[prices] in the agents file (logged once per model per process)")


def _price(row: RowMapping) -> ModelPrice:
    return ModelPrice(model=row["model"], input_per_mtok=row["input_per_mtok"],
                      output_per_mtok=row["output_per_mtok"], source=row["source"],
                      updated_at=row["updated_at"])


def set_price(conn: Connection, price: ModelPrice, now: datetime) -> None:
    """Create or replace the price of ``price.model``."""
    values = {"model": price.model, "input_per_mtok": price.input_per_mtok,
              "output_per_mtok": price.output_per_mtok, "source": price.source,
              "updated_at": now}
    conn.execute(
        dialect_insert(conn, model_prices).values(**values).on_conflict_do_update(
            index_elements=["model"], set_={k: v for k, v in values.items() if k != "model"})
    )


def list_prices(conn: Connection) -> list[ModelPrice]:
    stmt = select(model_prices).order_by(model_prices.c.model)
    return [_price(row) for row in conn.execute(stmt).mappings()]


def delete_price(conn: Connection, model: str) -> None:
    if conn.execute(delete(model_prices).where(model_prices.c.model == model)).rowcount == 0:
        raise NotFoundError("price for model", model)


def apply_declared_prices(conn: Connection, source: str, prices: list[ModelPrice],
                          now: datetime) -> int:
    """Make the prices owned by ``source`` exactly ``prices`` (a declared price replaces one
    set by hand for the same model). Returns how many were removed."""
    for price in prices:
        set_price(conn, replace(price, source=source), now)
    keep = [p.model for p in prices]
    return conn.execute(
        delete(model_prices).where(
            model_prices.c.source == source,
            model_prices.c.model.not_in(keep) if keep else true(),
        )
    ).rowcount
