"""The config of an ``llm`` agent, checked and normalised (``validate_agent_config`` calls it).

Input (CLI, API, agents file)::

    {"base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini",
     "prompt": "Summarise: {{ text }}", "system": "You are terse.",
     "temperature": 0.2, "max_tokens": 400, "api_key_env": "OPENAI_API_KEY"}

Stored: the same keys, ``system``/``temperature``/``max_tokens``/``api_key_env`` as None when
not given. ``api_key_env`` is the *name* of an environment variable on the nodes; a value that
looks like a key rather than a name is refused, so a key never lands in the database.
The prompt must compile as a sandboxed Jinja2 template (see ``agents.templates``).
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from agentcron.errors import ValidationError
from agentcron.executors.templates import TemplateError, compile_template

LLM_KEYS = ("base_url", "model", "prompt", "system", "temperature", "max_tokens",
            "api_key_env", "output_limit")
MAX_MODEL_CHARS = 100
MAX_TOKENS_LIMIT = 10_000_000
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def validate_llm_config(raw: dict[str, Any]) -> dict[str, Any]:
    """The stored config for an llm agent; ``ValidationError`` naming the bad field."""
    return {
        "base_url": _base_url(raw.get("base_url")),
        "model": _model(raw.get("model")),
        "prompt": _template(raw.get("prompt"), "prompt", required=True),
        "system": _template(raw.get("system"), "system", required=False),
        "temperature": _temperature(raw.get("temperature")),
        "max_tokens": _max_tokens(raw.get("max_tokens")),
        "api_key_env": _api_key_env(raw.get("api_key_env")),
    }


def _base_url(value: Any) -> str:
    hint = "the API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:11434/v1"
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("base_url", "an llm agent needs a base_url", hint)
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValidationError("base_url", f"invalid url {value!r}: {exc}", hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("base_url", f"invalid url {value!r}", hint)
    if parts.path.endswith("/chat/completions"):
        raise ValidationError("base_url", "give the API root, not the endpoint",
                              f"use {url[: -len('/chat/completions')]!r}")
    if parts.username or parts.password:
        raise ValidationError("base_url", "credentials in the URL would be stored",
                              "put the key in an environment variable named by api_key_env")
    return url


def _model(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("model", "an llm agent needs a model", "e.g. 'gpt-4o-mini'")
    model = value.strip()
    if len(model) > MAX_MODEL_CHARS or any(ord(c) < 32 for c in model):
        raise ValidationError("model", f"invalid model name {value!r}",
                              f"1-{MAX_MODEL_CHARS} printable characters")
    return model


def _template(value: Any, field: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a non-empty string",
                              "e.g. 'Summarise for {{ channel }}: {{ text }}'")
    try:
        compile_template(value)
    except TemplateError as exc:
        raise ValidationError(field, f"template {exc}", "Jinja2 syntax: {{ name }}") from None
    return value


def _temperature(value: Any) -> float | None:
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or not 0 <= value <= 2:
        raise ValidationError("temperature", f"invalid {value!r}", "a number from 0 to 2")
    return float(value)


def _max_tokens(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise ValidationError("max_tokens", f"invalid {value!r}",
                              f"an integer from 1 to {MAX_TOKENS_LIMIT:,}")
    return value


def _api_key_env(value: Any) -> str | None:
    if value is None:
        return None
    hint = "the NAME of an environment variable that holds the key, e.g. OPENAI_API_KEY"
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        # Never echo the value: it may be the key itself.
        raise ValidationError("api_key_env", "is not an environment variable name", hint)
    if value.upper().startswith("AGENTCRON_"):
        raise ValidationError("api_key_env", f"{value} is reserved for agentcron's settings",
                              hint)
    return value
