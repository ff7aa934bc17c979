"""``/api/v1/alerts`` (the outbox: what was raised, grouped and delivered) and
``/api/v1/alert-rules`` (list, create, delete). Rules carry channel URLs and secrets, so
changing them needs an admin token."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from agentcron.api.auth import ADMIN, READ, Caller, blocking
from agentcron.api.common import ERRORS, services
from agentcron.api.schemas import AlertOut, AlertRuleBody, AlertRuleOut, Deleted
from agentcron.services.alerts import AlertRuleInput
from agentcron.services.documents import alert_json, alert_rule_json

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=ERRORS)


@router.get("/alerts", response_model=list[AlertOut], summary="List alerts, newest first")
async def list_alerts(
    request: Request, _: Caller = READ,
    agent: str | None = Query(None, description="Only this agent's."),
    status: str | None = Query(None, description="open|sending|retrying|delivered|failed"),
    limit: int = Query(50, description="1..1000"),
) -> list[AlertOut]:
    listed = await blocking(request, services(request).alerts.alerts, limit=limit,
                            status=status, agent=agent)
    return [AlertOut(**alert_json(a)) for a in listed]


@router.get("/alert-rules", response_model=list[AlertRuleOut], summary="List alert rules")
async def list_rules(request: Request, _: Caller = READ,
                     agent: str | None = Query(None, description="Only this agent's.")
                     ) -> list[AlertRuleOut]:
    rules = await blocking(request, services(request).alerts.rules, agent)
    return [AlertRuleOut(**alert_rule_json(r)) for r in rules]


@router.post("/alert-rules", response_model=AlertRuleOut, status_code=201,
             summary="Add an alert rule")
async def create_rule(request: Request, body: AlertRuleBody, _: Caller = ADMIN
                      ) -> AlertRuleOut:
    spec = AlertRuleInput(**body.model_dump())
    rule = await blocking(request, services(request).alerts.add, spec, source="api")
    return AlertRuleOut(**alert_rule_json(rule))


@router.delete("/alert-rules/{rule_id}", response_model=Deleted,
               summary="Remove an alert rule and its alerts")
async def delete_rule(request: Request, rule_id: str, _: Caller = ADMIN) -> Deleted:
    await blocking(request, services(request).alerts.remove, rule_id)
    return Deleted(id=rule_id)
