"""MCP over stdio: ``agentcron mcp``, started by a desktop or coding agent as a child
process. It acts as the token in ``AGENTCRON_TOKEN`` (required, and checked before the
server starts: the triggers it makes are traced back to that token), and checks it again
at every tool call, so a revoked token stops working at once."""

from __future__ import annotations

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context

from agentcron.errors import ValidationError
from agentcron.mcp_server.callers import McpCaller, McpRefused
from agentcron.mcp_server.tools import build_server
from agentcron.services import Services

TOKEN_ENV = "AGENTCRON_TOKEN"


def caller_for(services: Services, value: str | None) -> McpCaller:
    """The caller ``value`` (the environment's token) is: ``ValidationError`` when it is
    missing, ``McpRefused`` when it is not a live token of a scope MCP takes."""
    if not value or not value.strip():
        raise ValidationError(
            TOKEN_ENV, "is not set; agentcron mcp acts as an API token",
            "create one with `agentcron tokens create NAME --scope schedule` and set "
            f"{TOKEN_ENV} to it in the MCP client's configuration")
    token = services.access.authenticate(value.strip())
    if token is None:
        raise McpRefused(f"{TOKEN_ENV}: invalid or revoked token (create one with "
                         "`agentcron tokens create NAME --scope schedule`)")
    return McpCaller.of(token)


def serve_stdio(services: Services, value: str | None) -> None:
    """Serve the tools on stdin/stdout until the client closes stdin (blocking). Refuses to
    start (see ``caller_for``) without a live token."""
    caller_for(services, value)

    async def identify(_ctx: Context) -> McpCaller:
        return await anyio.to_thread.run_sync(caller_for, services, value)

    anyio.run(build_server(services, identify).run_stdio_async)
