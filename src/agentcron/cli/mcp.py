"""``agentcron mcp``: serve agentcron's tools to an MCP client (a desktop or coding agent)
over stdio, as the API token in ``AGENTCRON_TOKEN``. The client starts it as a child
process; it opens the database ``--db`` (``AGENTCRON_DATABASE_URL``) names, as every
command does. It runs no node: the triggers it makes are fired by the nodes (``agentcron
serve``) on that database."""

from __future__ import annotations

import os

import typer

from agentcron.cli.common import services


def mcp(ctx: typer.Context) -> None:
    """Serve the MCP tools over stdio, as the token in AGENTCRON_TOKEN (required)."""
    from agentcron.logs import configure_logging
    from agentcron.mcp_server.stdio import TOKEN_ENV, serve_stdio

    # Logs go to stderr (stdout carries the protocol), at AGENTCRON_LOG_LEVEL.
    configure_logging()
    serve_stdio(services(ctx), os.environ.get(TOKEN_ENV))
