"""Concurrency keys: what a run's key is, and the order in which a claim takes keys.

A key template is literal text with ``{{ name }}`` or ``{{ a.b.c }}`` placeholders, each
a path into the run's payload (a JSON object; a number in the path indexes a list). It is
deliberately not a Jinja template like an llm prompt (``executors/templates.py``): a key is
rendered by the store for every run it inserts, thousands per fire batch, inside the
firing transaction, so it must be pure, cheap and bounded by construction (no loops, no
filters, no calls) rather than by a deadline. It keeps the prompt's spelling of a variable,
so ``{{ tenant }}`` means the same in both.

Rendering never fails a fire: a payload the template does not fit (a missing name, a value
that is an object or a list, no payload) gives the key ``""``, which is a key like any
other (those runs share one ``max_per_key``). A rendered key longer than ``MAX_KEY_CHARS``
is cut to it.

Fair order (``fair_order``): round robin over keys, in the order of each key's oldest ready
run, oldest first within a key; a key of weight ``w`` takes ``w`` turns per round.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from agentcron.errors import ValidationError
from agentcron.models import KeyPolicy

MAX_KEY_CHARS = 200
"""Characters a rendered key keeps (``runs.concurrency_key`` is ``String(200)``)."""
MAX_TEMPLATE_CHARS = 500
MAX_WEIGHT = 1000
MAX_WEIGHTS = 10_000
"""Keys an agent may give a weight."""

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}")

T = TypeVar("T")


def check_template(text: Any, field_name: str = "concurrency_key") -> str:
    """The template, or ``ValidationError``: text of at most ``MAX_TEMPLATE_CHARS``
    characters with at least one placeholder and no ``{{`` or ``}}`` outside one."""
    fix = "write it like '{{ tenant }}' or 'org-{{ customer.id }}' (paths into the payload)"
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(field_name, "must be a non-empty template", fix)
    if len(text) > MAX_TEMPLATE_CHARS:
        raise ValidationError(field_name, f"is longer than {MAX_TEMPLATE_CHARS} characters",
                              fix)
    if not _PLACEHOLDER.search(text):
        raise ValidationError(field_name, "has no {{ placeholder }}: every run would share "
                              "one key", fix)
    rest = _PLACEHOLDER.sub("", text)
    if "{{" in rest or "}}" in rest or "{%" in rest:
        raise ValidationError(field_name, "has a placeholder that is not a plain name or "
                              "dotted path (no filters, calls or blocks)", fix)
    return text


def check_weights(weights: Any, field_name: str = "key_weights") -> dict[str, int]:
    """``{key: weight}`` with weights 1..``MAX_WEIGHT``, or ``ValidationError``."""
    if weights is None:
        return {}
    fix = "give a table of key = weight, e.g. {\"acme\" = 3}, weights 1 to 1000"
    if not isinstance(weights, Mapping):
        raise ValidationError(field_name, "must be a table of key = weight", fix)
    if len(weights) > MAX_WEIGHTS:
        raise ValidationError(field_name, f"has more than {MAX_WEIGHTS} keys", fix)
    result: dict[str, int] = {}
    for key, weight in weights.items():
        if not isinstance(key, str) or len(key) > MAX_KEY_CHARS:
            raise ValidationError(f"{field_name}.{key}", "must be a key of at most "
                                  f"{MAX_KEY_CHARS} characters", fix)
        if isinstance(weight, bool) or not isinstance(weight, int) or not (
                1 <= weight <= MAX_WEIGHT):
            raise ValidationError(f"{field_name}.{key}", f"must be a whole number from 1 to "
                                  f"{MAX_WEIGHT}, not {weight!r}", fix)
        result[key] = weight
    return result


def _lookup(payload: Any, path: str) -> Any:
    value = payload
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise LookupError(path)
    if isinstance(value, (Mapping, list)):
        raise LookupError(path)
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_key(template: str, payload: Any) -> str:
    """The key of a run with ``payload``; ``""`` when the payload does not fit the template
    (never an error: a fire must not fail on a key)."""
    try:
        key = _PLACEHOLDER.sub(lambda m: _text(_lookup(payload, m.group(1))), template)
    except LookupError:
        return ""
    return key[:MAX_KEY_CHARS]


def fair_order(ready: Sequence[tuple[str, Sequence[T]]], room: Mapping[str, int],
               weights: Mapping[str, int], n: int) -> list[T]:
    """Up to ``n`` items taken from ``ready`` (``(key, its items oldest first)``, keys in
    the order of their oldest item) in turn: each round, each key in order takes up to its
    weight (default 1) of its next items, while it has items and ``room`` (free places for
    that key; a key missing from ``room`` has none)."""
    queues = [(key, list(items), min(room.get(key, 0), len(items))) for key, items in ready]
    taken = {key: 0 for key, _, _ in queues}
    result: list[T] = []
    while len(result) < n:
        progress = False
        for key, items, limit in queues:
            turns = weights.get(key, 1)
            while turns and taken[key] < limit and len(result) < n:
                result.append(items[taken[key]])
                taken[key] += 1
                turns -= 1
                progress = True
        if not progress:
            break
    return result


def keys_to_json(policy: KeyPolicy | None) -> dict[str, Any] | None:
    """How ``agents.keys`` stores a policy (one JSON column: a new setting needs no
    migration)."""
    if policy is None:
        return None
    return {"template": policy.template, "max_per_key": policy.max_per_key,
            "weights": dict(policy.weights)}


def keys_from_json(value: Any) -> KeyPolicy | None:
    if not isinstance(value, Mapping) or not value.get("template"):
        return None
    return KeyPolicy(str(value["template"]), int(value.get("max_per_key") or 1),
                     dict(value.get("weights") or {}))
