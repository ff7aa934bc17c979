"""One fire-rate step for APScheduler 3.11: ``BackgroundScheduler`` with a
``SQLAlchemyJobStore`` on PostgreSQL and a thread pool, N interval jobs every second.

To make it the same workload as agentcron's (every scheduled time runs, overlapping runs
allowed, catch-up within 10 minutes): ``coalesce=False``, ``max_instances=1000``,
``misfire_grace_time=600``. The pool has 32 threads, agentcron's default thread pool.

APScheduler does not tell a job its scheduled time, so the executor below (a subclass of
APScheduler's own ``ThreadPoolExecutor``) hands each run time to APScheduler's ``run_job``
one at a time and exposes it to the agent in a thread-local: the misfire handling and the
job call are APScheduler's own code.
"""

from __future__ import annotations

import math
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bench.counting import summarise
from bench.meter import CpuMeter
from bench.pg import libpq_url, sqlalchemy_url
from bench.probe import PROBE
from bench.steps import StepPlan, measure_sync

POOL_THREADS = 32
ADD_JOB_ESTIMATE_S = 0.0015
_current = threading.local()


def agent(job: int) -> None:
    """The no-op agent: records its lag against the run time the executor set."""
    PROBE.record(job, _current.run_time)


def _run_each(job: Any, jobstore_alias: str, run_times: list[datetime], logger_name: str
              ) -> list[Any]:
    events = []
    for run_time in run_times:
        _current.run_time = run_time.timestamp()
        events.extend(run_job(job, jobstore_alias, [run_time], logger_name))
    return events


class RunTimeThreadPoolExecutor(ThreadPoolExecutor):  # type: ignore[misc]
    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def callback(future: Any) -> None:
            exc = future.exception()
            if exc:
                self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(_run_each, job, job._jobstore_alias, run_times,
                                   self._logger.name)
        future.add_done_callback(callback)


def run_step(params: dict[str, Any]) -> dict[str, Any]:
    plan = StepPlan.from_params(params)
    url = libpq_url(params["db_url"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS apscheduler_jobs")
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=sqlalchemy_url(url))},
        executors={"default": RunTimeThreadPoolExecutor(POOL_THREADS)},
        job_defaults={"coalesce": False, "max_instances": 1000, "misfire_grace_time": 600},
        timezone=UTC,
    )
    t0 = time.monotonic()
    scheduler.start(paused=True)
    # add_job writes one pickled row per job; anchor the jobs far enough ahead that adding
    # them all is done before the first fire (measured: well under 1 ms per job here).
    anchor = plan.anchor() + math.ceil(plan.triggers * ADD_JOB_ESTIMATE_S)
    first = datetime.fromtimestamp(anchor, UTC)
    for i in range(plan.triggers):
        scheduler.add_job(agent, "interval", seconds=1, args=(i,), id=f"t{i}",
                          start_date=first)
    setup_s = time.monotonic() - t0
    overrun_s = max(0.0, time.time() - anchor)
    scheduler.resume()
    meter = CpuMeter([os.getpid()], url, params["dbname"])
    cpu = measure_sync(plan, anchor, meter)
    scheduler.shutdown(wait=False)
    window_start, window_end = plan.window(anchor)
    result = summarise(PROBE.records(), triggers=plan.triggers, window_start=window_start,
                       window_end=window_end)
    result.update(cpu)
    result.update({
        "system": "apscheduler",
        "mode": "BackgroundScheduler + SQLAlchemyJobStore (PostgreSQL) + ThreadPoolExecutor("
                f"{POOL_THREADS}); interval jobs every 1s; coalesce=False, "
                "max_instances=1000, misfire_grace_time=600",
        "setup_s": round(setup_s, 1),
        "setup_overran_first_fire_s": round(overrun_s, 1),
    })
    return result
