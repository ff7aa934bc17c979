"""Reading what an agent reported back: ``{"output": ..., "usage": {...}}``.

HTTP agents answer with it and command agents may print it on stdout. The rules, shared by both:

- The text is a JSON object with an ``"output"`` and/or ``"usage"`` key: ``output`` is taken
  (a string as is, ``null`` as no output, any other JSON re-dumped) and ``usage`` parsed.
  Without an ``"output"`` key the stored output is the whole text.
- A ``"schedule"`` key asks for follow-up triggers (``executors.follow_ups``): a list of
  request objects (or one object); a bad request is refused when the outcome is written and
  recorded on the run, never failing it. An object with only ``"schedule"`` keeps the whole
  text as the output.
- Anything else (plain text, a JSON list, a JSON object without those keys) is the output.
- ``usage`` is ``{input_tokens, output_tokens, cost_usd, model}``, every key optional; an
  invalid value is ignored with a log line, never failing a run that did its work.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from structlog.typing import FilteringBoundLogger

from agentcron.executors.base import OUTPUT_LIMIT, truncate
from agentcron.executors.follow_ups import requests_of
from agentcron.models import Usage


def parse_reported(
    text: str, log: FilteringBoundLogger, limit: int = OUTPUT_LIMIT
) -> tuple[str | None, Usage | None]:
    """``(output, usage)`` from an agent's response text (see the module docstring)."""
    output, usage, _ = parse_answer(text, log, limit, None)
    return output, usage


def parse_answer(
    text: str, log: FilteringBoundLogger, limit: int = OUTPUT_LIMIT,
    now: datetime | None = None,
) -> tuple[str | None, Usage | None, tuple[Any, ...]]:
    """``(output, usage, follow-up requests)`` from an agent's response text (see the
    module docstring); ``now`` is when the answer arrived (``in`` counts from it), None to
    ignore ``"schedule"``."""
    obj = _json_object(text)
    if obj is None:
        return truncate(text, limit), None, ()
    schedule: tuple[Any, ...] = ()
    if now is not None and "schedule" in obj:
        schedule = requests_of(obj["schedule"], now)
    output, usage = _reported(obj, text, log, limit)
    return output, usage, schedule


def _reported(obj: dict[str, Any], text: str, log: FilteringBoundLogger, limit: int
              ) -> tuple[str | None, Usage | None]:
    if "output" not in obj and "usage" not in obj:
        return truncate(text, limit), None
    usage = parse_usage(obj["usage"], log) if "usage" in obj else None
    if "output" not in obj:
        return truncate(text, limit), usage
    output = obj["output"]
    if output is None:
        return None, usage
    if not isinstance(output, str):
        output = json.dumps(output, ensure_ascii=False)
    return truncate(output, limit), usage


def parse_usage(raw: Any, log: FilteringBoundLogger) -> Usage | None:
    """A ``Usage`` from a reported ``usage`` object, dropping (and logging) invalid fields."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        log.warning("reported usage ignored: not an object", usage=_short(raw))
        return None
    counts: dict[str, int | None] = {}
    for key in ("input_tokens", "output_tokens"):
        value = raw.get(key)
        valid = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        if value is not None and not valid:
            log.warning("reported usage field ignored", field=key, value=_short(value))
        counts[key] = value if valid else None
    cost: Any = raw.get("cost_usd")
    cost_usd: float | None = None
    number = isinstance(cost, int | float) and not isinstance(cost, bool)
    if number and math.isfinite(cost) and cost >= 0:
        cost_usd = float(cost)
    if cost is not None and cost_usd is None:
        log.warning("reported usage field ignored", field="cost_usd", value=_short(cost))
    model = raw.get("model")
    if model is not None and not isinstance(model, str):
        log.warning("reported usage field ignored", field="model", value=_short(model))
        model = None
    usage = Usage(
        input_tokens=counts["input_tokens"],
        output_tokens=counts["output_tokens"],
        cost_usd=cost_usd,
        model=model,
    )
    return None if usage == Usage() else usage


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.lstrip().startswith("{"):  # cheap test before parsing megabytes of plain text
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _short(value: Any) -> str:
    return repr(value)[:100]
