"""scale: a node over 100k and 1M stored triggers that fire sparsely (every hour, first
fires spread over the hour): start-up time, resident memory, SQL statements and
milliseconds per tick. A run with no triggers at all is the memory baseline: the node's
memory must not grow with the number of stored triggers.

The triggers are written by the parent (one INSERT ... SELECT generate_series); the node
runs in a fresh child process, so its start-up time and memory are a real node's.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from bench import report
from bench.child import run_child
from bench.counting import percentile
from bench.meter import wait_for_quiet
from bench.pg import PgTarget, ensure_database, sqlalchemy_url

COLUMNS: list[report.Column] = [
    ("stored_triggers", "stored triggers"), ("insert_s", "insert s"),
    ("node_start_s", "node start s"), ("ready_s", "process to 1st tick s"),
    ("rss_mb", "RSS MB"), ("rss_max_mb", "RSS max MB"), ("fires_per_s", "fires/s"),
    ("ticks_per_s", "fire_due/s"), ("tick_ms_p50", "ms/tick p50"),
    ("tick_ms_p99", "ms/tick p99"), ("statements_per_tick", "stmts/tick"),
    ("statements_per_s", "stmts/s (node)"), ("lag_p99_ms", "lag p99 ms"), ("note", "note"),
]


def workload(target: PgTarget, out: Path, *, quick: bool, sizes: list[int] | None) -> None:
    from agentcron.store import Store
    from bench import agentcron_setup as setup

    sizes = sizes or ([50_000] if quick else [100_000, 1_000_000])
    run_s = 4 if quick else 15
    url = ensure_database(target, "scale")
    results = []
    for size in [0, *sizes]:
        report.console.print(f"[bold]scale[/bold] {size:,} stored triggers ...")
        quiet = wait_for_quiet(0 if quick else 120)
        store = Store(sqlalchemy_url(url))
        store.upgrade()
        setup.reset(store)
        setup.add_agent(store)
        t0 = time.monotonic()
        # the first fires come once the insert is done and the node is up
        first_fire = setup.insert_sparse_triggers(store, size, lead_s=4 + size * 25e-6)
        insert_s = time.monotonic() - t0
        store.close()
        result = run_child("scale", {"db_url": url, "dbname": target.dbname("scale"),
                                     "run_s": run_s, "spawned_at": time.time(),
                                     "first_fire_at": first_fire},
                           timeout_s=120 + run_s, label=f"{target.prefix}-scale-{size}")
        result.update(stored_triggers=size, insert_s=round(insert_s, 1), **quiet)
        if result.get("error"):
            result["note"] = f"error: {result['error']}"[:160]
        else:
            report.console.print(f"  start {result['node_start_s']} s, RSS {result['rss_mb']} MB,"
                                 f" {result['tick_ms_p50']} ms/tick")
        results.append(result)
    report.print_table("scale: one node over many stored triggers", COLUMNS, results)
    report.write_json(out, "scale", pg_url=target.admin_url(), results=results, settings={
        "sizes": sizes, "run_s": run_s, "schedule": "every 1h, first fires spread evenly "
        "over the hour", "baseline": "0 stored triggers"}, notes=[
        "node start: open the store and check the schema, then Node.start() (register, "
        "start the loops); process to 1st tick: from spawning the process (imports "
        "included) until its first fire_due returned",
        "RSS: resident memory once running (rss_mb: median of samples, rss_max_mb: max)",
        "a tick here is one fire_due call (one batch); its statements are counted on the "
        "thread that runs it; stmts/s counts every statement the node sent",
    ])


# -- the node process -----------------------------------------------------------------------

def run_step(params: dict[str, Any]) -> dict[str, Any]:
    imported_at = time.time()
    from agentcron.logs import configure_logging

    configure_logging("warning")
    return asyncio.run(_run(params, imported_at))


async def _run(params: dict[str, Any], imported_at: float) -> dict[str, Any]:
    from agentcron.engine.node import Node
    from agentcron.engine.settings import NodeSettings
    from agentcron.executors import AgentRegistry, Executors, RunContext
    from agentcron.store import Store
    from bench import agentcron_setup as setup
    from bench.agentcron_runner import pool_size_for
    from bench.probe import PROBE

    proc = psutil.Process(os.getpid())
    url = sqlalchemy_url(params["db_url"])
    settings = NodeSettings(database_url=url, api=False).validate()
    t0 = time.monotonic()
    store = Store(url, pool_size=pool_size_for(settings))
    store.ensure_migrated()
    counter = setup.StatementCounter(store)
    ticks: list[tuple[float, int, int]] = []
    first_tick = threading.Event()
    fire_due = store.fire_due

    def timed_fire_due(*args: Any, **kwargs: Any) -> Any:
        with counter.in_this_thread() as count:
            started = time.perf_counter()
            result = fire_due(*args, **kwargs)
            ticks.append((time.perf_counter() - started, count(), result.triggers))
        first_tick.set()
        return result

    store.fire_due = timed_fire_due  # type: ignore[method-assign]

    async def agent(ctx: RunContext) -> None:
        PROBE.record(int((ctx.trigger_id or "trs_0")[4:]), ctx.scheduled_for.timestamp())

    registry = AgentRegistry()
    registry.register(setup.TARGET, agent)
    node = Node(store, settings, Executors(registry, thread_pool_size=settings.thread_pool_size))
    await node.start()
    node_start_s = time.monotonic() - t0
    await asyncio.to_thread(first_tick.wait, 60)
    ready_s = time.time() - float(params["spawned_at"])
    rss_at_start = proc.memory_info().rss
    # measure once the triggers have begun to fire (the insert left them a lead)
    await asyncio.sleep(max(0.0, float(params["first_fire_at"]) - time.time()))
    ticks.clear()
    statements0 = counter.total()
    fires0 = len(PROBE)
    t_run = time.monotonic()
    samples = []
    while time.monotonic() - t_run < float(params["run_s"]):
        await asyncio.sleep(0.5)
        samples.append(proc.memory_info().rss)
    elapsed = time.monotonic() - t_run
    statements = counter.total() - statements0
    fires = len(PROBE) - fires0
    done = list(ticks)
    await node.drain()
    store.close()
    durations = sorted(t[0] for t in done)
    busy = [t for t in done if t[2]]
    lags = sorted(started - scheduled for _, scheduled, started in PROBE.records())
    samples.sort()
    mb = 1 / 2**20
    return {
        "import_s": round(imported_at - float(params["spawned_at"]), 2),
        "node_start_s": round(node_start_s, 2),
        "ready_s": round(ready_s, 2),
        "rss_at_start_mb": round(rss_at_start * mb, 1),
        "rss_mb": round(samples[len(samples) // 2] * mb, 1) if samples else None,
        "rss_max_mb": round(samples[-1] * mb, 1) if samples else None,
        "run_s": round(elapsed, 1),
        "fires_per_s": round(fires / elapsed, 1),
        "ticks": len(done),
        "ticks_per_s": round(len(done) / elapsed, 1),
        "tick_ms_p50": round(percentile(durations, 50) * 1000, 2) if done else None,
        "tick_ms_p99": round(percentile(durations, 99) * 1000, 2) if done else None,
        "tick_ms_mean": round(sum(durations) / len(done) * 1000, 2) if done else None,
        "statements_per_tick": round(sum(t[1] for t in done) / len(done), 2) if done else None,
        "statements_per_tick_max": max((t[1] for t in done), default=None),
        "triggers_per_busy_tick": round(sum(t[2] for t in busy) / len(busy), 1) if busy else 0,
        "statements_per_s": round(statements / elapsed, 1),
        "lag_p99_ms": round(percentile(lags, 99) * 1000, 1) if lags else None,
    }
