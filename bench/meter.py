"""CPU over a measured window: the node process(es), PostgreSQL, the whole machine.

100 % is one core. PostgreSQL is measured two ways, because other engineers' tests share
the server: ``pg_cpu_pct`` sums every postgres process (the server as a whole, background
writers included), ``pg_bench_cpu_pct`` only the backends connected to the benchmark's
own database. ``other_cpu_pct`` is what the rest of the machine used in the same window:
a high figure means the step was measured on a busy machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psutil

from bench.pg import backend_pids


def _cpu(proc: psutil.Process) -> float:
    try:
        times = proc.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return float("nan")
    return float(times.user + times.system)


def _postgres_processes() -> dict[int, psutil.Process]:
    found = {}
    for proc in psutil.process_iter(["name"]):
        if proc.info.get("name") in ("postgres", "postmaster"):
            found[proc.pid] = proc
    return found


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + getattr(times, "irq", 0.0)
                 + getattr(times, "softirq", 0.0) + getattr(times, "steal", 0.0))


@dataclass
class CpuMeter:
    node_pids: list[int]
    pg_url: str | None = None
    bench_db: str | None = None
    _t0: float = 0.0
    _node0: dict[int, float] = field(default_factory=dict)
    _pg0: dict[int, float] = field(default_factory=dict)
    _procs: dict[int, psutil.Process] = field(default_factory=dict)
    _bench0: set[int] = field(default_factory=set)
    _machine0: float = 0.0

    def _bench_pids(self) -> set[int]:
        if not (self.pg_url and self.bench_db):
            return set()
        try:
            return set(backend_pids(self.pg_url, self.bench_db))
        except Exception:
            return set()

    def start(self) -> None:
        self._bench0 = self._bench_pids()
        self._procs = {pid: psutil.Process(pid) for pid in self.node_pids
                       if psutil.pid_exists(pid)}
        self._procs.update(_postgres_processes())
        self._node0 = {pid: _cpu(self._procs[pid]) for pid in self.node_pids
                       if pid in self._procs}
        self._pg0 = {pid: _cpu(p) for pid, p in self._procs.items() if pid not in self._node0}
        self._machine0 = _machine_busy()
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        elapsed = max(1e-6, time.monotonic() - self._t0)
        machine = _machine_busy() - self._machine0
        node = sum(_cpu(self._procs[pid]) - cpu0 for pid, cpu0 in self._node0.items())
        now_pg = _postgres_processes()
        pg_total = 0.0
        pg_bench = 0.0
        bench = self._bench0 | self._bench_pids()
        for pid, proc in now_pg.items():
            used = _cpu(proc) - self._pg0.get(pid, 0.0)
            if used != used:  # nan: gone meanwhile
                continue
            pg_total += used
            if pid in bench:
                pg_bench += used
        pct = 100.0 / elapsed
        return {
            "node_cpu_pct": round(node * pct, 1),
            "pg_cpu_pct": round(pg_total * pct, 1),
            "pg_bench_cpu_pct": round(pg_bench * pct, 1),
            "machine_cpu_pct": round(machine * pct, 1),
            "other_cpu_pct": round(max(0.0, machine - node - pg_total) * pct, 1),
        }


def wait_for_quiet(max_wait_s: float, busy_below_pct: float = 25.0,
                   sample_s: float = 2.0) -> dict[str, float]:
    """Wait until the machine (all cores, 0-100 %) is less than ``busy_below_pct`` busy
    between our steps, so a step is not measured while other people's test suites hold the
    CPU; give up after ``max_wait_s`` and measure anyway (the result says how busy it was)."""
    started = time.monotonic()
    busy = float(psutil.cpu_percent(interval=sample_s if max_wait_s > 0 else 0.2))
    while busy >= busy_below_pct and time.monotonic() - started < max_wait_s:
        busy = float(psutil.cpu_percent(interval=sample_s))
    return {"quiet_wait_s": round(time.monotonic() - started, 1),
            "busy_before_pct": round(busy, 1)}
