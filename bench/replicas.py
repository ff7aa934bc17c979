"""replicas: 1, 2 and 3 ``agentcron serve`` processes on one database at the 10k step; then
kill -9 one node and measure how long until its runs are taken over, and that no
(trigger, scheduled time) fired twice.

Each node is a real ``python -m agentcron serve --no-api`` process. The agent
(``bench.probe:file_agent``) appends one line per fire to a per-process file with O_APPEND,
so the lines a node wrote before its SIGKILL survive it.

Two kinds of "twice" are reported apart: a **duplicate fire** is a second run row or a
second first-execution of a (trigger, scheduled time) and must be 0; a **re-execution**
is the same run executed again after its node was killed before recording the outcome,
which is the at-least-once guarantee (README guarantee 2) working as designed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import report
from bench.child import child_env
from bench.counting import summarise
from bench.meter import CpuMeter, wait_for_quiet
from bench.pg import PgTarget, ensure_database, libpq_url, sqlalchemy_url

COLUMNS: list[report.Column] = [
    ("nodes", "nodes"), ("triggers", "N/s offered"), ("fires_per_s", "fires/s"),
    ("lag_p50_ms", "lag p50 ms"), ("lag_p99_ms", "lag p99 ms"), ("lag_max_ms", "lag max ms"),
    ("missed", "missed"), ("duplicates", "dup fires"), ("re_executions", "re-executions"),
    ("node_cpu_pct", "nodes CPU %"), ("pg_cpu_pct", "PG CPU %"),
    ("other_cpu_pct", "others %"), ("sustained", "kept up"), ("note", "note"),
]
KILL_OFFSET_S = 0.06
KILL_COLUMNS: list[report.Column] = [
    ("nodes", "nodes"), ("triggers", "N/s offered"), ("zombie_timeout_s", "zombie timeout s"),
    ("running_on_it_at_kill", "running on it at kill"), ("orphaned_runs", "runs orphaned"),
    ("detected_after_s", "lost after s"),
    ("taken_over_after_s", "all re-run after s"), ("firing_gap_ms", "worst lag after kill ms"),
    ("missed", "missed"), ("duplicates", "dup fires"), ("re_executions", "re-executions"),
    ("note", "note"),
]


class Cluster:
    def __init__(self, url: str, probe_dir: Path, *, zombie_timeout_s: float,
                 heartbeat_s: float, extra: list[str] | None = None) -> None:
        self.url = url
        self.probe_dir = probe_dir
        self.zombie_timeout_s = zombie_timeout_s
        self.heartbeat_s = heartbeat_s
        self.extra = extra or []  # more `serve` options, e.g. --max-inflight
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        env = child_env()
        env.update(BENCH_PROBE_DIR=str(self.probe_dir), AGENTCRON_LOG_LEVEL="warning")
        log = open(self.probe_dir / f"{name}.stderr", "wb")  # noqa: SIM115 - lives with the node
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentcron", "--db", self.url, "serve", "--no-api",
             "--node-id", name, "--zombie-timeout", f"{self.zombie_timeout_s:g}s",
             "--heartbeat-interval", f"{self.heartbeat_s:g}s", "--drain-timeout", "10s",
             *self.extra],
            stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True)
        self.procs[name] = proc
        return proc

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values() if p.poll() is None]

    def kill(self, name: str) -> float:
        proc = self.procs[name]
        at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return at

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def read_probe(probe_dir: Path, index: dict[str, int]) -> Iterator[tuple[int, float, float]]:
    for path in sorted(probe_dir.glob("probe-*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] in index:
                yield index[parts[0]], float(parts[1]), float(parts[2])


def _db_duplicates(url: str) -> int:
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT count(*) - count(DISTINCT (trigger_id, scheduled_for)) "
                           "FROM runs WHERE trigger_id IS NOT NULL").fetchone()
    return int(row[0]) if row else 0


def _busiest(url: str, names: list[str], until: float) -> tuple[str, int]:
    """The node with the most runs running now; polls (until ``until``) for one with any."""
    while True:
        with psycopg.connect(libpq_url(url)) as conn:
            rows = conn.execute("SELECT node_id, count(*) FROM runs WHERE status = 'running' "
                                "GROUP BY node_id ORDER BY 2 DESC").fetchall()
        busy = [(str(node), int(count)) for node, count in rows if node in names]
        if busy or time.time() >= until:
            return busy[0] if busy else (names[0], 0)
        time.sleep(0.02)


def _takeover(url: str, killed: str, kill_at: float) -> dict[str, Any]:
    """When the killed node's runs were found lost, and when the last of them ran again."""
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            "SELECT e.run_id, min(e.at), r.status, r.started_at, r.node_id "
            "FROM run_events e JOIN runs r ON r.id = e.run_id "
            "WHERE e.kind = 'lost' AND e.node_id = %s GROUP BY e.run_id, r.status, "
            "r.started_at, r.node_id", (killed,)).fetchall()
    if not rows:
        return {"orphaned_runs": 0}
    detected = min(row[1] for row in rows).timestamp() - kill_at
    rerun = [row[3].timestamp() - kill_at for row in rows
             if row[4] != killed and row[3] is not None]
    statuses = Counter(str(row[2]) for row in rows)
    return {
        "orphaned_runs": len(rows),
        "detected_after_s": round(detected, 1),
        "taken_over_after_s": round(max(rerun), 1) if rerun else None,
        "orphans_rerun_elsewhere": len(rerun),
        "orphan_statuses": dict(statuses),
    }


