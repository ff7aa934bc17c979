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
- A render is bounded in time and memory, because the payload (a webhook's body) may drive
  it: it must finish within ``MAX_RENDER_SECONDS`` of CPU-bound work. The bound is enforced
  *inside* the rendering thread, by a trace function that checks the deadline on every line
  of the compiled template (loops, macros, recursion) and raises, since a thread cannot be
  killed from outside. Intermediate values that could blow up memory before the deadline
  is checked are bounded by construct limits: ``~`` and ``+`` of strings/lists, ``*`` and
  ``**`` are refused past ``MAX_PROMPT_CHARS`` (or a result of more than ``MAX_INT_BITS``
  bits), and calls and filters refuse a number argument or a format width larger than that.
  The llm executor renders in a worker thread (``asyncio.to_thread``), so a slow template
  costs the node one thread for at most ``MAX_RENDER_SECONDS``, never its event loop. A
  breach is a ``TemplateError`` (the run fails without retry).
- Every failure is a ``TemplateError`` whose message says what is wrong and where, for
  a person to fix; compiled templates are cached (bounded) by their text.
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_PROMPT_CHARS = 1_000_000
"""Characters a rendered prompt may have (far above any model's context)."""

MAX_RENDER_SECONDS = 2.0
"""Time a render may take; far above any real prompt (microseconds to milliseconds)."""
MAX_INT_BITS = 4096
"""Bits an integer a template computes with ``**`` or ``*`` may have."""

# A width or precision of 7+ digits in a %-format or a str.format spec ("%099999999d",
# "{:>99999999}") would allocate that many characters before any check could run.
_HUGE_WIDTH = re.compile(r"(%|\{[^{}]*:)[^a-zA-Z%{}]*?\d{7,}")


class _Deadline(threading.local):
    at: float | None = None


_deadline = _Deadline()


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles ``a ~ b`` through ``environment.bounded_concat`` (Jinja's own concat is not
    routed through the sandbox), so repeated doubling cannot exhaust memory."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox with the construct limits of the module docstring."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def bounded_concat(self, parts: tuple[Any, ...]) -> str:
        _check_deadline()
        text = "".join(str(part) for part in parts)
        _check_size(len(text), "a `~` concatenation")
        return text

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _check_deadline()
        if (operator == "**" and isinstance(left, int) and isinstance(right, int)
                and right > 0 and abs(left) > 1 and left.bit_length() * right > MAX_INT_BITS):
            raise TemplateError(f"`{left} ** {right}` is too large a number")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int):
                    _check_size(len(seq) * max(n, 0), "a `*` repetition")
            if isinstance(left, int) and isinstance(right, int) and (
                    left.bit_length() + right.bit_length() > MAX_INT_BITS):
                raise TemplateError("a `*` product is too large a number")
        if operator == "+" and isinstance(left, (str, list, tuple)) and hasattr(right, "__len__"):
            _check_size(len(left) + len(right), "a `+` concatenation")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        _check_arguments((*args, *kwargs.values()))
        # "{:>999999999}".format(x): the sandbox hands str.format over as a wrapper of the
        # bound method (``__wrapped__``), whose ``__self__`` is the format string.
        bound = (getattr(__obj, "__self__", None),
                 getattr(getattr(__obj, "__wrapped__", None), "__self__", None))
        for owner in bound:
            if isinstance(owner, str):
                _check_format(owner)
        return super().call(__context, __obj, *args, **kwargs)


def _check_deadline() -> None:
    at = _deadline.at
    if at is not None and time.monotonic() > at:
        raise TemplateError(f"rendering took longer than {MAX_RENDER_SECONDS:g}s "
                            "(a loop too long for a prompt?)")


def _check_size(size: int, what: str) -> None:
    if size > MAX_PROMPT_CHARS:
        raise TemplateError(f"{what} would be longer than {MAX_PROMPT_CHARS:,} characters")


def _check_format(text: str) -> None:
    if _HUGE_WIDTH.search(text):
        raise TemplateError("a format width or precision of 7 or more digits is refused")


def _check_arguments(values: tuple[Any, ...]) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and (
                abs(value) > MAX_PROMPT_CHARS):
            raise TemplateError(f"the number argument {value} is larger than "
                                f"{MAX_PROMPT_CHARS:,}")
        if isinstance(value, str):
            _check_format(value)


def _bounded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _check_deadline()
        # The first argument is the value filtered (or the context): only the others are
        # widths, counts and formats a template chose.
        _check_arguments(tuple(a for a in args[1:] if not isinstance(a, jinja2.runtime.Context))
                         + tuple(kwargs.values()))
        if name == "format" and args and isinstance(args[0], str):
            _check_format(args[0])
        return fn(*args, **kwargs)
    return bounded


_ENV = _BoundedSandbox(
    undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_ENV.filters = {name: _bounded_filter(name, fn) for name, fn in _ENV.filters.items()}


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
    previous_trace = sys.gettrace()
    _deadline.at = time.monotonic() + MAX_RENDER_SECONDS
    sys.settrace(_trace)
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
    except (MemoryError, RecursionError) as exc:
        raise TemplateError(f"cannot render: {type(exc).__name__} (the template recurses or "
                            "builds values too large for a prompt)") from None
    except Exception as exc:  # a filter or test failing on the data (e.g. int("x"))
        raise TemplateError(f"cannot render: {type(exc).__name__}: {exc}") from None
    finally:
        sys.settrace(previous_trace)
        _deadline.at = None
    return "".join(chunks)


def _trace(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
    """The per-thread trace function of a render: checks the deadline at every call and
    every line, so no loop of the compiled template can outlive it."""
    _check_deadline()
    return _trace


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
