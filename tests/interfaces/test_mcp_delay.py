"""An MCP ``delay`` is measured by the guardrails from the moment it counts from: the tool
reads the clock once, so a delay of exactly the agent's ``min_interval`` is never refused
because time passed between two reads. Driven by the official SDK's client, in memory,
against the real tools on a SQLite store whose clock moves on with each read."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mcp.client.client import Client
from mcp.server.mcpserver import Context

from agentcron.mcp_server.callers import McpCaller
from agentcron.mcp_server.stdio import caller_for
from agentcron.mcp_server.tools import build_server
from agentcron.services import Services
from agentcron.store import Store

START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=700)


class SteppingStore(Store):
    """A store whose clock moves ``STEP`` on with every read, as a busy node's would."""

    clock = START

    def now(self) -> datetime:
        self.clock += STEP
        return self.clock


def test_a_delay_of_exactly_min_interval_is_created(tmp_path: Path) -> None:
    store = SteppingStore(f"sqlite:///{tmp_path}/delay.db")
    store.upgrade()
    services = Services(store)
    services.add_agent(services.build_agent(
        "bot", "python", {"target": "agentcron.examples:hello"},
        scheduling={"min_interval": "1s"}), START)
    _, token = services.access.create_token("desk", "schedule")

    async def identify(_ctx: Context) -> McpCaller:
        return caller_for(services, token)

    async def scenario() -> dict[str, str]:
        async with Client(build_server(services, identify)) as client:
            result = await client.call_tool("create_trigger", {"agent": "bot", "delay": "1s"})
            assert not result.is_error, result.content
            made: dict[str, str] = json.loads(result.content[0].text)  # type: ignore[union-attr]
            return made

    try:
        made = asyncio.run(scenario())
        # Two reads would put the second 0.7 s after the first, leaving a gap under 1 s.
        assert store.get_trigger(made["id"]).created_by == "mcp:desk"
    finally:
        store.close()
