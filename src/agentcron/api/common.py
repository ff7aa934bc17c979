"""What every API router shares: the services of the request's app and the documented
error answers."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from agentcron.api.schemas import ErrorOut
from agentcron.services import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _error(text: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": text}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: _error("Missing, invalid or revoked token (or a token in the query string)."),
    403: _error("The token's scope is too low."),
    404: _error("No such agent, trigger or run."),
    409: _error("The current state forbids this (e.g. cancelling a finished run)."),
    422: _error("Invalid input: `field` names it, `detail` says why (as the CLI does)."),
}
