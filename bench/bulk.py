"""bulk: creating many triggers at once.

1. **file sync**: an agents file of 10,000 triggers (10 agents of 1,000, every one an
   interval trigger) synced into an empty database (all created), then again unchanged
   (all matched, nothing written), on PostgreSQL and on SQLite, timed from reading the
   file to the sync's commit. Target: under 2 s for 10,000.
2. **API batches**: a real ``agentcron serve`` process with its HTTP API; triggers are
   created through ``POST /api/v1/triggers/batch``, 1,000 per request, from two client
   threads (one agent per 1,000 triggers, as the default per-agent limit allows). Target:
   1,000,000 in under 2 minutes. ``--quick`` creates 5,000.

The triggers fire hourly, so the node does not start firing them while they are created.
"""

from __future__ import annotations

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

SYNC_COLUMNS: list[report.Column] = [
    ("backend", "backend"), ("triggers", "triggers"), ("what", "sync"),
    ("seconds", "seconds"), ("triggers_per_s", "triggers/s"), ("statements", "statements"),
    ("report", "report"),
]
API_COLUMNS: list[report.Column] = [
    ("triggers", "triggers"), ("batch", "per request"), ("clients", "clients"),
    ("seconds", "seconds"), ("triggers_per_s", "triggers/s"),
    ("request_ms_p50", "ms/request p50"), ("request_ms_max", "ms/request max"),
]
PER_AGENT = 1000
BATCH = 1000


def agents_file(path: Path, triggers: int) -> Path:
    lines = []
    for a in range(max(1, triggers // PER_AGENT)):
        lines.append(f'[agents.bulk{a}]\npython = "agentcron.examples:noop"\n')
        lines += [f'[[agents.bulk{a}.triggers]]\nname = "t{i}"\nevery = "1h"\n'
                  for i in range(min(PER_AGENT, triggers))]
    path.write_text("\n".join(lines))
    return path


def file_sync(url: str, backend: str, triggers: int) -> list[dict[str, Any]]:
    from agentcron.services import Services
    from agentcron.services.agents_file import load_agents_file
    from agentcron.store import Store

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = agents_file(Path(tmp) / "agents.toml", triggers)
        store = Store(url)
        try:
            store.upgrade()
            for what in ("create", "unchanged"):
                started = time.perf_counter()
                with store.count_statements() as seen:
                    result = Services(store).sync_agents_file(load_agents_file(path))
                seconds = time.perf_counter() - started
                rows.append({"backend": backend, "triggers": triggers, "what": what,
                             "seconds": round(seconds, 2),
                             "triggers_per_s": round(triggers / seconds),
                             "statements": len(seen),
                             "report": ", ".join(f"{k} {v}" for k, v in result.items())})
        finally:
            store.close()
    return rows


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def api_batches(url: str, triggers: int, clients: int = 2) -> dict[str, Any]:
    from agentcron.services import AgentInput, Services
    from agentcron.services.access import Access
    from agentcron.store import Store

    store = Store(url)
    store.upgrade()
    agents = max(1, -(-triggers // PER_AGENT))
    services = Services(store)
    for a in range(agents):
        services.agents.save(services.agents.build(AgentInput(
            name=f"api{a}", kind="python", config={"target": "agentcron.examples:noop"})))
    _, token = Access(store).create_token(f"bulk-{os.getpid()}-{time.time_ns()}", "write")
    store.close()
    port = _free_port()
    log = (Path(tempfile.gettempdir()) / f"bench-bulk-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentcron", "--db", url, "serve", "--host", "127.0.0.1",
         "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=child_env(),
        cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    bodies = []
    for start in range(0, triggers, BATCH):
        n = min(BATCH, triggers - start)
        bodies.append({"triggers": [
            {"agent": f"api{(start + i) // PER_AGENT}", "every": "1h",
             "name": f"b{start + i}"} for i in range(n)]})
    try:
        with httpx.Client(base_url=base, timeout=60.0,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the node did not start serving its API")
                time.sleep(0.1)

            def send(body: dict[str, Any]) -> float:
                sent = time.perf_counter()
                response = client.post("/api/v1/triggers/batch", json=body)
                if response.status_code != 201:
                    raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
                return time.perf_counter() - sent

            started = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                latencies = sorted(pool.map(send, bodies))
            seconds = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return {"triggers": triggers, "batch": BATCH, "clients": clients,
            "seconds": round(seconds, 2), "triggers_per_s": round(triggers / seconds),
            "request_ms_p50": round(latencies[len(latencies) // 2] * 1000),
            "request_ms_max": round(latencies[-1] * 1000)}


def workload(target: PgTarget, out: Path, *, quick: bool) -> None:
    sync_triggers = 2000 if quick else 10_000
    api_triggers = 5000 if quick else 1_000_000
    quiet = wait_for_quiet(0 if quick else 120)
    sync_rows = file_sync(sqlalchemy_url(ensure_database(target, "bulk_sync", fresh=True)),
                          "postgresql", sync_triggers)
    with tempfile.TemporaryDirectory() as tmp:
        sync_rows += file_sync(f"sqlite:///{tmp}/bulk.db", "sqlite", sync_triggers)
    report.print_table("bulk: agents file sync", SYNC_COLUMNS, sync_rows)
    try:
        api = api_batches(sqlalchemy_url(ensure_database(target, "bulk_api", fresh=True)),
                          api_triggers)
    except Exception as exc:  # reported as a failed step, the sync figures still written
        api = {"triggers": api_triggers, "error": f"{type(exc).__name__}: {exc}"}
    report.print_table("bulk: POST /api/v1/triggers/batch", API_COLUMNS, [api])
    report.write_json(out, "bulk", pg_url=target.admin_url(), results={
        "file_sync": sync_rows, "api": api},
        settings={"sync_triggers": sync_triggers, "api_triggers": api_triggers,
                  "per_agent": PER_AGENT, "batch": BATCH, **quiet},
        notes=["file sync: timed from reading the TOML file to the sync's commit; "
               "'unchanged' is the same file again (every trigger matched, none written)",
               "api: a real `agentcron serve` process with its API; the clients and the "
               "node share this machine's cores",
               "targets: 10,000 triggers in a file sync under 2 s; 1,000,000 through the "
               "API under 120 s (full run only)"])
