"""The MCP front door: agentcron's schedules as tools for agents and their models, on the
official ``mcp`` SDK.

- ``agentcron mcp`` serves them over stdio (``stdio.py``) for desktop and coding agents,
  as the token in ``AGENTCRON_TOKEN`` (required: every tool acts as a token, so what was
  made can be traced back to it);
- ``agentcron serve`` serves them over Streamable HTTP at ``/mcp`` (``http.py``), each
  request authenticated by its bearer token before its body is read.

The tools (``tools.py``) call ``Services`` only and answer with the same JSON documents as
the API (``services/documents.py``); bad input is refused by the service's one validator
and comes back as a tool error with the CLI's message (field, problem, fix). Who may do
what is ``callers.py``: ``read`` tokens the read-only tools, ``schedule``, ``write`` and
``admin`` every tool, a token limited to agents (``--agents``) only those agents. Every
trigger made here is made by ``scheduling.create_trigger``.
"""

from __future__ import annotations

from agentcron.mcp_server.callers import McpCaller
from agentcron.mcp_server.tools import TOOL_NAMES, build_server

__all__ = ["TOOL_NAMES", "McpCaller", "build_server"]
