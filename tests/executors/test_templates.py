"""Prompt templates are bounded: a payload-driven loop stops at the time limit, and values
that would blow up memory are refused before they are built."""

from __future__ import annotations

import time

import pytest

from agentcron.executors import templates
from agentcron.executors.templates import MAX_RENDER_SECONDS, TemplateError, render

RUN = dict(templates.PLACEHOLDER_RUN)

LOOPS = [
    # Nested loops over range: 10^15 iterations with no output.
    "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    # Nested loops over the payload, no function call inside.
    "{% for a in payload %}{% for b in payload %}{% for c in payload %}{% for d in payload %}"
    "{% endfor %}{% endfor %}{% endfor %}{% endfor %}",
    # Unbounded recursion through a macro that does nothing.
    "{% macro f(n) %}{% for i in range(3) %}{{ f(n) if n else '' }}{% endfor %}"
    "{% endmacro %}{{ f(1) }}",
]


@pytest.mark.parametrize("text", LOOPS)
def test_a_template_that_loops_too_long_is_stopped_at_the_time_limit(text: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"longer than|recurses"):
        render(text, list(range(1000)), RUN)
    assert time.monotonic() - started < MAX_RENDER_SECONDS + 2


@pytest.mark.parametrize("text, message", [
    ("{{ 'a' * 1000000000 }}", "repetition"),
    ("{{ [1] * 1000000000 }}", "repetition"),
    ("{{ 10 ** 100000000 }}", "too large"),
    ("{% macro d(s, n) %}{{ d(s ~ s, n - 1) if n else s|length }}{% endmacro %}"
     "{{ d('ab', 60) }}", "concatenation"),
    ("{% macro d(s, n) %}{{ d(s + s, n - 1) if n else s|length }}{% endmacro %}"
     "{{ d('ab', 60) }}", "concatenation"),
    ("{{ '%0999999999d' % 1 }}", "width"),
    ("{{ '%0999999999d'|format(1) }}", "width"),
    ("{{ '{:>999999999}'.format(1) }}", "width"),
    ("{{ 'a'|center(1000000000) }}", "larger than"),
    ("{{ 'a'.center(1000000000) }}", "larger than"),
])
def test_values_too_large_for_a_prompt_are_refused_before_they_are_built(
        text: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match=message):
        render(text, None, RUN)
    assert time.monotonic() - started < 1


def test_ordinary_templates_still_render_and_the_trace_is_removed_after() -> None:
    text = ("{% for x in items %}{{ loop.index }}. {{ x ~ '!' }} {{ '%05.1f' % 3.14159 }} "
            "{{ 'ab' * 2 }} {{ 2 ** 10 }} {{ [1] + [2] }}\n{% endfor %}{{ 'x'|center(5) }}")
    out = render(text, {"items": ["a", "b"]}, RUN)
    assert out == ("1. a! 003.1 abab 1024 [1, 2]\n2. b! 003.1 abab 1024 [1, 2]\n"
                   "  x  ")
    import sys
    assert sys.gettrace() is None or sys.gettrace() is not templates._trace