def workload(target: PgTarget, out: Path, *, quick: bool, nodes: list[int] | None,
             triggers: int | None, duration_s: int | None, warmup_s: int | None) -> None:
    from agentcron.store import Store
    from bench import agentcron_setup as setup

    counts = nodes or ([1, 2] if quick else [1, 2, 3])
    n = triggers or (200 if quick else 10_000)
    duration = duration_s or (3 if quick else 30)
    warmup = warmup_s if warmup_s is not None else (2 if quick else 5)
    grace = 1.0 if quick else 10.0
    zombie_s, heartbeat_s = (3.0, 0.5) if quick else (10.0, 2.0)
    lead_s = 4.0  # a serve process needs about 2 s to import and register
    url = sqlalchemy_url(ensure_database(target, "replicas", fresh=True))
    store = Store(url)
    store.upgrade()
    index: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    kill_results: list[dict[str, Any]] = []

    def prepare(triggers: int) -> None:
        if len(index) == triggers:
            return
        setup.reset(store)
        setup.add_agent(store, setup.TARGET)
        index.clear()
        index.update({tid: i for i, tid in
                      enumerate(setup.insert_interval_triggers(store, triggers))})

    def reset_runs() -> float:
        with store.engine.begin() as conn:
            from sqlalchemy import text

            conn.execute(text("TRUNCATE runs, run_events, nodes"))
        anchor = time.time() + lead_s
        anchor = float(int(anchor) + 1)
        setup.anchor_triggers(store, anchor)
        return anchor

    # The cluster sizes, then kill -9 in the largest cluster at the same load, and (full
    # runs) at 1,000 triggers too, a load this machine sustains, so that the takeover time
    # is not hidden behind a backlog.
    phases = [(k, n, False) for k in counts] + [(max(counts), n, True)]
    if not quick and n > 1000:
        phases.append((max(counts), 1000, True))
    for k, n_phase, kill in phases:
        prepare(n_phase)
        with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
            probe_dir = Path(tmp)
            cluster = Cluster(url, probe_dir, zombie_timeout_s=zombie_s, heartbeat_s=heartbeat_s)
            label = f"{k} nodes, kill -9 one" if kill else f"{k} nodes"
            report.console.print(f"[bold]replicas[/bold] {label}, N={n_phase:,} ...")
            quiet = wait_for_quiet(0 if quick else 120)
            anchor = reset_runs()
            names = [f"bench-node-{i + 1}" for i in range(k)]
            for name in names:
                cluster.start(name)
            try:
                start, end = anchor + warmup, anchor + warmup + duration
                if kill:
                    # measure from the kill to well past zombie timeout + sweep + backoff
                    # just after a whole second, while that second's fires are in flight:
                    # the node with the most runs in flight (as the replica test does)
                    time.sleep(max(0.0, start + KILL_OFFSET_S - time.time()))
                    victim, in_flight = _busiest(url, names, until=time.time() + 5)
                    kill_at = cluster.kill(victim)
                    end = kill_at + zombie_s * 2 + (4 if quick else 10)
                    start = float(int(kill_at))
                    time.sleep(max(0.0, end + grace - time.time()))
                    cpu: dict[str, float] = {}
                else:
                    meter = CpuMeter([], libpq_url(url), target.dbname("replicas"))
                    time.sleep(max(0.0, start - time.time()))
                    meter.node_pids = cluster.pids()
                    meter.start()
                    time.sleep(max(0.0, end - time.time()))
                    cpu = meter.stop()
                    time.sleep(max(0.0, end + grace - time.time()))
            finally:
                cluster.stop_all()
            records = list(read_probe(probe_dir, index))
            end_whole = float(int(end))
            result = summarise(records, triggers=n_phase, window_start=start,
                               window_end=end_whole)
            # The database holds one run row per (trigger, time) or more: more would be a
            # duplicate fire. Any other repeated execution of a (trigger, time) is the same
            # run executed again (at-least-once, after its node was killed).
            result["re_executions"] = result.pop("duplicates")
            result["db_duplicate_runs"] = _db_duplicates(url)
            result["duplicates"] = result["db_duplicate_runs"]
            result.update(cpu)
            result.update(nodes=k, triggers=n_phase, **quiet)
            if kill:
                lags_after = [started - scheduled for _, scheduled, started in records
                              if kill_at <= scheduled < kill_at + 5]
                result.update(_takeover(url, victim, kill_at))
                result.update(killed=victim, running_on_it_at_kill=in_flight)
                result.update(zombie_timeout_s=zombie_s, heartbeat_s=heartbeat_s,
                              firing_gap_ms=round(max(lags_after) * 1000, 1)
                              if lags_after else None,
                              window=f"{datetime.fromtimestamp(start, UTC):%H:%M:%S}+"
                                     f"{end_whole - start:.0f}s")
                kill_results.append(result)
            else:
                results.append(result)
            report.console.print(f"  {result['fires_per_s']} fires/s, p99 "
                                 f"{result['lag_p99_ms']} ms, missed {result['missed']}, "
                                 f"dup fires {result['duplicates']}, re-executions "
                                 f"{result['re_executions']}")
    store.close()
    report.print_table(f"replicas: agentcron serve processes, {n:,} triggers every second",
                       COLUMNS, results)
    report.print_table("replicas: kill -9 one node", KILL_COLUMNS, kill_results)
    report.write_json(out, "replicas", pg_url=target.admin_url(),
                      results={"scaling": results, "kill": kill_results},
                      settings={"triggers": n, "node_counts": counts, "duration_s": duration,
                                "warmup_s": warmup, "grace_s": grace,
                                "zombie_timeout_s": zombie_s, "heartbeat_s": heartbeat_s},
                      notes=[
        "each node is `python -m agentcron serve --no-api` with the zombie timeout and "
        "heartbeat shown; the agent appends a line per fire to a file",
        "dup fires: run rows sharing a (trigger_id, scheduled_for), counted in the "
        "database (a second fire of a scheduled time)",
        "re-executions: runs the killed node had started but not recorded, run again "
        "after takeover (at-least-once execution, guarantee 2)",
        "lost after: kill until the sweeper marked its runs lost; all re-run after: kill "
        "until the last of them started again on another node (includes the retry "
        "backoff); worst lag after kill: fires scheduled in the 5 s after the kill",
    ])
