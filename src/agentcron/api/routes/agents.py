"""``/api/v1/agents``: list, create, show, replace, delete, fire now. Changing agents needs
an admin token (an agent is code the nodes run); firing needs write."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, Query, Request, Response

from agentcron.api.auth import ADMIN, READ, WRITE, Caller, blocking
from agentcron.api.common import ERRORS, services
from agentcron.api.schemas import (
    AgentBody,
    AgentCreate,
    AgentOut,
    AgentRemoved,
    FireBody,
    FireOut,
)
from agentcron.models import AgentSpec
from agentcron.services import AgentInput, agent_settings
from agentcron.services.agents import import_problem
from agentcron.services.documents import key_usage_json

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], responses=ERRORS)


def _build(request: Request, name: str, body: AgentBody) -> AgentSpec:
    """The agent ``body`` states, validated; its budget comes in the shape ``AgentOut``
    shows it, with ``on_budget`` inside."""
    settings = agent_settings(body)
    if body.budget is not None:
        settings.update(budget=body.budget.model_dump(exclude={"on_budget"}, exclude_none=True),
                        on_budget=body.budget.on_budget)
    settings["scheduling"] = (body.scheduling.model_dump(exclude_none=True)
                              if body.scheduling is not None else None)
    spec = AgentInput(name=name, kind=body.kind, config=body.config, **settings)
    return services(request).agents.build(spec, source="api")


@router.get("", response_model=list[AgentOut], summary="List agents")
async def list_agents(request: Request, _: Caller = READ) -> list[AgentOut]:
    agents = await blocking(request, services(request).agents.all)
    return [AgentOut.of(a) for a in agents]


WARNING_HEADER = "Agentcron-Warning"


async def _warn_unimportable(request: Request, response: Response, spec: AgentSpec) -> None:
    """A python agent this node cannot import is saved (other nodes may have its code),
    with a warning header naming the field and the fix, and a warning in the node's log."""
    problem = await blocking(request, import_problem, spec)
    if problem is None:
        return
    text = (f"{problem.field}: {problem.message} (on this node). The agent is saved, but its "
            f"runs fail on any node that cannot import it ({problem.hint})")
    log.warning("python_agent_not_importable", agent=spec.name, problem=text)
    response.headers[WARNING_HEADER] = text.encode("ascii", "replace").decode()


@router.post("", response_model=AgentOut, status_code=201, summary="Create an agent")
async def create_agent(request: Request, response: Response, body: AgentCreate,
                       _: Caller = ADMIN) -> AgentOut:
    spec = _build(request, body.name, body)
    saved = AgentOut.of(await blocking(request, services(request).agents.create, spec))
    await _warn_unimportable(request, response, spec)
    return saved


@router.get("/{name}", response_model=AgentOut, summary="Show an agent")
async def get_agent(request: Request, name: str, _: Caller = READ) -> AgentOut:
    return AgentOut.of(await blocking(request, services(request).get_agent, name))


@router.get("/{name}/keys", summary="How full an agent's concurrency keys are")
async def agent_keys(request: Request, name: str, _: Caller = READ,
                     limit: int = Query(10, description="Keys shown, fullest first, 1..1000.")
                     ) -> dict[str, Any]:
    svc = services(request)

    def usage() -> dict[str, Any]:
        return key_usage_json(svc.get_agent(name), svc.agents.busiest_keys(name, limit))

    return await blocking(request, usage)


@router.put("/{name}", response_model=AgentOut, summary="Create or replace an agent")
async def put_agent(request: Request, response: Response, name: str, body: AgentBody,
                    _: Caller = ADMIN) -> AgentOut:
    """A full replace, like every PUT of this API: a setting the body leaves out takes its
    default, so a PUT without ``budget`` removes the agent's budget."""
    spec = _build(request, name, body)
    saved = AgentOut.of(await blocking(request, services(request).add_agent, spec))
    await _warn_unimportable(request, response, spec)
    return saved


@router.delete("/{name}", response_model=AgentRemoved,
               summary="Delete an agent and its triggers (queued runs are cancelled)")
async def delete_agent(request: Request, name: str, _: Caller = ADMIN) -> AgentRemoved:
    svc = services(request)
    cancelled = await blocking(request, lambda: svc.remove_agent(svc.get_agent(name).name))
    return AgentRemoved(name=name, cancelled_runs=cancelled)


@router.post("/{name}/fire", response_model=FireOut, status_code=202,
             summary="Queue a run of the agent now")
async def fire_agent(request: Request, name: str, body: FireBody | None = None,
                     _: Caller = WRITE) -> FireOut:
    payload = body.payload if body is not None else None
    run_id = await blocking(request, services(request).fire, name, payload)
    metrics = request.app.state.metrics
    if metrics is not None:
        metrics.fired("manual")
    return FireOut(id=run_id, agent=name)
