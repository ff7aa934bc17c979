"""The node's HTTP surface, built by ``create_app``:

- ``/healthz`` (the process answers) and ``/readyz`` (the database answers, its schema is
  current, and none of the node's loops is down after a crash), open, for load balancers
  and orchestrators;
- the API under ``/api/v1`` (bearer tokens; its OpenAPI document at ``/openapi.json``,
  open: it is data, not a page, and holds nothing a token protects);
- ``/docs`` only with ``api_docs`` (``serve --api-docs``): Swagger UI served from the node
  itself (``docs.py``); no page on the node's origin loads a third-party script (a
  compromised CDN would run in the origin of the dashboard's session);
- ``POST /hooks/{trigger_id}`` for webhook triggers (signed, no token);
- before any route: writes under ``/api/`` need a live token before their body is read,
  and every body is capped while it streams in (``limits.py``);
- ``/metrics`` for Prometheus (a read token unless ``metrics_public``);
- the dashboard at ``/`` (a session cookie from signing in with a token).

It runs in the node's event loop (``agentcron serve``); blocking store calls go to the
API's own bounded worker threads (``auth.blocking``).
"""

from __future__ import annotations

import asyncio

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentcron import __version__
from agentcron.api import errors
from agentcron.api.auth import QueryTokenGuard, blocking, require
from agentcron.api.common import ERRORS
from agentcron.api.dashboard.pages import install as install_dashboard
from agentcron.api.docs import DOCS_CSP, DOCS_PATH, install_docs
from agentcron.api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit, TokenFirst
from agentcron.api.metrics import CONTENT_TYPE, install_gauges, render
from agentcron.api.routes import agents, alerts, hooks, nodes, pools, runs, triggers, workers
from agentcron.engine.metrics import EngineMetrics, WorkerMetrics
from agentcron.engine.supervisor import Supervisor
from agentcron.engine.wakeups import RunsReady
from agentcron.services import Services
from agentcron.services.access import Access
from agentcron.services.access import Scope as TokenScope
from agentcron.store import Store

DEFAULT_WEBHOOK_MAX_BYTES = 256 * 1024
API_THREADS = 6

DESCRIPTION = """A durable, distributed scheduler for AI agents.

Authenticate with `Authorization: Bearer <token>` (create one with
`agentcron tokens create NAME --scope read|write|admin`; a remote worker's:
`--scope worker --agents a,b`). Errors are
`{"detail", "field", "hint"}`; invalid input is 422 with the field named.
"""


class SecurityHeaders:
    """Headers on every answer; the dashboard's pages also get a strict CSP (scripts and
    styles from this origin only, no framing)."""

    CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        policy = DOCS_CSP if path.startswith(DOCS_PATH) else self.CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"x-content-type-options", b"nosniff"),
                            (b"referrer-policy", b"same-origin"),
                            (b"content-security-policy", policy.encode()),
                            (b"x-frame-options", b"DENY")]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(store: Store, node_id: str, *, metrics: EngineMetrics | None = None,
               metrics_public: bool = False,
               webhook_max_bytes: int = DEFAULT_WEBHOOK_MAX_BYTES,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               supervisor: Supervisor | None = None, api_docs: bool = False,
               runs_ready: RunsReady | None = None, zombie_timeout_s: float = 60.0
               ) -> FastAPI:
    """``supervisor``: the node's (``Node.supervisor``), so that ``/readyz`` and the
    dashboard report a loop that is down; None for an app without a node. ``api_docs``
    turns on ``/docs`` (off: 404). ``runs_ready``: the node's signal that runs may be ready
    (fed by its notification listener), which wakes workers' long polls; without one the
    app makes its own (and, on PostgreSQL, listens itself once a worker waits).
    ``zombie_timeout_s``: the node's (``Services``)."""
    app = FastAPI(title="agentcron", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None)
    if api_docs:
        install_docs(app)
    services = Services(store, zombie_timeout_s)
    app.state.services = services
    app.state.access = Access(store)
    app.state.metrics = metrics
    app.state.supervisor = supervisor
    app.state.node_id = node_id
    app.state.webhook_max_bytes = webhook_max_bytes
    app.state.limiter = anyio.CapacityLimiter(API_THREADS)
    registry = (metrics or EngineMetrics()).registry
    install_gauges(registry, services)
    ready = runs_ready or RunsReady()
    app.state.runs_ready = ready
    app.state.worker_metrics = WorkerMetrics(registry)
    # This process's own writes that queue runs (a fire, a worker's complete or release)
    # wake waiting workers at once, on SQLite too.
    store.local_listeners.append(ready.on_topic)
    errors.install(app)

    @app.get("/healthz", tags=["health"], summary="The process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "node_id": node_id, "version": __version__}

    @app.get("/readyz", tags=["health"],
             summary="The database answers and is migrated, and no loop of the node is down",
             responses={503: {"description": "Not ready"}})
    async def readyz() -> JSONResponse:
        down = supervisor.down() if supervisor is not None else []
        if down:
            # A node whose ticker or dispatcher crashed looks alive (it still beats) but
            # does not do its work: take it out of rotation until the loop is back.
            return JSONResponse(
                {"status": "unavailable",
                 "reason": "; ".join(f"loop {d.loop} is down: {d.error}" for d in down),
                 "loops_down": [d.loop for d in down], "node_id": node_id},
                status_code=503)
        try:
            await asyncio.to_thread(services.ready)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc).splitlines()[0]},
                                status_code=503)
        return JSONResponse({"status": "ready", "node_id": node_id})

    metrics_auth = [] if metrics_public else [Depends(require(TokenScope.READ))]

    @app.get("/metrics", tags=["health"], dependencies=metrics_auth,
             summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}},
                        **({} if metrics_public else {401: ERRORS[401], 403: ERRORS[403]})})
    async def metrics_endpoint(request: Request) -> Response:
        body = await blocking(request, render, registry)
        return Response(body, media_type=CONTENT_TYPE)

    for module in (agents, triggers, runs, workers, nodes, hooks, alerts, pools):
        app.include_router(module.router)
    install_dashboard(app)
    # The last added runs first: headers on every answer, then no token in a URL, then no
    # body read without a live token, then no body over its limit.
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes,
                       webhook_max_bytes=webhook_max_bytes)
    app.add_middleware(TokenFirst)
    app.add_middleware(QueryTokenGuard)
    app.add_middleware(SecurityHeaders)
    return app
