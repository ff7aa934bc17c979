"""Prompt templates for llm agents: Jinja2, sandboxed and strict.

Contract:

- A template is compiled in Jinja2's ``ImmutableSandboxedEnvironment``: templates cannot reach
  Python internals (``__class__``, ``__globals__`` ...), call unsafe methods or mutate the
  payload; a violation is a ``TemplateError``. Autoescaping is off (a prompt is not HTML).
- Undefined variables are errors (``StrictUndefined``), never an empty string: a prompt that
  silently lost its input would still be billed.
- The variables are the payload's top-level keys when the payload is a JSON object, plus
  ``payload`` (the whole payload, whatever its type) and ``run`` (``id``, ``attempt``,
  ``agent``, ``trigger_id``, ``scheduled_for`` as ISO 8601 UTC). ``payload`` and ``run`` win
  over payload keys of the same name.
- The rendered prompt is capped at ``MAX_PROMPT_CHARS``; a longer one is an error.
- Every failure is a ``TemplateError`` whose message says what is wrong and where, for
  a person to fix; compiled templates are cached (bounded) by their text.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_PROMPT_CHARS = 1_000_000
"""Characters a rendered prompt may have (far above any model's context)."""

_ENV = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)


class TemplateError(ValueError):
    """A prompt template that does not compile or cannot be rendered with its inputs."""


def compile_template(text: str) -> jinja2.Template:
    """The compiled template; ``TemplateError`` naming the line for a syntax error."""
    if not isinstance(text, str):
        raise TemplateError(f"a template must be a string, got {type(text).__name__}")
    return _compile(text)


@functools.lru_cache(maxsize=256)
def _compile(text: str) -> jinja2.Template:
    try:
        return _ENV.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"syntax error on line {exc.lineno}: {exc.message}") from None


def template_variables(payload: Any, run: dict[str, Any]) -> dict[str, Any]:
    """The names a template sees for this payload and run (see the module docstring)."""
    variables: dict[str, Any] = {}
    if isinstance(payload, dict):
        variables.update({str(k): v for k, v in payload.items()})
    variables["payload"] = payload
    variables["run"] = run
    return variables


def render(text: str, payload: Any, run: dict[str, Any]) -> str:
    """Render ``text`` for ``payload`` and ``run``; ``TemplateError`` with a clear message if
    a variable is missing, the sandbox refuses something, or the result is too long."""
    template = compile_template(text)
    chunks: list[str] = []
    size = 0
    try:
        for chunk in template.generate(template_variables(payload, run)):
            size += len(chunk)
            if size > MAX_PROMPT_CHARS:
                raise TemplateError(
                    f"the rendered prompt is longer than {MAX_PROMPT_CHARS:,} characters"
                )
            chunks.append(chunk)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{exc.message}; {_available(payload)}") from None
    except SecurityError as exc:
        raise TemplateError(f"refused by the template sandbox: {exc}") from None
    except TemplateError:
        raise
    except Exception as exc:  # a filter or test failing on the data (e.g. int("x"))
        raise TemplateError(f"cannot render: {type(exc).__name__}: {exc}") from None
    return "".join(chunks)


PLACEHOLDER_RUN: dict[str, Any] = {
    "id": "00000000-0000-7000-8000-000000000000",
    "attempt": 1,
    "agent": "agent",
    "trigger_id": "tr_placeholder",
    "scheduled_for": "2026-01-01T00:00:00+00:00",
}
"""The ``run`` a static check renders with: every field present, values representative."""


def check_renders(text: str, payload: Any, agent: str) -> None:
    """Render once with ``payload`` and a placeholder run, so a template that needs a
    variable a static payload lacks is refused before anything is stored."""
    render(text, payload, {**PLACEHOLDER_RUN, "agent": agent})


def _available(payload: Any) -> str:
    if isinstance(payload, dict) and payload:
        keys = ", ".join(sorted(str(k) for k in payload)[:20])
        return f"the payload has: {keys} (and `payload`, `run`)"
    if payload is None:
        return "the run has no payload (only `payload` = none and `run` are defined)"
    return (f"the payload is a {type(payload).__name__}, not an object: use `payload` "
            "(and `run`)")
