"""Bearer-token auth for the API, and the blocking-call bridge every route uses.

- Every API route depends on ``require(scope)``: no ``Authorization`` header or a token that
  is not live -> 401 (with ``WWW-Authenticate: Bearer``); a token whose scope is too low ->
  403. A write (``POST``/``PUT``/``PATCH``) is authenticated by ``limits.TokenFirst``
  before its body is read, and the dependency reuses that token. Only ``/healthz``,
  ``/readyz``, ``/hooks/...`` (signed instead) and, when configured, ``/metrics`` are
  open.
- A token in the query string is refused with 401 by ``QueryTokenGuard`` before any route
  runs: URLs end up in logs, histories and ``Referer`` headers.
- Tokens are never logged: this module logs nothing about them, and uvicorn's access log
  (which prints URLs) is off.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from agentcron.api.errors import ApiError, error_response
from agentcron.api.limits import CHALLENGE, INVALID_TOKEN, MISSING_TOKEN, TOKEN_KEY
from agentcron.services.access import Access, looks_like_token, scope_allows
from agentcron.services.access import Scope as TokenScope
from agentcron.store.tokens import ApiToken

P = ParamSpec("P")
T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="An API token: `agentcron tokens create`")
QUERY_TOKEN_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "bearer",
                               "auth", "authorization"})


async def blocking(request: Request, fn: Callable[P, T], *args: P.args,
                   **kwargs: P.kwargs) -> T:
    """Run a blocking store call on the API's own worker threads (bounded by its limiter),
    so API traffic cannot starve the node's loops of threads or connections."""
    limiter = request.app.state.limiter

    def call() -> T:
        return fn(*args, **kwargs)

    return await anyio.to_thread.run_sync(call, limiter=limiter)


@dataclass(frozen=True)
class Caller:
    token: ApiToken


def made_by(caller: Caller) -> str:
    """The provenance of what ``caller`` creates: ``api:<token name>``."""
    return f"api:{caller.token.name}"


def require(scope: TokenScope) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller's token, which must have at least ``scope``."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> Caller:
        token: ApiToken | None = request.scope.get(TOKEN_KEY)  # checked by TokenFirst
        if token is None:
            if credentials is None:
                raise ApiError(401, MISSING_TOKEN, headers=CHALLENGE)
            access: Access = request.app.state.access
            token = await blocking(request, access.authenticate,
                                   credentials.credentials.strip())
        if token is None:
            raise ApiError(401, INVALID_TOKEN, headers=CHALLENGE)
        if not scope_allows(token.scope, scope):
            if token.scope == TokenScope.SCHEDULE.value:
                raise ApiError(403, f"token {token.name!r} has scope 'schedule'; it may only "
                               "be used over MCP (/mcp, or `agentcron mcp`)")
            if TokenScope.WORKER in (scope, token.scope):
                only = ("a worker token may use this" if scope is TokenScope.WORKER
                        else "it may only use the worker protocol (/api/v1/workers/...)")
                raise ApiError(403, f"token {token.name!r} has scope {token.scope!r}; {only}")
            raise ApiError(403, f"token {token.name!r} has scope {token.scope!r}; this needs "
                           f"{scope.value!r} or higher")
        return Caller(token)

    return dependency


async def authenticate_header(scope: Scope) -> tuple[ApiToken | None, str]:
    """The live token in the request's ``Authorization: Bearer`` header, from the headers
    alone (the body is not touched); or None and why."""
    request = Request(scope)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None, MISSING_TOKEN
    access: Access = request.app.state.access
    token = await blocking(request, access.authenticate, value.strip())
    return token, INVALID_TOKEN


READ = Depends(require(TokenScope.READ))
WRITE = Depends(require(TokenScope.WRITE))
ADMIN = Depends(require(TokenScope.ADMIN))
WORKER = Depends(require(TokenScope.WORKER))


class QueryTokenGuard:
    """ASGI middleware: 401 for any request that carries a token in its query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_query_token(scope.get("query_string", b"")):
            response = error_response(
                401, "tokens are not accepted in the URL (URLs are logged); send "
                "'Authorization: Bearer <token>' instead", "query", headers=CHALLENGE)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _has_query_token(raw: Any) -> bool:
    if not raw:
        return False
    from urllib.parse import parse_qsl

    text = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key.lower() in QUERY_TOKEN_NAMES or looks_like_token(value):
            return True
    return False
