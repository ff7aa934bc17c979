"""One fire-rate step for procrastinate 3.x: N periodic tasks every second.

procrastinate's periodic tasks take a 6-field cron whose last field is seconds, so
``* * * * * *`` expresses "every second" directly: periodic tasks are used, not
re-deferred jobs. Each (task, periodic_id) pair is one of the N jobs; the periodic
deferrer defers every due (periodic_id, timestamp) once (a unique row in
``procrastinate_periodic_defers``), catching up to 10 minutes back, and passes the
scheduled time to the task as ``timestamp`` (whole seconds), which is what the agent
measures its lag against. The worker runs with concurrency 32 (async agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

import procrastinate
import psycopg

from bench.counting import summarise
from bench.meter import CpuMeter
from bench.pg import libpq_url
from bench.probe import PROBE
from bench.steps import StepPlan, measure_async

CONCURRENCY = 32
POOL_MAX = 16


def _reset(url: str) -> bool:
    """Empty procrastinate's tables; True if its schema must be applied first."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
        if exists and exists[0]:
            conn.execute("TRUNCATE procrastinate_jobs, procrastinate_periodic_defers, "
                         "procrastinate_events, procrastinate_workers CASCADE")
            return False
    return True


async def _run(params: dict[str, Any]) -> dict[str, Any]:
    plan = StepPlan.from_params(params)
    url = libpq_url(params["db_url"])
    t0 = time.monotonic()
    needs_schema = _reset(url)
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(
        conninfo=url, min_size=2, max_size=POOL_MAX))

    @app.task(name="bench_agent")
    async def bench_agent(timestamp: int, i: int) -> None:
        PROBE.record(i, float(timestamp))

    for i in range(plan.triggers):
        app.periodic(cron="* * * * * *", periodic_id=f"t{i}",
                     task_kwargs={"i": i})(bench_agent)
    async with app.open_async():
        if needs_schema:
            await app.schema_manager.apply_schema_async()
        anchor = plan.anchor()
        setup_s = time.monotonic() - t0
        worker = asyncio.create_task(app.run_worker_async(
            concurrency=CONCURRENCY, install_signal_handlers=False, wait=True))
        meter = CpuMeter([os.getpid()], url, params["dbname"])
        cpu = await measure_async(plan, anchor, meter)
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(worker, 30)
    window_start, window_end = plan.window(anchor)
    result = summarise(PROBE.records(), triggers=plan.triggers, window_start=window_start,
                       window_end=window_end)
    result.update(cpu)
    result.update({
        "system": "procrastinate",
        "mode": "periodic tasks, cron '* * * * * *' (6th field = seconds), one periodic_id "
                f"per job; worker concurrency {CONCURRENCY}, pool {POOL_MAX}",
        "setup_s": round(setup_s, 1),
    })
    return result


def run_step(params: dict[str, Any]) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(_run(params))
