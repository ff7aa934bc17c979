"""Hostile values every front door must refuse (or, stored anyway, must still show)."""

from __future__ import annotations

import json
from typing import Any


def nested(depth: int) -> Any:
    """A JSON value nested ``depth`` levels deep: ``[[...[1]...]]``."""
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# Each class of hostile value as JSON text, as a command line or an HTTP body carries it.
HOSTILE_TEXT: dict[str, str] = {
    "deep": "[" * 65 + "]" * 65,
    "very deep": "[" * 100_000 + "]" * 100_000,
    "lone surrogate": '{"text": "\\ud800"}',
    "NaN": '{"x": NaN}',
    "Infinity": "[Infinity, -Infinity]",
    "huge": json.dumps({"blob": "x" * (256 * 1024)}),
}
