"""The remote worker protocol (a ``worker`` token), and the listing of workers (read):

- ``POST /api/v1/workers/claim``: a long poll. It tries the store at once; with no run
  ready it waits, holding no database connection and no thread, for this process's
  ``RunsReady`` signal (PostgreSQL notifications through one listener per process, and this
  process's own writes), for the moment the next queued run of its agents becomes ready, or
  for a modest poll (missed notifications, other processes on SQLite), until ``wait``.
- ``POST /api/v1/workers/{worker_id}/heartbeat``: keeps the worker and all its runs alive.
- ``POST /api/v1/runs/{run_id}/complete`` and ``.../release``: fenced on the run's lease.
- ``POST /api/v1/workers/{worker_id}/complete``: many outcomes in one call and one
  transaction, each fenced as the single complete is (a stale one answered ``stale``).
- ``GET /api/v1/workers``: id, agents, state, runs in flight, last seen, version.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request

from agentcron.api.auth import READ, WORKER, Caller, blocking
from agentcron.api.common import ERRORS, services
from agentcron.api.worker_schemas import (
    BeatBody,
    BeatOut,
    ClaimBody,
    ClaimedRunOut,
    ClaimOut,
    CompleteBody,
    CompleteManyBody,
    CompleteManyOut,
    OutcomeOut,
    ReleaseBody,
    RunWrittenOut,
    WorkerOut,
)
from agentcron.engine.metrics import WorkerMetrics
from agentcron.engine.wakeups import RunsReady
from agentcron.models import ClaimedRun, RunStatus
from agentcron.services.documents import iso, shown, worker_json
from agentcron.services.workers import (
    BeatInput,
    ClaimInput,
    CompleteInput,
    RunLease,
    UsageInput,
    worker_state,
)
from agentcron.store.notify import Listener

router = APIRouter(prefix="/api/v1", tags=["workers"], responses=ERRORS)

POLL_S = {"postgresql": 5.0, "sqlite": 0.5}
"""How often a waiting claim tries the store with no signal: a backstop on PostgreSQL
(notifications wake it), the way to see other processes' runs on SQLite."""


def _address(request: Request) -> str:
    return request.client.host if request.client is not None else ""


def _user_agent(request: Request) -> str:
    """The start of the client's User-Agent, printable characters only: the version a
    worker that names none is shown with."""
    agent = request.headers.get("user-agent", "")
    return "".join(c for c in agent if c.isprintable())[:32]


def _listen_if_needed(request: Request, ready: RunsReady) -> None:
    """An app without a node (no listener feeding ``ready``) on PostgreSQL starts one
    listener of its own, once, in its event loop."""
    state = request.app.state
    if ready.fed_by_listener or getattr(state, "listener_task", None) is not None:
        return
    store = services(request).store
    if store.backend != "postgresql":
        return
    state.listener_task = asyncio.get_running_loop().create_task(
        Listener(store.url, ready.on_topic).run(), name="workers-listener")
    ready.fed_by_listener = True


def _run_out(run: ClaimedRun, default_zombie_timeout_s: float) -> ClaimedRunOut:
    return ClaimedRunOut(id=run.run_id, lease=run.lease, attempt=run.attempt,
                         agent=run.agent.name, trigger_id=run.trigger_id,
                         scheduled_for=iso(run.scheduled_for), payload=shown(run.payload),
                         deadline_at=iso(run.deadline_at),
                         zombie_timeout_s=run.agent.zombie_timeout_s
                         or default_zombie_timeout_s)


@router.post("/workers/claim", response_model=ClaimOut,
             summary="Claim ready runs of remote agents (a long poll)",
             description="Answers as soon as at least one run is ready (up to `max`), or "
                         "with no runs after `wait` (at most 60 s). Each run's `lease` must "
                         "come with every later write for it. `outcomes` (optional) are "
                         "written first, as `POST /api/v1/workers/{worker_id}/complete` "
                         "writes them, and answered in `results`.")
