"""Normalise and check an agent's kind-specific config, as the CLI, API and TOML file give it.

``validate_agent_config(kind, raw)`` returns the config as stored in ``AgentSpec.config`` or
raises ``ValidationError(field, message, hint)`` naming the bad field. It imports nothing and
touches no file: a python target or a cwd may exist only on the nodes that run the agent.

- python: ``{"target": "pkg.module:function"}`` -> same
- command: ``{"command": "echo hi"}`` (split like a shell, no shell features) or
  ``{"argv": [...]}``, plus ``env`` (str -> str), ``inherit_env`` (names of the node's
  environment variables to pass on), ``cwd``, ``output_limit``, ``kill_grace_s``
  -> ``{"argv", "env", "cwd", "output_limit"}`` (+ ``inherit_env`` and ``kill_grace_s`` when
  given)
- http: ``{"url", "secret", "headers", "output_limit"}`` -> ``{"url", "secret", "headers"}``
  (+ ``output_limit`` when given)
- llm: see ``agents.llm_config`` (+ ``output_limit`` when given)
- remote: ``{}`` -> ``{}`` (+ ``output_limit`` when given: what a worker's output is cut to)
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
from typing import Any
from urllib.parse import urlsplit

from agentcron.errors import ValidationError
from agentcron.executors.base import OUTPUT_LIMIT
from agentcron.executors.llm_config import LLM_KEYS, validate_llm_config
from agentcron.executors.signing import SECRET_PREFIX, secret_key
from agentcron.models import AgentKind

MAX_OUTPUT_LIMIT = 16 * 1024 * 1024
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_TARGET = re.compile(rf"{_DOTTED}:{_DOTTED}", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 token
MAX_INHERIT_ENV = 100
_RESERVED_HEADERS = frozenset(
    {"idempotency-key", "content-type", "content-length", "host", "user-agent", "transfer-encoding"}
)
_KEYS = {
    AgentKind.PYTHON: ("target", "output_limit"),
    AgentKind.COMMAND: ("command", "argv", "env", "inherit_env", "cwd", "output_limit",
                        "kill_grace_s"),
    AgentKind.HTTP: ("url", "secret", "headers", "output_limit"),
    AgentKind.LLM: LLM_KEYS,
    AgentKind.REMOTE: ("output_limit",),
}


def validate_agent_config(kind: AgentKind, raw: dict[str, Any]) -> dict[str, Any]:
    """The stored form of ``raw`` for an agent of ``kind``; ``ValidationError`` if invalid."""
    try:
        kind = AgentKind(kind)
    except ValueError:
        valid = ", ".join(k.value for k in AgentKind)
        raise ValidationError("kind", f"unknown agent kind {kind!r}", f"one of {valid}") from None
    if not isinstance(raw, dict):
        raise ValidationError(kind.value, f"config must be a table/object, got {_kind(raw)}")
    _reject_unknown(kind, raw)
    config: dict[str, Any]
    if kind is AgentKind.PYTHON:
        config = {"target": _target(raw.get("target"))}
    elif kind is AgentKind.COMMAND:
        config = _command(raw)
    elif kind is AgentKind.LLM:
        config = validate_llm_config(raw)
    elif kind is AgentKind.REMOTE:
        config = {}  # what runs it is the worker's business; nothing to check here
    else:
        config = _http(raw)
    if "output_limit" in raw:
        config["output_limit"] = _output_limit(raw["output_limit"])
    return config


def _reject_unknown(kind: AgentKind, raw: dict[str, Any]) -> None:
    allowed = _KEYS[kind]
    for key in raw:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValidationError(
                kind.value,
                f"unknown setting {key!r} for a {kind.value} agent",
                hint + "valid: " + ", ".join(allowed),
            )


def _target(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("python", "a python agent needs a target", "e.g. 'myapp.jobs:run'")
    target: str = value.strip()
    if not _TARGET.fullmatch(target):
        raise ValidationError(
            "python",
            f"invalid target {target!r}",
            "write 'package.module:function' or 'module:Class.method'",
        )
    return target


def _command(raw: dict[str, Any]) -> dict[str, Any]:
    if ("command" in raw) == ("argv" in raw):
        raise ValidationError(
            "command", "give exactly one of 'command' and 'argv'", "e.g. command = 'echo hi'"
        )
    if "command" in raw:
        line = raw["command"]
        if not isinstance(line, str):
            raise ValidationError("command", f"must be a string, got {_kind(line)}")
        try:
            argv = shlex.split(line)
        except ValueError as exc:  # "No closing quotation"
            raise ValidationError(
                "command", f"cannot split {line!r}: {exc}", "balance quotes"
            ) from None
    else:
        argv = raw["argv"]
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValidationError("argv", "must be a list of strings", 'e.g. ["python", "job.py"]')
    if not argv or not argv[0]:
        raise ValidationError("command", "the command is empty", "name a program to run")
    if any("\0" in a for a in argv):
        raise ValidationError("command", "arguments cannot contain NUL bytes")
    config: dict[str, Any] = {
        "argv": list(argv),
        "env": _env(raw.get("env")),
        "cwd": _cwd(raw.get("cwd")),
        "output_limit": OUTPUT_LIMIT,
    }
    if raw.get("inherit_env") is not None:
        config["inherit_env"] = _inherit_env(raw["inherit_env"])
    if "kill_grace_s" in raw:
        grace = raw["kill_grace_s"]
        number = isinstance(grace, int | float) and not isinstance(grace, bool)
        if not number or not math.isfinite(grace) or not 0 <= grace <= 3600:
            raise ValidationError("kill_grace_s", f"invalid {grace!r}", "seconds from 0 to 3600")
        config["kill_grace_s"] = float(grace)
    return config


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("env", f"must be a table of strings, got {_kind(value)}")
    env: dict[str, str] = {}
    for name, val in value.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise ValidationError("env", f"invalid variable name {name!r}", "letters, digits, _")
        if name.upper().startswith("AGENTCRON_"):
            raise ValidationError(
                "env", f"{name} is reserved", "agentcron sets AGENTCRON_* for every run"
            )
        if not isinstance(val, str):
            raise ValidationError(
                "env", f"{name} must be a string, got {_kind(val)}", f'quote it: {name} = "{val}"'
            )
        if "\0" in val:
            raise ValidationError("env", f"{name} contains a NUL byte")
        env[name] = val
    return env


def _inherit_env(value: Any) -> list[str]:
    """Names of the node's variables a command agent may see (it starts from a clean
    environment). agentcron's own settings are refused: the database URL and the secret
    key must never reach an agent, and the executor drops them even from a stored list."""
    hint = 'names of the node\'s environment variables, e.g. ["OPENAI_API_KEY"]'
    if not isinstance(value, list):
        raise ValidationError("inherit_env", f"must be a list of names, got {_kind(value)}", hint)
    if len(value) > MAX_INHERIT_ENV:
        raise ValidationError("inherit_env", f"lists {len(value)} names",
                              f"at most {MAX_INHERIT_ENV}")
    names: list[str] = []
    for name in value:
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise ValidationError("inherit_env", f"invalid variable name {name!r}", hint)
        if name.upper().startswith("AGENTCRON_"):
            raise ValidationError(
                "inherit_env", f"{name} is agentcron's own setting and is never passed to "
                "agents", "agentcron sets AGENTCRON_RUN_ID and the other run variables itself"
            )
        if name not in names:
            names.append(name)
    return names


def _cwd(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\0" in value:
        raise ValidationError("cwd", f"invalid directory {value!r}", "give a directory path")
    return value


def _http(raw: dict[str, Any]) -> dict[str, Any]:
    url = raw.get("url")
    if not isinstance(url, str) or not url:
        raise ValidationError("http", "an http agent needs a url", "e.g. https://agents.local/run")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValidationError("http", f"invalid url {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("http", f"invalid url {url!r}", "give an http:// or https:// URL")
    return {"url": url, "secret": _secret(raw.get("secret")), "headers": _headers(raw)}


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError("secret", "must be a non-empty string", "whsec_<base64> or text")
    try:
        secret_key(value)
    except ValueError as exc:
        raise ValidationError(
            "secret", str(exc), f"{SECRET_PREFIX}<base64 of 24 to 64 random bytes>"
        ) from exc
    return value


def _headers(raw: dict[str, Any]) -> dict[str, str]:
    value = raw.get("headers")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("headers", f"must be a table of strings, got {_kind(value)}")
    headers: dict[str, str] = {}
    for name, val in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValidationError("headers", f"invalid header name {name!r}")
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith("webhook-"):
            raise ValidationError("headers", f"{name} is set by agentcron", "remove it")
        if not isinstance(val, str) or not val.isascii() or any(c in val for c in "\r\n\0"):
            raise ValidationError("headers", f"{name} must be a one-line ASCII string")
        headers[name] = val
    return headers


def _output_limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OUTPUT_LIMIT:
        raise ValidationError(
            "output_limit", f"invalid {value!r}", f"an integer from 1 to {MAX_OUTPUT_LIMIT}"
        )
    return value


def _kind(value: Any) -> str:
    return type(value).__name__
