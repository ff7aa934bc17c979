"""Example agents used by ``examples/agents.toml`` (importable wherever agentcron is)."""

from __future__ import annotations

import platform
from datetime import UTC, datetime
from typing import Any

from agentcron.executors import RunContext


def hello(ctx: RunContext) -> dict[str, Any]:
    """Say hello with the payload's name; shows the run id an agent should use as its
    idempotency key, and records a (pretend) token usage."""
    name = (ctx.payload or {}).get("name", "world") if isinstance(ctx.payload, dict) else "world"
    ctx.record_usage(input_tokens=12, output_tokens=5, model="example-model")
    return {
        "greeting": f"hello, {name}",
        "run_id": ctx.run_id,
        "scheduled_for": ctx.scheduled_for.isoformat(),
        "ran_at": datetime.now(UTC).isoformat(),
    }


async def system_report(ctx: RunContext) -> str:
    """An async agent: reports where it ran."""
    ctx.heartbeat("collecting")
    return f"{platform.node()} {platform.system()} {platform.release()} attempt={ctx.attempt}"


def noop(ctx: RunContext) -> None:
    """Does nothing, as fast as possible (benchmarks and tests)."""
    return None
