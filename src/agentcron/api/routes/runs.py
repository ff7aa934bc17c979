"""``/api/v1/runs``: list (filters, cursor pagination), show with events, cancel, retry.
A run in a path is its id or a unique prefix of it (at least 4 characters)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request

from agentcron.api.auth import READ, WRITE, Caller, blocking
from agentcron.api.common import ERRORS, services
from agentcron.api.schemas import CancelOut, RunDetail, RunOut, RunsPage

router = APIRouter(prefix="/api/v1/runs", tags=["runs"], responses=ERRORS)


@router.get("", response_model=RunsPage, summary="List runs, newest first")
async def list_runs(
    request: Request, _: Caller = READ,
    agent: str | None = Query(None, description="Only this agent's runs."),
    trigger: str | None = Query(None, description="Only this trigger's runs."),
    status: str | None = Query(
        None, description="queued, running, succeeded, failed, cancelled or skipped."),
    since: datetime | None = Query(None, description="Queued at or after (ISO 8601)."),
    until: datetime | None = Query(None, description="Queued before (ISO 8601)."),
    limit: int = Query(50, description="Page size, 1..1000."),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
    key: str | None = Query(None, description="Only runs with this concurrency key."),
) -> RunsPage:
    page = await blocking(request, services(request).list_runs, agent=agent,
                          trigger_id=trigger, status=status, since=since, until=until,
                          limit=limit, before=cursor, key=key)
    return RunsPage(runs=[RunOut.of(r, preview=True) for r in page.runs],
                    next_cursor=page.next_cursor)


@router.get("/{run_id}", response_model=RunDetail, summary="Show a run and its events")
async def get_run(request: Request, run_id: str, _: Caller = READ) -> RunDetail:
    run, events = await blocking(request, services(request).get_run, run_id)
    return RunDetail.with_events(run, events)


@router.post("/{run_id}/cancel", response_model=CancelOut,
             summary="Cancel a queued or running run")
async def cancel_run(request: Request, run_id: str, _: Caller = WRITE) -> CancelOut:
    svc = services(request)

    def cancel() -> CancelOut:
        found = svc.runs.resolve(run_id)
        return CancelOut(id=found, status="cancelled", was=svc.cancel_run(found).value)

    return await blocking(request, cancel)


@router.post("/{run_id}/retry", response_model=RunOut,
             summary="Run a finished run again",
             description="A failed, cancelled or skipped run is queued again as itself. A "
                         "succeeded run keeps its output: a new run is queued, whose "
                         "retry_of is the original's id. Answers with the run that will run.")
async def retry_run(request: Request, run_id: str, _: Caller = WRITE) -> RunOut:
    svc = services(request)

    def retry() -> RunOut:
        queued = svc.retry_run(run_id)
        return RunOut.of(svc.get_run(queued)[0])

    return await blocking(request, retry)
