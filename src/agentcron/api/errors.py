"""Errors as HTTP answers. Every error body is ``{"detail": ..., "field": ..., "hint": ...}``:

- ``ValidationError`` (from the service layer) -> 422, with the field and the same text the
  CLI prints; a request that does not parse (wrong type, missing field) -> 422 the same way;
- ``NotFoundError`` -> 404, ``ConflictError`` -> 409, ``ForbiddenError`` -> 403, a bad
  webhook signature -> 401;
- ``SecretKeyError`` (the node's ``AGENTCRON_SECRET_KEY`` cannot open a stored secret) -> 500
  naming the setting;
- anything else -> 500 with a fixed message; the traceback goes to the log, never into a
  response.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentcron.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from agentcron.executors.signing import SignatureError
from agentcron.store.errors import is_refused_value
from agentcron.store.secrets import SECRET_KEY_ENV, SecretKeyError

log = structlog.get_logger(__name__)


class ApiError(Exception):
    """An error answer raised from a route or a dependency."""

    def __init__(self, status: int, detail: str, *, field: str | None = None,
                 hint: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.hint = hint
        self.headers = headers


def error_response(status: int, detail: str, field: str | None = None,
                   hint: str | None = None, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    return JSONResponse({"detail": detail, "field": field, "hint": hint}, status_code=status,
                        headers=headers)


def _field_of(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.detail, exc.field, exc.hint, exc.headers)

    @app.exception_handler(ValidationError)
    async def _validation(_request: Request, exc: ValidationError) -> JSONResponse:
        return error_response(422, str(exc), exc.field, exc.hint)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_request: Request, exc: RequestValidationError
                                  ) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field_of(first.get("loc", ("body",)))
        message = str(first.get("msg", "invalid value"))
        return error_response(422, f"{field}: {message}", field, None)

    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return error_response(404, str(exc))

    @app.exception_handler(ConflictError)
    async def _conflict(_request: Request, exc: ConflictError) -> JSONResponse:
        return error_response(409, str(exc))

    @app.exception_handler(ForbiddenError)
    async def _forbidden(_request: Request, exc: ForbiddenError) -> JSONResponse:
        return error_response(403, str(exc))

    @app.exception_handler(SignatureError)
    async def _signature(_request: Request, exc: SignatureError) -> JSONResponse:
        return error_response(401, f"webhook signature refused: {exc}")

    @app.exception_handler(SecretKeyError)
    async def _secret_key(_request: Request, exc: SecretKeyError) -> JSONResponse:
        # The node's key does not open a stored secret: its operator must fix the setting.
        return error_response(500, str(exc), SECRET_KEY_ENV,
                              "set the key the secrets were encrypted with on this node")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's answer to a body that is not valid JSON
            return error_response(422, f"body: {exc.detail}", "body",
                                  "send a JSON document with Content-Type: application/json")
        if exc.status_code == 413:  # a body that grew past its limit (api/limits.py)
            return error_response(413, str(exc.detail), "body",
                                  "send less, or raise the node's --max-body-bytes")
        return error_response(exc.status_code, str(exc.detail),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_refused_value(exc):
            # A value the database cannot store that validation let through.
            return error_response(422, "a value was refused by the database (for example "
                                  "a NUL character in a text field)", "body")
        log.error("api_unexpected_error", method=request.method, path=request.url.path,
                  error_type=type(exc).__name__, exc_info=exc)
        return error_response(500, "internal error; the node's log has the details")
