"""Cost maths and price input. Pure: no I/O.

A model's price is USD per million input (prompt) tokens and per million output (completion)
tokens. A run's cost is the cost its agent reported, when it reported one; otherwise it is
computed from the price of the model the run recorded:

    cost_usd = input_tokens * input_per_mtok / 1e6 + output_tokens * output_per_mtok / 1e6

A token count the agent did not report counts as 0 (so the cost is a lower bound), and a run
without a model or without a price for its model has no cost (null), with its tokens kept.
"""

from __future__ import annotations

import math
import re
from typing import Any

from agentcron.errors import ValidationError
from agentcron.models import ModelPrice, Usage

MAX_PRICE_PER_MTOK = 1_000_000.0
_MODEL = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


def cost_of(usage: Usage, price: ModelPrice) -> float | None:
    """The cost of ``usage`` at ``price``; None when no token count is known."""
    if usage.input_tokens is None and usage.output_tokens is None:
        return None
    return ((usage.input_tokens or 0) * price.input_per_mtok
            + (usage.output_tokens or 0) * price.output_per_mtok) / 1_000_000


def needs_price(usage: Usage) -> bool:
    """True when the cost must come from the price table: tokens and a model, no cost."""
    return (usage.cost_usd is None and usage.model is not None
            and (usage.input_tokens is not None or usage.output_tokens is not None))


def check_model(value: Any, field: str = "model") -> str:
    if not isinstance(value, str) or not _MODEL.match(value) or value != value.strip():
        raise ValidationError(field, f"invalid model name {str(value)[:100]!r}",
                              "1-100 printable characters, as the agent reports it")
    return value


def parse_price(model: Any, input_per_mtok: Any, output_per_mtok: Any,
                source: str = "cli") -> ModelPrice:
    """A validated ``ModelPrice``; ``ValidationError`` names the bad field."""
    return ModelPrice(
        model=check_model(model),
        input_per_mtok=_usd_per_mtok(input_per_mtok, "input_per_mtok"),
        output_per_mtok=_usd_per_mtok(output_per_mtok, "output_per_mtok"),
        source=source,
    )


def _usd_per_mtok(value: Any, field: str) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 <= value <= MAX_PRICE_PER_MTOK:
        raise ValidationError(field, f"invalid {value!r}",
                              "US dollars per million tokens, e.g. 0.15 (0 for free models)")
    return float(value)