async def claim(request: Request, body: ClaimBody, caller: Caller = WORKER) -> ClaimOut:
    svc = services(request).workers
    checked = await blocking(
        request, svc.check_claim, caller.token,
        ClaimInput(worker_id=body.worker_id, agents=body.agents, max=body.max,
                   wait=body.wait, version=body.version or _user_agent(request)),
        _address(request))
    results: list[OutcomeOut] = []
    if body.outcomes:
        # Written first, whatever the claim then finds: the slots they free are claimable.
        results = _results(await blocking(
            request, svc.complete_many, caller.token, body.worker_id,
            [(o.id, _complete_input(o)) for o in body.outcomes], _address(request)))
    ready: RunsReady = request.app.state.runs_ready
    metrics: WorkerMetrics = request.app.state.worker_metrics
    _listen_if_needed(request, ready)
    poll_s = POLL_S.get(services(request).store.backend, 1.0)
    deadline = time.monotonic() + checked.wait_s
    signalled = False
    while True:
        ticket = ready.ticket()  # before the attempt: a signal meanwhile is not lost
        result = await blocking(request, svc.claim_once, checked)
        if result.runs:
            metrics.claims.labels("runs").inc()
            metrics.claimed.inc(len(result.runs))
            if signalled:
                metrics.wakeup.observe(max(0.0, time.monotonic() - ready.signalled_at))
            return ClaimOut(runs=[_run_out(r, svc.default_zombie_timeout_s)
                                  for r in result.runs], results=results)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or await request.is_disconnected():
            metrics.claims.labels("empty").inc()
            return ClaimOut(runs=[], results=results)
        pause = min(remaining, poll_s)
        if result.ready_in_s is not None:
            pause = min(pause, max(0.01, result.ready_in_s))
        signalled = await ready.wait(ticket, pause)


@router.post("/workers/{worker_id}/heartbeat", response_model=BeatOut,
             summary="Keep a worker and all its runs alive",
             description="Send every run the worker holds with its lease; the answer names "
                         "those it must stop (cancelled, finished or taken over).")
async def heartbeat(request: Request, worker_id: str, body: BeatBody,
                    caller: Caller = WORKER) -> BeatOut:
    given = BeatInput(runs=[RunLease(r.id, r.lease, r.progress) for r in body.runs],
                      draining=body.draining)
    revoked = await blocking(request, services(request).workers.beat, caller.token,
                             worker_id, given, _address(request))
    return BeatOut(revoked=revoked)


def _complete_input(body: CompleteBody) -> CompleteInput:
    usage = None if body.usage is None else UsageInput(
        input_tokens=body.usage.input_tokens, output_tokens=body.usage.output_tokens,
        cost_usd=None if body.usage.cost_usd is None else float(body.usage.cost_usd),
        model=body.usage.model)
    return CompleteInput(lease=body.lease, status=body.status, output=body.output,
                         error=body.error, retry=body.retry, usage=usage,
                         schedule=tuple(body.schedule))


@router.post("/workers/{worker_id}/complete", response_model=CompleteManyOut,
             summary="Record the outcomes of many of a worker's runs in one call",
             description="Each outcome is fenced on its run's lease as `POST "
                         "/api/v1/runs/{id}/complete` is, and all are written in one "
                         "transaction. A stale one is answered `stale` and changes nothing; "
                         "the others stand. A malformed outcome (422), an unknown run (404) "
                         "or another agent's run (403) refuses the whole call.")
async def complete_many(request: Request, worker_id: str, body: CompleteManyBody,
                        caller: Caller = WORKER) -> CompleteManyOut:
    given = [(o.id, _complete_input(o)) for o in body.outcomes]
    results = await blocking(request, services(request).workers.complete_many,
                             caller.token, worker_id, given, _address(request))
    return CompleteManyOut(results=_results(results))


def _results(written: list[tuple[str, RunStatus | None]]) -> list[OutcomeOut]:
    return [OutcomeOut(id=run_id, status="stale" if status is None else status.value)
            for run_id, status in written]


@router.post("/runs/{run_id}/complete", response_model=RunWrittenOut,
             summary="Record a worker's outcome for a run (fenced on its lease)",
             description="A stale lease (the run was cancelled, finished or taken over) is "
                         "409 and changes nothing.")
async def complete(request: Request, run_id: str, body: CompleteBody,
                   caller: Caller = WORKER) -> RunWrittenOut:
    status = await blocking(request, services(request).workers.complete, caller.token,
                            run_id, _complete_input(body))
    return RunWrittenOut(id=run_id, status=status.value)


@router.post("/runs/{run_id}/release", response_model=RunWrittenOut,
             summary="Hand a run back to the queue (unstarted or drained work)",
             description="The attempt is given back. A stale lease is 409 and changes "
                         "nothing.")
async def release(request: Request, run_id: str, body: ReleaseBody,
                  caller: Caller = WORKER) -> RunWrittenOut:
    await blocking(request, services(request).workers.release, caller.token, run_id,
                   body.lease)
    return RunWrittenOut(id=run_id, status=RunStatus.QUEUED.value)


@router.get("/workers", response_model=list[WorkerOut],
            summary="Remote workers: agents, state, runs in flight, last seen, version")
async def list_workers(request: Request, _: Caller = READ) -> list[WorkerOut]:
    svc = services(request)

    def read() -> list[WorkerOut]:
        now = svc.store.now()
        return [WorkerOut(**worker_json(w, worker_state(w, now).value))
                for w in svc.workers.list()]

    return await blocking(request, read)
