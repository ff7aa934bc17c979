"""Fixtures the command-line tests share. ``js`` and ``bot`` build on the ``ok`` fixture of
the module that uses them (each module says what a successful command must look like)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def js(ok: Callable[..., str]) -> Callable[..., Any]:
    """Run a --json command; the whole stdout must be one JSON document."""

    def run(*args: str) -> Any:
        return json.loads(ok(*args, "--json"))

    return run


@pytest.fixture
def bot(ok: Callable[..., str]) -> str:
    """An agent named bot running the in-package no-op."""
    ok("agents", "add", "bot", "--python", "agentcron.examples:noop")
    return "bot"
