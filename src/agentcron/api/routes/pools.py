"""``/api/v1/pools``: rate-limit pools several agents draw from. Listing and showing need a
read token (with how full each pool's sliding minute is); changing one needs admin (a pool
governs what every node may start)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from agentcron.api.auth import ADMIN, READ, Caller, blocking
from agentcron.api.common import ERRORS, services
from agentcron.api.schemas import StrictIn
from agentcron.services.pools import PoolInput, pool_json

router = APIRouter(prefix="/api/v1/pools", tags=["pools"], responses=ERRORS)


class PoolBody(StrictIn):
    requests_per_minute: int | None = Field(
        None, description="at most this many runs start in any sliding minute")
    tokens_per_minute: int | None = Field(
        None, description="at most this many tokens in any sliding minute; a run reserves "
                          "its max_tokens until it reports usage")


class PoolOut(BaseModel):
    name: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    requests_in_window: int
    tokens_in_window: int
    agents: list[str]
    source: str
    updated_at: str | None


def _out(document: dict[str, Any]) -> PoolOut:
    return PoolOut(**document)


@router.get("", response_model=list[PoolOut], summary="List pools and how full each is")
async def list_pools(request: Request, _: Caller = READ) -> list[PoolOut]:
    pools = await blocking(request, services(request).pools.all)
    return [_out(pool_json(p)) for p in pools]


@router.get("/{name}", response_model=PoolOut, summary="Show a pool")
async def get_pool(request: Request, name: str, _: Caller = READ) -> PoolOut:
    return _out(pool_json(await blocking(request, services(request).pools.get, name)))


@router.put("/{name}", response_model=PoolOut, summary="Create or replace a pool")
async def put_pool(request: Request, name: str, body: PoolBody,
                   _: Caller = ADMIN) -> PoolOut:
    service = services(request).pools
    pool = service.build(PoolInput(name, body.requests_per_minute, body.tokens_per_minute),
                         source="api")
    return _out(pool_json(await blocking(request, service.save, pool)))


@router.delete("/{name}", status_code=204, response_class=Response, summary="Delete a pool")
async def delete_pool(request: Request, name: str, _: Caller = ADMIN) -> Response:
    await blocking(request, services(request).pools.remove, name)
    return Response(status_code=204)
