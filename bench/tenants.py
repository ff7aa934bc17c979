"""tenants: one agent serving many tenants, with and without a concurrency key.

Tenant A queues 10,000 runs of one agent (``--quick``: 1,000); a real ``agentcron serve``
node starts on them; once it is busy, tenant B queues 10 runs, one every 0.25 s. The agent
(``bench.tenants:nap``) sleeps 50 ms, as an agent waiting on I/O; it has
``max_concurrency`` 8. Two modes, each on a fresh database:

- **keys**: ``concurrency_key = "{{ tenant }}"``, ``max_per_key`` 8: claims take keys in
  turn, so B's runs start within a round of A's, whatever A's backlog;
- **oldest first**: no key (the behaviour before keys): B's runs wait behind A's backlog.

Reported: B's start lag (started - queued) p50 / p99 / max, and A's throughput (A's runs
finished per second from A's first start until B's last run finished). Target: with
keys, B's p99 lag is bounded by a few run lengths (under 1 s) and A keeps the agent busy
(throughput near ``max_concurrency / 50 ms`` = 160/s less the node's overhead).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.child import child_env
from bench.machine import REPO
from bench.meter import wait_for_quiet
from bench.pg import PgTarget, ensure_database, sqlalchemy_url

NAP_S = 0.05
MAX_CONCURRENCY = 8
B_RUNS = 10
B_EVERY_S = 0.25
COLUMNS: list[report.Column] = [
    ("mode", "mode"), ("a_runs", "A queued"), ("b_runs", "B queued"),
    ("b_lag_p50_ms", "B start lag p50 ms"), ("b_lag_p99_ms", "B lag p99 ms"),
    ("b_lag_max_ms", "B lag max ms"), ("a_per_s", "A runs/s"), ("seconds", "window s"),
    ("note", "note"),
]


def nap(ctx: Any) -> str:
    """The benchmark's agent: waits ``NAP_S`` without using the CPU."""
    time.sleep(NAP_S)
    return "ok"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _start_node(url: str) -> tuple[subprocess.Popen[bytes], Any]:
    log = (Path(tempfile.gettempdir()) / f"bench-tenants-{os.getpid()}.log").open("wb")
    # No API: the benchmark reads the store itself, and needs no port.
    proc = subprocess.Popen([sys.executable, "-m", "agentcron", "--db", url, "serve",
                             "--no-api"],
                            stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)
    return proc, log


def one_mode(url: str, mode: str, a_runs: int, timeout_s: float) -> dict[str, Any]:
    from agentcron.models import RunStatus
    from agentcron.services import AgentInput, Services
    from agentcron.store import RunFilter, Store

    store = Store(url)
    store.upgrade()
    services = Services(store)
    keyed = mode == "keys"
    services.agents.save(services.agents.build(AgentInput(
        name="inbox", kind="python", config={"target": "bench.tenants:nap"},
        max_concurrency=MAX_CONCURRENCY, timeout="1m",
        concurrency_key="{{ tenant }}" if keyed else None,
        max_per_key=MAX_CONCURRENCY if keyed else None)))
    for i in range(a_runs):
        store.fire_now("inbox", {"tenant": "A", "i": i})
    proc, log = _start_node(url)
    started = time.time()
    note = ""
    try:
        # Busy: A's runs are running before B queues anything.
        deadline = time.monotonic() + 60
        while not store.list_runs(RunFilter(agent="inbox", status=RunStatus.RUNNING), limit=1):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the node did not start running A's runs")
            time.sleep(0.05)
        b_ids = []
        for i in range(B_RUNS):
            b_ids.append(store.fire_now("inbox", {"tenant": "B", "i": i}))
            time.sleep(B_EVERY_S)
        deadline = time.monotonic() + timeout_s
        while True:
            b_runs = [store.get_run(run_id) for run_id in b_ids]
            if all(r.status.terminal for r in b_runs):
                break
            if time.monotonic() > deadline:
                note = f"B not done after {timeout_s:.0f} s"
                break
            time.sleep(0.1)
        ended = time.time()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    lags = [(r.started_at - r.queued_at).total_seconds() for r in b_runs
            if r.started_at is not None]
    a_done = [r for r in store.list_runs(RunFilter(agent="inbox"), limit=a_runs + 100)
              if isinstance(r.payload, dict) and r.payload.get("tenant") == "A"
              and r.started_at is not None and r.finished_at is not None
              and r.finished_at.timestamp() <= ended]
    store.close()
    # From A's first start (not the node's start-up) to B's last finish.
    first = min((r.started_at.timestamp() for r in a_done if r.started_at), default=started)
    finished_a = a_done
    window = ended - first
    return {"mode": mode, "a_runs": a_runs, "b_runs": B_RUNS,
            "b_lag_p50_ms": round(_pct(lags, 0.5) * 1000) if lags else None,
            "b_lag_p99_ms": round(_pct(lags, 0.99) * 1000) if lags else None,
            "b_lag_max_ms": round(max(lags) * 1000) if lags else None,
            "a_per_s": round(len(finished_a) / window, 1), "seconds": round(window, 1),
            "note": note or (f"{B_RUNS - len(lags)} of B never started" if len(lags) < B_RUNS
                             else "")}


def workload(target: PgTarget, out: Path, *, quick: bool) -> None:
    a_runs = 1000 if quick else 10_000
    timeout_s = 60.0 if quick else 300.0
    quiet = wait_for_quiet(0 if quick else 120)
    rows = []
    for mode in ("keys", "oldest first"):
        url = sqlalchemy_url(ensure_database(target, f"tenants_{mode.split()[0]}", fresh=True))
        try:
            rows.append(one_mode(url, mode, a_runs, timeout_s))
        except Exception as exc:  # reported as a failed step; the other mode still runs
            rows.append({"mode": mode, "a_runs": a_runs, "error": f"{type(exc).__name__}: "
                                                                    f"{exc}"})
    report.print_table("tenants: B's 10 runs behind A's backlog", COLUMNS, rows)
    report.write_json(out, "tenants", pg_url=target.admin_url(), results={"modes": rows},
                      settings={"a_runs": a_runs, "b_runs": B_RUNS, "nap_s": NAP_S,
                                "max_concurrency": MAX_CONCURRENCY, **quiet},
                      notes=["one `agentcron serve` node on this machine; the agent sleeps "
                             f"{NAP_S * 1000:.0f} ms; B queues one run every {B_EVERY_S} s "
                             "once A's runs are running",
                             "lag: a B run's started_at - queued_at (the store's clock)",
                             "A runs/s: A's runs finished from A's first start until B's "
                             "last run finished"])
