"""remote: remote workers pulling runs over HTTP from a real ``agentcron serve``.

1. **wake-up latency**: one waiting claim (``wait`` 20 s) while a run of its remote agent is
   fired by hand (committed by this process; the node learns of it by ``NOTIFY``). Latency
   is from just before the fire's transaction to the claim's answer arriving here: what a
   worker waits for a run that becomes ready. Target: p99 <= 50 ms on PostgreSQL.
2. **throughput**: a queue of no-op runs drained by 1, 2 and 4 ``agentcron worker``
   processes (``--concurrency 32`` each), all on this machine with the node and
   PostgreSQL. Runs/s is the runs finished over the span from the first start to the last
   finish, read from the runs' own times. Target: >= 1,000 no-op runs/s.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.child import child_env
from bench.machine import REPO
from bench.meter import wait_for_quiet
from bench.pg import PgTarget, ensure_database, sqlalchemy_url

LATENCY_COLUMNS: list[report.Column] = [
    ("samples", "samples"), ("p50_ms", "wake-up p50 ms"), ("p99_ms", "wake-up p99 ms"),
    ("max_ms", "max ms"),
]
THROUGHPUT_COLUMNS: list[report.Column] = [
    ("workers", "worker processes"), ("concurrency", "runs at once each"), ("runs", "runs"),
    ("seconds", "seconds"), ("runs_per_s", "runs/s"), ("note", "note"),
]
CONCURRENCY = 32
WORKER_AGENT = "bench.remote_agent:noop"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """An ``agentcron serve`` with its API, and the tokens the workload speaks with."""

    def __init__(self, url: str, log_dir: Path) -> None:
        from agentcron.services import AgentInput, Services
        from agentcron.services.access import Access
        from agentcron.store import Store

        self.store = Store(url)
        self.store.upgrade()
        services = Services(self.store)
        for name in ("lat", "noop"):
            services.agents.save(services.agents.build(AgentInput(
                name=name, kind="remote", config={}, max_concurrency=1000, timeout="5m")))
        stamp = f"{os.getpid()}-{time.time_ns()}"
        self.token = Access(self.store).create_token(f"bench-remote-{stamp}", "worker",
                                                     agents=["lat", "noop"])[1]
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = (log_dir / "serve.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agentcron", "--db", url, "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--node-id", "bench-remote"],
            stdout=self._log, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the node did not start serving its API")
            time.sleep(0.1)

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()
        self.store.close()


async def _latencies(served: Served, samples: int) -> list[float]:
    headers = {"Authorization": f"Bearer {served.token}"}
    found: list[float] = []
    async with httpx.AsyncClient(base_url=served.base, headers=headers, timeout=60) as api:
        for _ in range(samples):
            claim = asyncio.create_task(api.post("/api/v1/workers/claim", json={
                "worker_id": "bench-latency", "agents": ["lat"], "max": 1, "wait": "20s"}))
            await asyncio.sleep(0.2)  # the claim is waiting on the node by now
            fired = time.perf_counter()
            await asyncio.to_thread(served.store.fire_now, "lat", None)
            answer = await claim
            arrived = time.perf_counter()
            [run] = answer.json()["runs"]
            found.append(arrived - fired)
            await api.post(f"/api/v1/runs/{run['id']}/complete",
                           json={"lease": run["lease"], "status": "succeeded"})
    return found


def latency(served: Served, samples: int) -> dict[str, Any]:
    values = sorted(asyncio.run(_latencies(served, samples)))

    def pct(q: float) -> float:
        return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 1)

    return {"samples": len(values), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
            "max_ms": round(1000 * values[-1], 1)}


def _queue(served: Served, runs: int) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: served.store.fire_now("noop", None), range(runs)))


def _span(served: Served) -> tuple[int, float]:
    from sqlalchemy import text

    with served.store.engine.connect() as conn:
        done, first, last = conn.execute(text(
            "SELECT count(*), min(started_at), max(finished_at) FROM runs "
            "WHERE agent = 'noop' AND status = 'succeeded'")).one()
    if not done:
        return 0, 0.0
    return int(done), (last - first).total_seconds()


def throughput(served: Served, workers: int, runs: int, log_dir: Path,
               timeout_s: float) -> dict[str, Any]:
    from sqlalchemy import text

    with served.store.engine.begin() as conn:
        conn.execute(text("DELETE FROM runs WHERE agent = 'noop'"))
    _queue(served, runs)
    env = {**child_env(), "AGENTCRON_TOKEN": served.token, "AGENTCRON_LOG_LEVEL": "warning"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "agentcron", "worker", "--url", served.base, "--agent", "noop",
         "--python", WORKER_AGENT, "--concurrency", str(CONCURRENCY),
         "--worker-id", f"bench-{workers}-{i}", "--wait", "2s"],
        stdout=(log_dir / f"worker-{workers}-{i}.log").open("wb"), stderr=subprocess.STDOUT,
        env=env, cwd=REPO) for i in range(workers)]
    note = ""
    try:
        deadline = time.monotonic() + timeout_s
        while (done := _span(served)[0]) < runs:
            if time.monotonic() > deadline:
                note = f"timed out with {done} of {runs} done"
                break
            time.sleep(0.5)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
    done, seconds = _span(served)
    return {"workers": workers, "concurrency": CONCURRENCY, "runs": done,
            "seconds": round(seconds, 2),
            "runs_per_s": round(done / seconds) if seconds > 0 else None, "note": note}


def workload(target: PgTarget, out: Path, *, quick: bool, nodes: list[int] | None = None
             ) -> None:
    samples = 10 if quick else 200
    runs = 300 if quick else 20_000
    counts = nodes or ([1, 2] if quick else [1, 2, 4])
    quiet = wait_for_quiet(0 if quick else 120)
    url = sqlalchemy_url(ensure_database(target, "remote", fresh=True))
    with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
        served = Served(url, Path(tmp))
        try:
            lat = latency(served, samples)
            report.print_table("remote: claim wake-up latency (PostgreSQL NOTIFY)",
                               LATENCY_COLUMNS, [lat])
            rows = []
            for k in counts:
                report.console.print(f"[bold]remote[/bold] {runs:,} no-op runs through {k} "
                                     "worker process(es) ...")
                rows.append(throughput(served, k, runs, Path(tmp),
                                       timeout_s=60 if quick else 600))
        finally:
            served.close()
    report.print_table("remote: no-op runs/s through remote workers", THROUGHPUT_COLUMNS, rows)
    report.write_json(out, "remote", pg_url=target.admin_url(),
                      results={"latency": lat, "throughput": rows},
                      settings={"latency_samples": samples, "runs": runs,
                                "worker_counts": counts, "concurrency": CONCURRENCY, **quiet},
                      notes=["latency: from just before the fire's transaction to the "
                             "claim's answer, one claim waiting; target p99 <= 50 ms",
                             "throughput: the node, PostgreSQL and every worker process "
                             "share this machine; target >= 1,000 no-op runs/s"])
