"""MCP over Streamable HTTP at ``/mcp`` on ``agentcron serve``.

Every request to ``/mcp`` (any method) must carry ``Authorization: Bearer <token>`` with a
live token of a scope MCP takes (``callers.py``); ``McpTokenGate`` checks it from the
headers alone, before a byte of the body is read (as ``api/limits.py`` does for the API's
writes): 401 without a live token, 403 for a scope MCP refuses. The caller it found rides
on the ASGI scope to the tools (``TOKEN_KEY``), so each tool call acts as the token of the
request that carried it.

The SDK's session manager runs stateless, answering in JSON: any node of a cluster can
answer any request (no session lives on one node), and a request is authenticated on its
own. ``McpHttp.run()`` must be entered for as long as the endpoint serves (``server.py``).
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from agentcron.mcp_server.callers import McpCaller, McpRefused
from agentcron.mcp_server.tools import build_server
from agentcron.services import Services
from agentcron.services.access import Access

PATH = "/mcp"
#: Where ``McpTokenGate`` leaves the ``McpCaller`` it found, for the tools.
TOKEN_KEY = "agentcron.mcp.caller"
CHALLENGE = [(b"www-authenticate", b"Bearer")]
MISSING_TOKEN = ("missing credentials: send 'Authorization: Bearer <token>' (create a token "
                 "with `agentcron tokens create NAME --scope schedule`)")
INVALID_TOKEN = "invalid or revoked token"
#: Token lookups at once (each a thread and a database connection).
AUTH_THREADS = 4


class McpTokenGate:
    """401/403 for a request to ``/mcp`` without a live token MCP takes, before its body
    is read; else the request goes on with its caller in ``scope[TOKEN_KEY]``."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access
        self.limiter = anyio.CapacityLimiter(AUTH_THREADS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        caller, status, problem = await self._caller(scope)
        if caller is None:
            await _refuse(status, problem, send)
            return
        scope[TOKEN_KEY] = caller
        await self.app(scope, receive, send)

    async def _caller(self, scope: Scope) -> tuple[McpCaller | None, int, str]:
        header = Request(scope).headers.get("authorization", "")
        kind, _, value = header.partition(" ")
        if kind.lower() != "bearer" or not value.strip():
            return None, 401, MISSING_TOKEN
        token = await anyio.to_thread.run_sync(self.access.authenticate, value.strip(),
                                               limiter=self.limiter)
        if token is None:
            return None, 401, INVALID_TOKEN
        try:
            return McpCaller.of(token), 200, ""
        except McpRefused as exc:
            return None, 403, str(exc)


async def _refuse(status: int, detail: str, send: Send) -> None:
    """A JSON error like the API's (``{"detail", "field", "hint"}``), the body unread."""
    body = json.dumps({"detail": detail, "field": "authorization", "hint": None}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()),
               *(CHALLENGE if status == 401 else [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _identify(ctx: Context) -> McpCaller:
    """The caller of this tool call: the one the gate found for its HTTP request."""
    request = ctx.request_context.request
    caller = None if not isinstance(request, Request) else request.scope.get(TOKEN_KEY)
    if not isinstance(caller, McpCaller):
        # Only reachable if the endpoint were served without its gate.
        raise McpRefused("this call carried no checked token")
    return caller


class McpHttp:
    """The ``/mcp`` endpoint over ``services``: ``route()`` to add to an app, ``run()`` to
    enter while it serves."""

    def __init__(self, services: Services) -> None:
        server = build_server(services, _identify)
        # Builds the SDK's session manager (the Starlette app it returns is not used: the
        # endpoint is a route of the node's own app, behind its middleware). The SDK's
        # DNS-rebinding check (Host and Origin must be loopback on a loopback node) is off:
        # it guards servers without credentials, a page a rebound name loads cannot send
        # a bearer token it does not know, and the check would refuse a reverse proxy that
        # keeps its public Host in front of a node on 127.0.0.1, as the API does not.
        server.streamable_http_app(
            streamable_http_path=PATH, stateless_http=True, json_response=True,
            transport_security=TransportSecuritySettings(
                enable_dns_rebinding_protection=False))
        self.session_manager = server.session_manager
        self.app = McpTokenGate(self.session_manager.handle_request, services.access)

    def route(self) -> Route:
        return Route(PATH, endpoint=self.app)

    def run(self) -> AbstractAsyncContextManager[None]:
        return self.session_manager.run()


__all__ = ["PATH", "TOKEN_KEY", "McpHttp", "McpTokenGate"]
