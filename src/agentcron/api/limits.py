"""Limits the API enforces before any work: who may send a body, and how big it may be.

Both are ASGI middleware, so they act on the request as it arrives, before a route (and
FastAPI's body parsing) runs:

- ``TokenFirst``: a ``POST``/``PUT``/``PATCH`` under ``/api/`` must carry a live bearer
  token, checked from the headers alone; without one the answer is 401 and not a byte of
  the body is read. The route's own ``require(scope)`` still checks the scope.
- ``BodyLimit``: every request body is counted as its chunks arrive. A declared
  ``Content-Length`` over the limit is refused at once; a body that grows past it (chunked,
  or lying about its length) is refused as soon as the limit is crossed, with 413 and a JSON
  error. The limit is ``max_body_bytes`` (``--max-body-bytes``, default 1 MiB), the
  webhook limit for ``/hooks/...`` and a few KiB for ``/login``.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentcron.api.errors import error_response

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: A sign-in form holds one token: anything bigger is not a sign-in.
LOGIN_MAX_BYTES = 16 * 1024
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
CHALLENGE = {"WWW-Authenticate": "Bearer"}
MISSING_TOKEN = ("missing credentials: send 'Authorization: Bearer <token>' "
                 "(create a token with `agentcron tokens create NAME`)")
INVALID_TOKEN = "invalid or revoked token"
#: Where ``TokenFirst`` leaves the token it checked, so the route does not look it up again.
TOKEN_KEY = "agentcron.token"


class TokenFirst:
    """401 for a write under ``/api/`` without a live token, before its body is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") not in _BODY_METHODS
                or not str(scope.get("path", "")).startswith("/api/")):
            await self.app(scope, receive, send)
            return
        # Imported here: auth imports this module's messages.
        from agentcron.api.auth import authenticate_header

        token, problem = await authenticate_header(scope)
        if token is None:
            await error_response(401, problem, headers=CHALLENGE)(scope, receive, send)
            return
        scope[TOKEN_KEY] = token
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over its path's limit, counted while it streams in."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 webhook_max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.webhook_max_bytes = webhook_max_bytes

    def limit_for(self, path: str) -> int:
        if path.startswith("/hooks/"):
            return self.webhook_max_bytes
        if path == "/login":
            return LOGIN_MAX_BYTES
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(limit, declared)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the route's read of the body: FastAPI passes an
                    # HTTPException through, and the API's handler answers it as JSON.
                    raise HTTPException(413, _too_large_detail(limit))
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            # A length too long to be a number of bytes is certainly over any limit.
            return int(text) if text.isdigit() and len(text) < 19 else 2**63
    return None


def _too_large_detail(limit: int) -> str:
    return f"body is over the {limit:,} byte limit"


def _too_large(limit: int, declared: int) -> ASGIApp:
    detail = (_too_large_detail(limit) if declared >= 2**63
              else f"body of {declared:,} bytes is over the {limit:,} byte limit")
    return error_response(413, detail, "body",
                          "send less, or raise the node's --max-body-bytes")
