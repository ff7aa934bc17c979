"""One fire-rate step for agentcron: N interval triggers every second, one node in this
process on PostgreSQL, the no-op agent recording its lag (start minus scheduled time)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from typing import Any

from agentcron.engine.node import Node
from agentcron.engine.settings import NodeSettings
from agentcron.executors import AgentRegistry, Executors, RunContext
from agentcron.logs import configure_logging
from agentcron.store import Store
from bench import agentcron_setup as setup
from bench.counting import summarise
from bench.meter import CpuMeter
from bench.pg import libpq_url, sqlalchemy_url
from bench.probe import PROBE
from bench.steps import StepPlan, measure_async


def pool_size_for(settings: NodeSettings) -> int:
    """The pool ``agentcron serve`` gives a node (runner.run_node)."""
    return max(5, settings.max_inflight // 200)


async def _run(params: dict[str, Any]) -> dict[str, Any]:
    plan = StepPlan.from_params(params)
    url = sqlalchemy_url(params["db_url"])
    settings = NodeSettings(database_url=url, api=False, **params.get("settings", {})).validate()
    store = Store(url, pool_size=pool_size_for(settings))
    t0 = time.monotonic()
    store.upgrade()
    setup.reset(store)
    setup.add_agent(store)
    ids = setup.insert_interval_triggers(store, plan.triggers)
    index = {tid: i for i, tid in enumerate(ids)}

    async def agent(ctx: RunContext) -> None:
        PROBE.record(index[ctx.trigger_id or ""], ctx.scheduled_for.timestamp())

    registry = AgentRegistry()
    registry.register(setup.TARGET, agent)
    counter = setup.StatementCounter(store)
    node = Node(store, settings, Executors(registry, thread_pool_size=settings.thread_pool_size))
    anchor = plan.anchor()
    setup.anchor_triggers(store, anchor)
    setup_s = time.monotonic() - t0
    await node.start()
    meter = CpuMeter([os.getpid()], libpq_url(params["db_url"]), params["dbname"])
    statements0 = counter.total()
    cpu = await measure_async(plan, anchor, meter)
    statements = counter.total() - statements0
    await node.drain()
    store.close()
    window_start, window_end = plan.window(anchor)
    result = summarise(PROBE.records(), triggers=plan.triggers, window_start=window_start,
                       window_end=window_end)
    fired = result["fires_per_s"] * result["window_s"]
    result.update(cpu)
    result.update({
        "system": "agentcron",
        "mode": "interval triggers (every 1s, overlap allow, catch-up all), one node in-process",
        "setup_s": round(setup_s, 1),
        "statements_in_window": statements,
        "statements_per_fire": round(statements / fired, 3) if fired else None,
        "settings": {k: v for k, v in dataclasses.asdict(settings).items()
                     if k not in ("database_url",)},
        "pool_size": pool_size_for(settings),
    })
    return result


def run_step(params: dict[str, Any]) -> dict[str, Any]:
    configure_logging("warning")
    return asyncio.run(_run(params))
