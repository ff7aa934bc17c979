"""``/api/v1/nodes``, ``/api/v1/stats`` and ``/api/v1/costs``."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from agentcron.api.auth import READ, Caller, blocking
from agentcron.api.common import ERRORS, services
from agentcron.api.schemas import HourOut, LagOut, NodeOut, StatsOut, UsageOut
from agentcron.services.documents import cost_report_json, iso
from agentcron.services.overview import LagStats, overview, usage_by_day

router = APIRouter(prefix="/api/v1", tags=["nodes and stats"], responses=ERRORS)


@router.get("/nodes", response_model=list[NodeOut],
            summary="Nodes: alive, last heartbeat, runs in flight")
async def list_nodes(request: Request, _: Caller = READ) -> list[NodeOut]:
    nodes = await blocking(request, services(request).nodes)
    return [NodeOut.of(node, alive) for node, alive in nodes]


def _lag(lag: LagStats) -> LagOut:
    return LagOut(samples=lag.samples, p50_s=lag.p50, p95_s=lag.p95, max_s=lag.max)


@router.get("/stats", response_model=StatsOut,
            summary="Nodes, queue, runs in the last 24 h by status and hour, fire lag, "
                    "tokens and cost per agent per day")
async def stats(request: Request, _: Caller = READ,
                days: int = Query(7, description="Days of usage, 1..90.")) -> StatsOut:
    svc = services(request)

    def read() -> StatsOut:
        usage = usage_by_day(svc, days)
        view = overview(svc)
        return StatsOut(
            now=iso(view.now), nodes_alive=view.nodes_alive, nodes_total=view.nodes_total,
            queued=view.queued, ready=view.ready, running=view.running,
            last_24h=view.last_24h,
            hours=[HourOut(start=iso(h.start), counts=h.counts) for h in view.hours],
            fire_lag=_lag(view.fire_lag), start_lag=_lag(view.start_lag),
            overdue=view.behind.overdue, behind_s=view.behind.oldest_s,
            usage=[UsageOut(agent=u.agent, day=u.day.date().isoformat(), runs=u.runs,
                            input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                            cost_usd=u.cost_usd) for u in usage],
        )

    return await blocking(request, read)


class CostRowOut(BaseModel):
    key: str = Field(description="The agent, trigger id, model or day (UTC) of this group.")
    runs: int
    input_tokens: int
    output_tokens: int
    cost_usd: float = Field(description="The priced runs' cost; unpriced runs add nothing.")
    unpriced_runs: int = Field(description="Runs that reported tokens with no known price.")


class CostReportOut(BaseModel):
    by: str
    since: str | None
    until: str | None
    rows: list[CostRowOut]
    total: CostRowOut
    truncated: bool = Field(description="More groups exist than the limit let through.")


@router.get("/costs", response_model=CostReportOut,
            summary="Tokens and cost of the runs started in a period, grouped, with a total "
                    "(as agentcron costs --json)")
async def costs(
    request: Request, _: Caller = READ,
    by: str = Query("agent", description="Group by agent, trigger, model or day."),
    since: str | None = Query(None, description="Runs started from this date (UTC) or ISO "
                                                "time; default 30 days ago."),
    until: str | None = Query(None, description="... and before this one."),
    limit: int = Query(100, description="At most this many groups, 1..1000."),
) -> CostReportOut:
    report = await blocking(request, services(request).spending.cost_report, by, since,
                            until, limit=limit)
    return CostReportOut(**cost_report_json(report))
