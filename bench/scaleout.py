"""scale-out: the same I/O-bound agent served by 1, 2 and 3 ``agentcron serve`` nodes.

The agent (``bench.probe:io_file_agent``) records its start, then waits 0.5 s on I/O without
using the CPU, as an agent waiting on a model does. Each node runs at most ``--max-inflight``
runs at once (100), so one node can deliver at most ``max_inflight / latency`` = 200 runs/s:
the offered load (triggers firing every second) is more than the largest cluster can take,
so each cluster is measured at its capacity. The agent's own limit is far above it. Because
the work waits on I/O, nodes on one host add capacity: the target is 3 nodes >= 2.7 x one
node's runs/s, and one node >= 90 % of its 200 runs/s. Duplicates must be 0.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.counting import summarise
from bench.meter import CpuMeter, wait_for_quiet
from bench.pg import PgTarget, ensure_database, libpq_url, sqlalchemy_url
from bench.replicas import Cluster, _db_duplicates, read_probe

MAX_INFLIGHT = 100
IO_WAIT_S = 0.5
COLUMNS: list[report.Column] = [
    ("nodes", "nodes"), ("triggers", "N/s offered"), ("runs_per_s", "runs started/s"),
    ("capacity_per_s", "capacity/s"), ("of_capacity_pct", "% of capacity"),
    ("speedup", "x one node"), ("lag_p99_ms", "lag p99 ms"), ("duplicates", "dup fires"),
    ("node_cpu_pct", "nodes CPU %"), ("pg_cpu_pct", "PG CPU %"), ("note", "note"),
]


def workload(target: PgTarget, out: Path, *, quick: bool, nodes: list[int] | None,
             duration_s: int | None, warmup_s: int | None) -> None:
    from agentcron.store import Store
    from bench import agentcron_setup as setup

    counts = nodes or ([1, 2] if quick else [1, 2, 3])
    duration = duration_s or (3 if quick else 30)
    warmup = warmup_s if warmup_s is not None else (2 if quick else 5)
    offered = 250 * max(counts)  # more than the largest cluster can start
    url = sqlalchemy_url(ensure_database(target, "scaleout", fresh=True))
    store = Store(url)
    store.upgrade()
    setup.reset(store)
    setup.add_agent(store, "bench.probe:io_file_agent", max_concurrency=100_000)
    index = {tid: i for i, tid in enumerate(setup.insert_interval_triggers(store, offered))}
    results: list[dict[str, Any]] = []
    for k in counts:
        with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
            probe_dir = Path(tmp)
            cluster = Cluster(url, probe_dir, zombie_timeout_s=10.0, heartbeat_s=2.0,
                              extra=["--max-inflight", str(MAX_INFLIGHT)])
            report.console.print(f"[bold]scale-out[/bold] {k} node(s), {offered:,} "
                                 f"I/O-bound runs/s offered ...")
            quiet = wait_for_quiet(0 if quick else 120)
            from sqlalchemy import text

            with store.engine.begin() as conn:
                conn.execute(text("TRUNCATE runs, run_events, nodes"))
            anchor = float(int(time.time() + 4.0) + 1)
            setup.anchor_triggers(store, anchor)
            for i in range(k):
                cluster.start(f"scale-node-{i + 1}")
            start, end = anchor + warmup, anchor + warmup + duration
            try:
                meter = CpuMeter([], libpq_url(url), target.dbname("scaleout"))
                time.sleep(max(0.0, start - time.time()))
                meter.node_pids = cluster.pids()
                meter.start()
                time.sleep(max(0.0, end - time.time()))
                cpu = meter.stop()
            finally:
                cluster.stop_all()
            summary = summarise(read_probe(probe_dir, index), triggers=offered,
                                window_start=start, window_end=end)
            capacity = k * MAX_INFLIGHT / IO_WAIT_S
            result: dict[str, Any] = {
                "nodes": k, "triggers": offered, "runs_per_s": summary["fires_per_s"],
                "capacity_per_s": capacity,
                "of_capacity_pct": round(100 * summary["fires_per_s"] / capacity, 1),
                "lag_p99_ms": summary["lag_p99_ms"], "duplicates": _db_duplicates(url),
                **cpu, **quiet,
            }
            results.append(result)
            report.console.print(f"  {result['runs_per_s']} runs/s "
                                 f"({result['of_capacity_pct']} % of {capacity:g}), dup "
                                 f"{result['duplicates']}")
    store.close()
    one = results[0]["runs_per_s"] if results and results[0]["nodes"] == 1 else None
    for result in results:
        result["speedup"] = round(result["runs_per_s"] / one, 2) if one else None
    report.print_table("scale-out: an I/O-bound agent (0.5 s per run) on 1-3 nodes, "
                       f"--max-inflight {MAX_INFLIGHT}", COLUMNS, results)
    report.write_json(out, "scale-out", pg_url=target.admin_url(), results=results,
                      settings={"max_inflight": MAX_INFLIGHT, "io_wait_s": IO_WAIT_S,
                                "offered_per_s": offered, "node_counts": counts,
                                "duration_s": duration, "warmup_s": warmup},
                      notes=["capacity: nodes x max_inflight / 0.5 s; runs started/s counts "
                             "starts in the window (the queue is never empty: the offered "
                             "load is above every cluster's capacity)",
                             "lag grows with the queue by design here: what is measured is "
                             "how fully the nodes use their slots"])
