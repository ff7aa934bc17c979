"""``/api/v1/triggers``: list, create (cron, interval, once or webhook; one, or up to
1,000 at once with ``/batch``), show, change, pause, resume, delete, next fire times, fire
now, rotate a webhook's secret. A trigger in a path is its id, or its name when no other
trigger has that name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response

from agentcron.api.auth import READ, WRITE, Caller, blocking, made_by
from agentcron.api.common import ERRORS, services
from agentcron.api.schemas import (
    BackfillBody,
    BackfillOut,
    Deleted,
    FireOut,
    NextFires,
    TriggerBatch,
    TriggerChange,
    TriggerCreate,
    TriggerCreated,
    TriggerOut,
    TriggersChanged,
    TriggersCreated,
    TriggerSelect,
    TriggersPage,
    WebhookSecret,
)
from agentcron.errors import ValidationError
from agentcron.models import Trigger
from agentcron.services import TriggerInput
from agentcron.services.backfill import BackfillInput
from agentcron.services.documents import backfill_json, trigger_json
from agentcron.services.pausing import TriggerSelector

router = APIRouter(prefix="/api/v1/triggers", tags=["triggers"], responses=ERRORS)


def _out(request: Request, trigger: Trigger, *, preview: bool = False) -> TriggerOut:
    return TriggerOut.of(trigger, services(request).describe(trigger), preview=preview)


@router.get("", response_model=TriggersPage, summary="List triggers, a page at a time")
async def list_triggers(
    request: Request, _: Caller = READ,
    agent: str | None = Query(None, description="Only this agent's triggers."),
    limit: int = Query(100, description="Page size, 1..500."),
    offset: int = Query(0, description="Triggers to skip."),
    created_by: str | None = Query(None, description="Only those made by this: cli, file, "
                                   "python, api:<token>, mcp:<token>, run:<run id>; a prefix "
                                   "ending in ':' (run:, mcp:) matches them all."),
) -> TriggersPage:
    svc = services(request)
    page, total = await blocking(request, svc.triggers_page, agent, limit, offset,
                                 created_by)
    return TriggersPage(triggers=[_out(request, t, preview=True) for t in page], total=total,
                        limit=limit, offset=offset)


@router.post("", response_model=TriggerCreated, status_code=201,
             summary="Create a trigger (give one of cron, every, at; or webhook: true)")
async def create_trigger(request: Request, body: TriggerCreate, caller: Caller = WRITE
                         ) -> TriggerCreated:
    given: dict[str, Any] = body.model_dump(exclude_unset=True)
    spec = TriggerInput(**given)
    trigger, secret = await blocking(request, services(request).create_trigger, spec, None,
                                     "api", created_by=made_by(caller))
    out = _out(request, trigger).model_dump()
    hook = f"/hooks/{trigger.id}" if secret is not None else None
    return TriggerCreated(**out, secret=secret, hook_path=hook)


@router.post("/batch", response_model=TriggersCreated, status_code=201,
             summary="Create up to 1,000 triggers at once, all or none")
async def create_triggers(request: Request, body: TriggerBatch, caller: Caller = WRITE
                          ) -> Response:
    specs = [TriggerInput(**item.model_dump(exclude_unset=True)) for item in body.triggers]
    svc = services(request)

    def create() -> bytes:
        # The documents too are made and encoded off the event loop (1,000 of them would
        # hold it, and the node's engine on it, for tens of milliseconds), each validated
        # once: the answer is returned as it is, not checked against the model again.
        out = [TriggerCreated(**trigger_json(trigger, svc.describe(trigger)), secret=secret,
                              hook_path=f"/hooks/{trigger.id}" if secret else None)
               for trigger, secret in svc.create_triggers(specs, None, "api",
                                                          created_by=made_by(caller))]
        return TriggersCreated(created=len(out), triggers=out).model_dump_json().encode()

    return Response(await blocking(request, create), status_code=201,
                    media_type="application/json")


def _selector(body: TriggerSelect) -> TriggerSelector:
    return TriggerSelector(agent=body.agent, name=body.name, all=body.all)


@router.post("/pause", response_model=TriggersChanged,
             summary="Pause many triggers: by agent, by name pattern, or all")
async def pause_many(request: Request, body: TriggerSelect, _: Caller = WRITE
                     ) -> TriggersChanged:
    if body.catch_up:
        raise ValidationError("catch_up", "applies to a resume only", "drop catch_up")
    done = await blocking(request, services(request).pausing.pause, _selector(body))
    return TriggersChanged(count=len(done), triggers=done)


@router.post("/resume", response_model=TriggersChanged,
             summary="Resume many paused triggers from now (catch_up: also the times "
                     "within each one's catch-up window)")
async def resume_many(request: Request, body: TriggerSelect, _: Caller = WRITE
                      ) -> TriggersChanged:
    pausing = services(request).pausing

    def resume() -> list[str]:
        return pausing.resume(_selector(body), catch_up=body.catch_up)

    done = await blocking(request, resume)
    return TriggersChanged(count=len(done), triggers=done)


@router.get("/{trigger_id}", response_model=TriggerOut,
            summary="Show a trigger, with where it came from (chain)")
async def get_trigger(request: Request, trigger_id: str, _: Caller = READ) -> TriggerOut:
    svc = services(request)

    def read() -> TriggerOut:
        trigger = svc.get_trigger(trigger_id)
        return TriggerOut.of(trigger, svc.describe(trigger), chain=svc.trigger_chain(trigger))

    return await blocking(request, read)


@router.post("/{trigger_id}/approve", response_model=TriggerOut,
             summary="Approve a trigger an agent made that awaits approval: it fires from "
                     "now on")
async def approve_trigger(request: Request, trigger_id: str, _: Caller = WRITE
                          ) -> TriggerOut:
    return _out(request, await blocking(request, services(request).approve_trigger,
                                        trigger_id))


@router.patch("/{trigger_id}", response_model=TriggerOut,
              summary="Change a trigger (only the fields given)")
async def update_trigger(request: Request, trigger_id: str, body: TriggerChange,
                         _: Caller = WRITE) -> TriggerOut:
    changes = body.model_dump(exclude_unset=True)
    trigger = await blocking(request, services(request).update_trigger, trigger_id, changes)
    return _out(request, trigger)


@router.delete("/{trigger_id}", response_model=Deleted,
               summary="Delete a trigger (its run history stays)")
async def delete_trigger(request: Request, trigger_id: str, _: Caller = WRITE) -> Deleted:
    found = await blocking(request, services(request).delete_trigger, trigger_id)
    return Deleted(id=found)


@router.post("/{trigger_id}/pause", response_model=TriggerOut, summary="Pause a trigger")
async def pause_trigger(request: Request, trigger_id: str, _: Caller = WRITE) -> TriggerOut:
    return _out(request, await blocking(request, services(request).pause_trigger, trigger_id))


@router.post("/{trigger_id}/resume", response_model=TriggerOut,
             summary="Resume a trigger from now (times passed while paused are skipped)")
async def resume_trigger(
    request: Request, trigger_id: str, _: Caller = WRITE,
    catch_up: bool = Query(False, description="Also fire the times passed while paused "
                           "within the trigger's catch-up window."),
) -> TriggerOut:
    svc = services(request)

    def resume() -> Trigger:
        return svc.resume_trigger(trigger_id, catch_up=catch_up)

    return _out(request, await blocking(request, resume))


@router.post("/{trigger_id}/backfill", response_model=BackfillOut,
             summary="Queue runs for the trigger's scheduled times in a past range (a time "
                     "that has a run keeps it)")
async def backfill(request: Request, trigger_id: str, body: BackfillBody, _: Caller = WRITE
                   ) -> BackfillOut:
    spec = BackfillInput(trigger=trigger_id, start=body.start, end=body.end, mode=body.mode)
    backfills = services(request).backfills

    def run() -> BackfillOut:
        return BackfillOut(**backfill_json(backfills.backfill(spec)))

    return await blocking(request, run)


@router.get("/{trigger_id}/next", response_model=NextFires,
            summary="The next fire times, in the trigger's zone and in UTC")
async def next_fires(request: Request, trigger_id: str, _: Caller = READ,
                     n: int = Query(10, description="How many, 1..1000.")) -> NextFires:
    svc = services(request)

    def read() -> NextFires:
        times = svc.next_fire_times(trigger_id, n)
        trigger = svc.get_trigger(trigger_id)
        return NextFires.of(trigger, svc.describe(trigger), times)

    return await blocking(request, read)


@router.post("/{trigger_id}/fire", response_model=FireOut, status_code=202,
             summary="Queue a run of the trigger's agent now, with the trigger's payload")
async def fire_trigger(request: Request, trigger_id: str, _: Caller = WRITE) -> FireOut:
    svc = services(request)
    trigger = await blocking(request, svc.get_trigger, trigger_id)
    run_id = await blocking(request, svc.fire, trigger.agent, trigger.payload)
    metrics = request.app.state.metrics
    if metrics is not None:
        metrics.fired("manual")
    return FireOut(id=run_id, agent=trigger.agent)


@router.post("/{trigger_id}/rotate-secret", response_model=WebhookSecret,
             summary="Give a webhook trigger a new signing secret (shown this once); the old "
                     "one stops working at once")
async def rotate_secret(request: Request, trigger_id: str, _: Caller = WRITE
                        ) -> WebhookSecret:
    svc = services(request)
    trigger, secret = await blocking(request, svc.triggers.rotate_secret, trigger_id)
    return WebhookSecret(id=trigger.id, secret=secret, hook_path=f"/hooks/{trigger.id}")
