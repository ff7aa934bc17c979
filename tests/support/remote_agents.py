"""Agent code the worker processes of the tests run (``--python tests.support.remote_agents:X``).

The payload says what to do: ``{"mark": DIR, "sleep": seconds, "first_sleep": seconds,
"tag": text}`` (``first_sleep``, when given, is the first attempt's sleep). A run writes
``DIR/<run id>.<attempt>.<pid>`` when it starts, so a test knows which process runs which
attempt without reading logs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from agentcron.executors import RunContext


def _mark(ctx: RunContext) -> None:
    payload = ctx.payload if isinstance(ctx.payload, dict) else {}
    if "mark" in payload:
        Path(payload["mark"], f"{ctx.run_id}.{ctx.attempt}.{os.getpid()}").touch()


def sleeper(ctx: RunContext) -> dict[str, Any]:
    """Marks its start, sleeps ``sleep`` seconds (in steps, so a stop is noticed; a frozen
    process sleeps on after it thaws), then answers with its pid and attempt."""
    _mark(ctx)
    payload = ctx.payload if isinstance(ctx.payload, dict) else {}
    sleep = payload.get("first_sleep") if ctx.attempt == 1 else None
    end = time.monotonic() + float(sleep if sleep is not None else payload.get("sleep", 0))
    while (left := end - time.monotonic()) > 0:
        if ctx.cancel_event.wait(min(left, 0.1)):
            break
        ctx.heartbeat(f"{left:.1f}s left")
    return {"pid": os.getpid(), "attempt": ctx.attempt, "tag": payload.get("tag")}


def noop(ctx: RunContext) -> None:
    """Nothing: for throughput."""
