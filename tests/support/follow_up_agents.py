"""Python agents that schedule follow-ups (importable as tests.support.follow_up_agents)."""

from __future__ import annotations

from typing import Any

from agentcron.executors import RunContext


def check_again(ctx: RunContext) -> dict[str, Any]:
    """Checks something and schedules its own next check in two hours, counting checks."""
    count = int((ctx.payload or {}).get("check", 0)) + 1
    ctx.schedule(in_="2h", payload={"check": count}, name=f"check {count} of {ctx.run_id}")
    return {"check": count}


def schedule_then_fail(ctx: RunContext) -> None:
    ctx.schedule(in_="2h")
    raise RuntimeError("the check itself failed")


def schedule_bad_cron(ctx: RunContext) -> str:
    ctx.schedule(cron="every tuesday")
    ctx.schedule(in_="3h")
    return "ok"


def check_once_more(ctx: RunContext) -> dict[str, Any]:
    """``check_again``, unless the payload says ``{"quiet": true}``."""
    if (ctx.payload or {}).get("quiet"):
        return {"quiet": True}
    return check_again(ctx)
