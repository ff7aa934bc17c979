"""One fire-rate step for pgqueuer: N cron schedules every second (``SchedulerManager``).

pgqueuer's schedules take croniter expressions, whose optional 6th field is seconds, so
``* * * * * *`` is "every second"; each of the N jobs is its own entrypoint ``t<i>``
(a schedule is keyed by (entrypoint, expression)). pgqueuer does not catch up: a schedule
that was not picked in time simply moves on to the next second, so late ticks show up as
missed fires, by design.

pgqueuer hands the crontab function the schedule row *after* it advanced ``next_run``, not
the time that was due. The due time of a fire is the ``next_run`` the previous fire of the
same schedule returned, so the agent keeps that per schedule (exact on one process) and
skips each schedule's first fire (inside the warm-up), whose due time it cannot know.

Because schedules cannot keep a one-second beat (see the results), the step also runs in
``queue`` mode, pgqueuer's queue used as a scheduler the way a user would: N jobs are
enqueued for the anchor second with ``execute_after``, and each run re-enqueues its job
for the next second (scheduled time in the payload, so lag is exact and late seconds are
caught up, not skipped). Re-enqueues are buffered and written every 20 ms in one batch
insert, and the queue manager dequeues in batches of 100: pgqueuer's best case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from pgqueuer import Queries, QueueManager, SchedulerManager
from pgqueuer.models import Job, Schedule

from bench.counting import summarise
from bench.meter import CpuMeter
from bench.pg import libpq_url
from bench.probe import PROBE
from bench.steps import StepPlan, measure_async

_due: dict[str, datetime] = {}


async def agent(schedule: Schedule) -> None:
    entrypoint = str(schedule.entrypoint)
    due = _due.get(entrypoint)
    _due[entrypoint] = schedule.next_run
    if due is not None:
        PROBE.record(int(entrypoint[1:]), due.timestamp())


async def _stop(runner: asyncio.Task[None]) -> None:
    """Wait for pgqueuer to stop; a crash of its loop must fail the step, not hide."""
    if runner.done() and runner.exception() is not None:
        raise RuntimeError("pgqueuer's loop crashed") from runner.exception()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(runner, 30)


async def _connect(url: str) -> tuple[asyncpg.Connection, Queries]:
    """pgqueuer's own driver, asyncpg. (With its psycopg driver, a query waits for the
    LISTEN on the same connection to let go, which costs up to a second per dequeue.)"""
    conn = await asyncpg.connect(url)
    queries = Queries.from_asyncpg_connection(conn)
    if not await queries.schema_is_installed():
        await queries.install()
    settings = queries.qbe.settings
    await conn.execute(f"TRUNCATE {settings.schedules_table}, {settings.queue_table}")
    return conn, queries


async def _run_schedules(params: dict[str, Any]) -> dict[str, Any]:
    plan = StepPlan.from_params(params)
    url = libpq_url(params["db_url"])
    t0 = time.monotonic()
    conn, queries = await _connect(url)
    sm = SchedulerManager(queries)
    for i in range(plan.triggers):
        sm.schedule(f"t{i}", "* * * * * *")(agent)
    anchor = plan.anchor()
    setup_s = time.monotonic() - t0
    runner = asyncio.create_task(sm.run())
    meter = CpuMeter([os.getpid()], url, params["dbname"])
    cpu = await measure_async(plan, anchor, meter)
    sm.shutdown.set()
    await _stop(runner)
    await conn.close()
    window_start, window_end = plan.window(anchor)
    result = summarise(PROBE.records(), triggers=plan.triggers, window_start=window_start,
                       window_end=window_end)
    result.update(cpu)
    result.update({
        "system": "pgqueuer",
        "mode": "SchedulerManager cron schedules '* * * * * *' (6th field = seconds), one "
                "entrypoint per job, asyncpg driver; no catch-up by design",
        "setup_s": round(setup_s, 1),
    })
    return result


QUEUE_BATCH = 100
DEQUEUE_TIMEOUT_S = float(os.environ.get("BENCH_PGQ_DEQUEUE_TIMEOUT", "0.1"))
REENQUEUE_EVERY_S = 0.02


async def _run_queue(params: dict[str, Any]) -> dict[str, Any]:
    plan = StepPlan.from_params(params)
    url = libpq_url(params["db_url"])
    t0 = time.monotonic()
    conn, queries = await _connect(url)
    qm = QueueManager(queries)
    # The producer side has its own connection, as pgqueuer's examples do: the queue
    # manager's connection also carries its LISTEN.
    producer_conn = await asyncpg.connect(url)
    producer = Queries.from_asyncpg_connection(producer_conn)
    pending: list[bytes] = []

    @qm.entrypoint("bench_agent")
    async def bench_agent(job: Job) -> None:
        job_index, scheduled = (job.payload or b"0 0").split()
        ts = float(scheduled)
        PROBE.record(int(job_index), ts)
        pending.append(b"%s %d" % (job_index, ts + 1))

    async def reenqueue() -> None:
        while True:
            await asyncio.sleep(REENQUEUE_EVERY_S)
            if not pending:
                continue
            batch, pending[:] = list(pending), []
            now = time.time()
            await producer.enqueue(
                ["bench_agent"] * len(batch), list(batch), [0] * len(batch),
                [timedelta(seconds=max(0.0, float(p.split()[1]) - now)) for p in batch])

    anchor = plan.anchor()
    for offset in range(0, plan.triggers, 5000):
        count = min(5000, plan.triggers - offset)
        delay = timedelta(seconds=max(0.0, anchor - time.time()))
        await producer.enqueue(["bench_agent"] * count,
                              [b"%d %d" % (offset + i, anchor) for i in range(count)],
                              [0] * count, [delay] * count)
    setup_s = time.monotonic() - t0
    flusher = asyncio.create_task(reenqueue())
    runner = asyncio.create_task(qm.run(batch_size=QUEUE_BATCH,
                                        dequeue_timeout=timedelta(seconds=DEQUEUE_TIMEOUT_S)))
    meter = CpuMeter([os.getpid()], url, params["dbname"])
    cpu = await measure_async(plan, anchor, meter)
    qm.shutdown.set()
    flusher.cancel()
    await _stop(runner)
    await producer_conn.close()
    await conn.close()
    window_start, window_end = plan.window(anchor)
    result = summarise(PROBE.records(), triggers=plan.triggers, window_start=window_start,
                       window_end=window_end)
    result.update(cpu)
    result.update({
        "system": "pgqueuer-queue",
        "mode": "QueueManager jobs re-enqueued for the next second by each run (execute_after; "
                f"re-enqueues batched every {REENQUEUE_EVERY_S * 1000:.0f} ms, dequeue batch "
                f"{QUEUE_BATCH}), asyncpg driver",
        "setup_s": round(setup_s, 1),
    })
    return result


def run_step(params: dict[str, Any]) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    runner = _run_queue if params.get("mode") == "queue" else _run_schedules
    return asyncio.run(runner(params))
