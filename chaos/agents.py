"""Python agents some scenarios run next to the http agent (importable by the nodes and
workers, whose PYTHONPATH holds the repository)."""

from __future__ import annotations

import os
from datetime import UTC

import httpx

from agentcron.executors import RunContext


async def noop(ctx: RunContext) -> None:
    """Does nothing: a run whose whole cost is the engine's own (fire, claim, finish)."""
    return None


_client: httpx.AsyncClient | None = None


async def deliver(ctx: RunContext) -> None:
    """Posts the run to the counting receiver (``CHAOS_RECEIVER_URL``) as the ``http`` agent
    does (the same body and ``Idempotency-Key``), for scenarios whose runs execute on remote
    workers. A cancelled run (revoked, or given up by the worker's fence) drops its request,
    so the receiver sees its client go away."""
    global _client
    if _client is None:  # one per worker process, on the worker's event loop
        _client = httpx.AsyncClient(timeout=120.0,
                                    limits=httpx.Limits(max_connections=200))
    body = {"run_id": ctx.run_id, "attempt": ctx.attempt, "trigger_id": ctx.trigger_id,
            "scheduled_for": ctx.scheduled_for.astimezone(UTC).isoformat(),
            "payload": ctx.payload}
    answer = await _client.post(os.environ["CHAOS_RECEIVER_URL"], json=body,
                                headers={"Idempotency-Key": ctx.idempotency_key})
    answer.raise_for_status()
