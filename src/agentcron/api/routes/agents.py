"""``/api/v1/agents``: list, create, show, replace, delete, fire now. Changing agents needs
an admin token (an agent is code the nodes run); firing needs write."""

from __future__ import annotations

from fastapi import APIRouter, Request

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
from agentcron.errors import ConflictError, NotFoundError
from agentcron.models import AgentSpec

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], responses=ERRORS)


def _build(request: Request, name: str, body: AgentBody) -> AgentSpec:
    limits = None if body.budget is None else body.budget.model_dump(
        exclude={"on_budget"}, exclude_none=True)
    return services(request).build_agent(
        name, body.kind, body.config, max_concurrency=body.max_concurrency,
        timeout=body.timeout, max_attempts=body.max_attempts,
        zombie_timeout=body.zombie_timeout, retry_backoff=body.retry_backoff,
        description=body.description, source="api", budget=limits,
        on_budget=None if body.budget is None else body.budget.on_budget)


@router.get("", response_model=list[AgentOut], summary="List agents")
async def list_agents(request: Request, _: Caller = READ) -> list[AgentOut]:
    agents = await blocking(request, services(request).store.list_agents)
    return [AgentOut.of(a) for a in agents]


@router.post("", response_model=AgentOut, status_code=201, summary="Create an agent")
async def create_agent(request: Request, body: AgentCreate, _: Caller = ADMIN) -> AgentOut:
    svc = services(request)
    spec = _build(request, body.name, body)

    def create() -> AgentSpec:
        try:
            svc.store.get_agent(spec.name)
        except NotFoundError:
            return svc.add_agent(spec)
        raise ConflictError(f"agent {spec.name!r} already exists; PUT "
                            f"/api/v1/agents/{spec.name} replaces it")

    return AgentOut.of(await blocking(request, create))


@router.get("/{name}", response_model=AgentOut, summary="Show an agent")
async def get_agent(request: Request, name: str, _: Caller = READ) -> AgentOut:
    return AgentOut.of(await blocking(request, services(request).get_agent, name))


@router.put("/{name}", response_model=AgentOut, summary="Create or replace an agent")
async def put_agent(request: Request, name: str, body: AgentBody, _: Caller = ADMIN
                    ) -> AgentOut:
    """A full replace, like every PUT of this API: a setting the body leaves out takes its
    default, so a PUT without ``budget`` removes the agent's budget."""
    spec = _build(request, name, body)
    return AgentOut.of(await blocking(request, services(request).add_agent, spec))


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
