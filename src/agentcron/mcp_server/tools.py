"""The MCP tools: each a thin call into ``Services`` with typed parameters (the SDK makes
their JSON schema from the signature) and an answer a model can act on (the API's JSON
documents). Errors agentcron raises on purpose (bad input, not found, refused) come back as
tool errors carrying the same message as the CLI (``field: problem (fix)``); anything else
is a tool error without details, logged by the SDK.

Blocking service calls run in worker threads, at most ``THREADS`` at once per server, so
tool calls cannot starve the event loop (the node's, under ``serve``) of its threads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from agentcron import __version__
from agentcron.errors import AgentcronError, ValidationError
from agentcron.mcp_server.callers import McpCaller
from agentcron.mcp_server.scheduling import create_trigger
from agentcron.models import Run
from agentcron.schedule.durations import parse_duration
from agentcron.services import Services
from agentcron.services.documents import (
    agent_json,
    cost_report_json,
    run_detail_json,
    run_json,
    trigger_json,
)
from agentcron.services.spending import MAX_REPORT_ROWS, CostReport, cost_group
from agentcron.services.trigger_input import TriggerInput
from agentcron.services.validate import check_int_between

P = ParamSpec("P")
T = TypeVar("T")

#: Who is calling, from the tool call's context (``stdio.py``: the process's token;
#: ``http.py``: the request's). Raises ``McpRefused`` for a token that may not use MCP.
Identify = Callable[[Context], Awaitable[McpCaller]]

THREADS = 4
INSTRUCTIONS = """agentcron runs AI agents on schedules. Use list_agents to see what can be
scheduled; create_trigger to run an agent later (at, delay), repeatedly (every) or on a
calendar (cron with tz); list_runs and show_run to read what happened (status, output,
error, cost); pause_trigger, resume_trigger and delete_trigger to manage schedules;
cost_report for what runs cost. An error names the field to change and how."""

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

TOOL_NAMES = ("list_agents", "list_triggers", "show_trigger", "create_trigger",
              "pause_trigger", "resume_trigger", "delete_trigger", "fire_agent", "list_runs",
              "show_run", "cost_report")

AgentName = Annotated[str, Field(description="An agent's name (see list_agents).")]
TriggerRef = Annotated[str, Field(description="A trigger's id (tr_...) or its name.")]
RunRef = Annotated[str, Field(description="A run's id, or a unique prefix of it (8+ chars).")]
Payload = Annotated[Any, Field(description="Any JSON value the agent receives as its "
                                           "payload (default none).")]


def build_server(services: Services, identify: Identify) -> MCPServer:
    """An MCP server whose tools act on ``services`` as the caller ``identify`` finds."""
    server: MCPServer = MCPServer("agentcron", version=__version__,
                                  instructions=INSTRUCTIONS)
    tools = _Tools(services, identify)
    for name in TOOL_NAMES:
        fn = getattr(tools, name)
        server.add_tool(fn, name=name, description=_describe(fn),
                        annotations=_ANNOTATIONS.get(name, READ_ONLY))
    return server


_ANNOTATIONS = {"create_trigger": CHANGES, "pause_trigger": CHANGES,
                "resume_trigger": CHANGES, "fire_agent": CHANGES,
                "delete_trigger": DESTRUCTIVE}


def _describe(fn: Callable[..., Any]) -> str:
    return " ".join((fn.__doc__ or "").split())


class _Tools:
    """The tools, bound to one ``Services``. Every tool first finds its caller (so a
    revoked token stops working at its next call), then checks what the caller may do."""

    def __init__(self, services: Services, identify: Identify) -> None:
        self.services = services
        self.identify = identify
        self.limiter = anyio.CapacityLimiter(THREADS)

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn`` in a worker thread; agentcron's own errors become tool errors with their
        message."""
        try:
            return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs),
                                                  limiter=self.limiter)
        except AgentcronError as exc:
            raise ToolError(str(exc)) from exc

    async def _caller(self, ctx: Context) -> McpCaller:
        try:
            return await self.identify(ctx)
        except AgentcronError as exc:
            raise ToolError(str(exc)) from exc

    # -- agents ---------------------------------------------------------------------------

    async def list_agents(self, ctx: Context) -> dict[str, Any]:
        """List the agents this token may schedule, with their kind, limits and budget."""
        caller = await self._caller(ctx)
        agents = await self._call(self.services.agents.all)
        return {"agents": [agent_json(a) for a in agents if caller.sees(a.name)]}

    async def fire_agent(self, ctx: Context, agent: AgentName,
                         payload: Payload = None) -> dict[str, Any]:
        """Queue one run of an agent now, with an optional JSON payload. Returns the run's
        id: follow it with show_run."""
        caller = await self._caller(ctx)
        await self._call(self._check, caller, "fire_agent", agent)
        run_id = await self._call(self.services.fire, agent, payload)
        return {"id": run_id, "agent": agent}

    @staticmethod
    def _check(caller: McpCaller, tool: str, agent: str) -> None:
        caller.check_change(tool)
        caller.check_agent(agent)

    # -- triggers -------------------------------------------------------------------------

    async def list_triggers(
        self, ctx: Context,
        agent: Annotated[str | None, Field(description="Only this agent's triggers.")] = None,
        limit: Annotated[int, Field(description="At most this many, 1..500.")] = 100,
        created_by: Annotated[str | None, Field(
            description="Only those made by this: cli, file, api:NAME, mcp:NAME, run:ID, or "
                        "a prefix ending in ':' (mcp:, run:).")] = None,
    ) -> dict[str, Any]:
        """List triggers (schedules), by agent then creation, each with its schedule in
        words, next fire time, whether it is paused and who made it."""
        caller = await self._caller(ctx)
        return await self._call(self._list_triggers, caller, agent, limit, created_by)

    def _list_triggers(self, caller: McpCaller, agent: str | None, limit: int,
                       created_by: str | None) -> dict[str, Any]:
        svc = self.services
        if agent is not None or caller.agents is None:
            if agent is not None:
                caller.check_agent(agent)
            page, total = svc.triggers_page(agent, limit, created_by=created_by)
        else:
            page, total = [], 0
            for name in caller.agents:
                some, count = svc.triggers_page(name, limit, created_by=created_by)
                page += some
                total += count
            page = page[:limit]
        return {"triggers": [trigger_json(t, svc.describe(t), preview=True) for t in page],
                "total": total, "limit": limit}

    async def show_trigger(self, ctx: Context, trigger: TriggerRef) -> dict[str, Any]:
        """Show one trigger in full: schedule, payload, next fire time, pause state and
        failures."""
        caller = await self._caller(ctx)

        def show() -> dict[str, Any]:
            found = self.services.get_trigger(trigger)
            caller.check_agent(found.agent)
            return trigger_json(found, self.services.describe(found))

        return await self._call(show)

    async def create_trigger(
        self, ctx: Context, agent: AgentName,
        cron: Annotated[str | None, Field(
            description="A cron expression (5 fields, or 6 with seconds first), e.g. "
            "'0 9 * * MON-FRI'; with tz.")] = None,
        tz: Annotated[str | None, Field(
            description="IANA time zone for cron or at, e.g. 'Europe/Paris' (default "
            "UTC).")] = None,
        every: Annotated[str | None, Field(
            description="Repeat this often, e.g. '20m', '6h' (a unit is required).")] = None,
        at: Annotated[str | None, Field(
            description="Run once at this time, ISO 8601, e.g. '2026-03-01T09:00:00Z' (or "
            "local time in tz).")] = None,
        delay: Annotated[str | None, Field(
            description="Run once this long from now, e.g. '20m' (instead of at).")] = None,
        payload: Payload = None,
        name: Annotated[str | None, Field(
            description="A name for the trigger (1-100 characters), to find it again.")
        ] = None,
    ) -> dict[str, Any]:
        """Schedule an agent: give exactly one of cron (with tz), every, at or delay.
        Returns the new trigger with its next fire time."""
        caller = await self._caller(ctx)

        def create() -> dict[str, Any]:
            # One clock read: the guardrails measure a delay from the moment it counts
            # from, so a delay of exactly the agent's min_interval passes.
            now = self.services.now()
            when = at if delay is None else self._after(delay, at, now)
            spec = TriggerInput(agent=agent, cron=cron, every=every, at=when, tz=tz,
                                payload=payload, name=name)
            trigger = create_trigger(self.services, caller, spec, now)
            return trigger_json(trigger, self.services.describe(trigger))

        return await self._call(create)

    @staticmethod
    def _after(delay: str, at: str | None, now: datetime) -> datetime:
        """``delay`` from ``now`` (the database's clock, which decides what fires when)."""
        if at is not None:
            raise ValidationError("delay", "delay and at given together",
                                  "give at (a time) or delay (e.g. 20m), not both")
        when = now + timedelta(seconds=parse_duration(delay, "delay"))
        # Up to the next whole second: a time a person (or a model) reads back plainly.
        return when.replace(microsecond=0) + timedelta(seconds=1 if when.microsecond else 0)

    async def pause_trigger(self, ctx: Context, trigger: TriggerRef) -> dict[str, Any]:
        """Pause a trigger: it does not fire until resumed."""
        return await self._change(ctx, "pause_trigger", trigger, self.services.pause_trigger)

    async def resume_trigger(self, ctx: Context, trigger: TriggerRef) -> dict[str, Any]:
        """Resume a paused trigger from now (times passed while paused are skipped)."""
        return await self._change(ctx, "resume_trigger", trigger,
                                  self.services.resume_trigger)

    async def delete_trigger(self, ctx: Context, trigger: TriggerRef) -> dict[str, Any]:
        """Delete a trigger; its past runs stay in the history."""
        caller = await self._caller(ctx)

        def delete() -> dict[str, Any]:
            found = self.services.get_trigger(trigger)
            self._check(caller, "delete_trigger", found.agent)
            return {"id": self.services.delete_trigger(found.id), "deleted": True}

        return await self._call(delete)

    async def _change(self, ctx: Context, tool: str, ref: str,
                      act: Callable[[str], Any]) -> dict[str, Any]:
        caller = await self._caller(ctx)

        def change() -> dict[str, Any]:
            found = self.services.get_trigger(ref)
            self._check(caller, tool, found.agent)
            changed = act(found.id)
            return trigger_json(changed, self.services.describe(changed))

        return await self._call(change)

    # -- runs and costs -------------------------------------------------------------------

    async def list_runs(
        self, ctx: Context,
        agent: Annotated[str | None, Field(description="Only this agent's runs.")] = None,
        trigger: Annotated[str | None, Field(
            description="Only this trigger's runs (id or name).")] = None,
        status: Annotated[str | None, Field(
            description="queued, running, succeeded, failed, cancelled or skipped.")] = None,
        limit: Annotated[int, Field(description="At most this many, 1..1000.")] = 20,
        cursor: Annotated[str | None, Field(
            description="next_cursor of the previous page, for older runs.")] = None,
    ) -> dict[str, Any]:
        """List runs, newest first, each with its status, start, output preview, error and
        cost."""
        caller = await self._caller(ctx)
        return await self._call(self._list_runs, caller, agent, trigger, status, limit,
                                cursor)

    def _list_runs(self, caller: McpCaller, agent: str | None, trigger: str | None,
                   status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
        svc = self.services
        trigger_id = None
        if trigger is not None:
            found = svc.get_trigger(trigger)
            caller.check_agent(found.agent)
            trigger_id = found.id
        if agent is not None:
            caller.check_agent(agent)
        if agent is not None or trigger_id is not None or caller.agents is None:
            page = svc.list_runs(agent=agent, trigger_id=trigger_id, status=status,
                                 limit=limit, before=cursor)
            return {"runs": [run_json(r, preview=True) for r in page.runs],
                    "next_cursor": page.next_cursor}
        if cursor is not None:
            raise ValidationError("cursor", "the runs of several agents are listed in one "
                                  "page only", "give agent to page through its runs")
        runs: list[Run] = []
        for name in caller.agents:
            runs += svc.list_runs(agent=name, status=status, limit=limit).runs
        runs.sort(key=lambda r: (r.queued_at, r.id), reverse=True)
        return {"runs": [run_json(r, preview=True) for r in runs[:limit]],
                "next_cursor": None}

    async def show_run(self, ctx: Context, run: RunRef) -> dict[str, Any]:
        """Show one run in full: status, attempts, output, error, tokens and cost, and its
        events."""
        caller = await self._caller(ctx)

        def show() -> dict[str, Any]:
            found, events = self.services.get_run(run)
            caller.check_agent(found.agent)
            return run_detail_json(found, events)

        return await self._call(show)

    async def cost_report(
        self, ctx: Context,
        by: Annotated[str, Field(description="Group by agent, trigger, model or day.")
                      ] = "agent",
        since: Annotated[str | None, Field(
            description="Runs started from this date (UTC) or ISO time; default 30 days "
            "ago.")] = None,
        until: Annotated[str | None, Field(description="... and before this one.")] = None,
        limit: Annotated[int, Field(description="At most this many groups, 1..1000.")] = 100,
    ) -> dict[str, Any]:
        """Tokens and cost (USD) of the runs started in a period, grouped, with a total."""
        caller = await self._caller(ctx)
        return await self._call(self._cost_report, caller, by, since, until, limit)

    def _cost_report(self, caller: McpCaller, by: str, since: str | None,
                     until: str | None, limit: int) -> dict[str, Any]:
        spending = self.services.spending
        if caller.agents is None:
            return cost_report_json(spending.cost_report(by, since, until, limit=limit))
        if cost_group(by) != "agent":  # the only grouping a limited token may see
            raise ValidationError("by", f"token {caller.name!r} is limited to agents, so "
                                  "its costs are grouped by agent only", "by=agent")
        check_int_between(limit, "limit", 1, MAX_REPORT_ROWS)
        report = spending.cost_report("agent", since, until, limit=MAX_REPORT_ROWS)
        rows = [r for r in report.rows if caller.sees(r.key)]
        return cost_report_json(CostReport(
            report.by, report.since, report.until, rows[:limit],
            truncated=len(rows) > limit or report.truncated))
