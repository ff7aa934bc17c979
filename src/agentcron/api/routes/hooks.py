"""``POST /hooks/{trigger_id}``: a signed delivery fires a webhook trigger.

No bearer token: the Standard Webhooks signature is the credential. Answers: 202 with the
run (queued, or skipped by the trigger's overlap policy); 401 bad, missing or stale
signature; 404 no such webhook trigger; 409 replayed ``webhook-id`` or paused trigger;
413 body over the size limit; 422 body not JSON.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from agentcron.api.auth import blocking
from agentcron.api.common import ERRORS, services
from agentcron.api.errors import ApiError
from agentcron.api.schemas import ErrorOut, HookOut
from agentcron.models import RunStatus
from agentcron.services.documents import iso

router = APIRouter(tags=["webhooks"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing, stale or wrong signature."},
    404: ERRORS[404],
    409: {"model": ErrorOut, "description": "Replayed webhook-id, or the trigger is paused."},
    413: {"model": ErrorOut, "description": "Body over the size limit."},
    422: {"model": ErrorOut, "description": "Body is not JSON."},
}


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) anything over ``limit`` bytes without reading it
    all into memory."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {declared} bytes is over the {limit} byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/hooks/{trigger_id}", response_model=HookOut, status_code=202,
             responses=_RESPONSES, summary="Deliver a signed webhook (Standard Webhooks)")
async def deliver(request: Request, trigger_id: str) -> HookOut:
    body = await read_limited(request, request.app.state.webhook_max_bytes)
    headers = {k: v for k, v in request.headers.items()
               if k in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    delivery = await blocking(request, services(request).receive_webhook, trigger_id,
                              headers, body)
    metrics = request.app.state.metrics
    if metrics is not None and delivery.status is RunStatus.QUEUED:
        metrics.fired("webhook")
    return HookOut(run_id=delivery.run_id, status=delivery.status.value,
                   scheduled_for=iso(delivery.scheduled_for), reason=delivery.reason)
