"""The node's HTTP surface: health and readiness probes.

``/healthz`` answers while the process runs; ``/readyz`` only while the database answers
and its schema is current, so a load balancer stops sending traffic to a node that cannot
do its work.
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from agentcron import __version__
from agentcron.store import Store


def create_app(store: Store, node_id: str) -> FastAPI:
    app = FastAPI(title="agentcron", version=__version__)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "node_id": node_id, "version": __version__}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        try:
            await asyncio.to_thread(store.ensure_migrated)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc).splitlines()[0]},
                                status_code=503)
        return JSONResponse({"status": "ready", "node_id": node_id})

    return app
