"""bodies: what a hostile request body costs a node before it is refused.

A real ``agentcron serve`` process (API on, PostgreSQL) receives, one at a time, a large
POST to ``/api/v1/triggers`` without a token, the same with a valid write token (the body
cap must refuse it while it streams in), and a deeply nested JSON body with a token. While
each is sent, the node's resident memory is sampled from ``/proc`` and ``/healthz`` (served
by the same event loop as the scheduler) is timed every 50 ms. Reported per case: the status
answered, seconds to the answer, MB the client had sent when answered, the node's peak RSS
over its idle RSS, and /healthz latency p99 and max.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.child import child_env
from bench.pg import PgTarget, ensure_database, sqlalchemy_url

CHUNK = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Watch(threading.Thread):
    """Samples the node's RSS and times /healthz until stopped."""

    def __init__(self, pid: int, base: str) -> None:
        super().__init__(daemon=True)
        self.pid, self.base = pid, base
        self.rss: list[float] = []
        self.health_ms: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                self.rss.append(_rss_mb(self.pid))
                started = time.perf_counter()
                try:
                    client.get("/healthz")
                    self.health_ms.append((time.perf_counter() - started) * 1000)
                except httpx.HTTPError:
                    self.health_ms.append(float("nan"))
                self.stop.wait(0.05)


def _case(name: str, base: str, pid: int, headers: dict[str, str],
          body: Iterator[bytes] | bytes, idle_rss: float) -> dict[str, Any]:
    sent = [0]

    def counted(chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            sent[0] += len(chunk)
            yield chunk

    watch = _Watch(pid, base)
    watch.start()
    started = time.perf_counter()
    status: int | str
    try:
        content = counted(iter([body])) if isinstance(body, bytes) else counted(body)
        response = httpx.post(f"{base}/api/v1/triggers", content=content,
                              headers={"Content-Type": "application/json", **headers},
                              timeout=120)
        status = response.status_code
    except httpx.HTTPError as exc:  # the node closed the connection mid-body: an answer too
        status = f"closed ({type(exc).__name__})"
    answered_s = time.perf_counter() - started
    watch.stop.set()
    watch.join()
    health = [v for v in watch.health_ms if v == v]
    return {
        "case": name, "status": str(status), "answered_s": round(answered_s, 3),
        "sent_mb": round(sent[0] / CHUNK, 1),
        "rss_growth_mb": round(max(watch.rss) - idle_rss, 1) if watch.rss else None,
        "healthz_p99_ms": round(statistics.quantiles(health, n=100, method="inclusive")[98], 1)
        if len(health) >= 2 else (health[0] if health else None),
        "healthz_max_ms": round(max(health), 1) if health else None,
    }


def _stream(total_mb: int) -> Iterator[bytes]:
    yield b'{"agent": "a", "every": "1h", "payload": {"blob": "'
    for _ in range(total_mb):
        yield b"x" * CHUNK
    yield b'"}}'


def workload(target: PgTarget, out: Path, *, quick: bool) -> None:
    from agentcron.services.access import Access
    from agentcron.store import Store

    size_mb = 20 if quick else 170
    url = sqlalchemy_url(ensure_database(target, "bodies", fresh=True))
    store = Store(url)
    store.upgrade()
    _, token = Access(store).create_token("bench-bodies", "write")
    store.close()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "serve.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentcron", "--db", url, "serve", "--port", str(port),
             "--node-id", "bench-bodies"],
            stdout=log, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True)
        results: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("serve did not get ready:\n"
                                       + (Path(tmp) / "serve.log").read_text()[-2000:])
                time.sleep(0.1)
            idle = _rss_mb(proc.pid)
            auth = {"Authorization": f"Bearer {token}"}
            deep = b'{"agent": "a", "every": "1h", "payload": ' + b"[" * 100_000 \
                + b"]" * 100_000 + b"}"
            for name, headers, body in (
                    (f"{size_mb} MB, no token", {}, _stream(size_mb)),
                    (f"{size_mb} MB, write token", auth, _stream(size_mb)),
                    ("nested 100,000 deep, write token", auth, deep)):
                results.append({**_case(name, base, proc.pid, headers, body, idle),
                                "idle_rss_mb": round(idle, 1)})
            alive = proc.poll() is None
        except Exception as exc:
            results.append({"case": "setup", "error": str(exc)[:500]})
            alive = False
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    if not alive and not any(r.get("error") for r in results):
        results.append({"case": "node", "error": "the node died during the workload"})
    report.print_table(
        "bodies: hostile request bodies against a running node",
        [("case", "case"), ("status", "answer"), ("answered_s", "answered after s"),
         ("sent_mb", "MB sent"), ("rss_growth_mb", "node RSS growth MB"),
         ("healthz_p99_ms", "/healthz p99 ms"), ("healthz_max_ms", "/healthz max ms")],
        results)
    report.write_json(out, "bodies", pg_url=url, settings={"size_mb": size_mb},
                      results=results,
                      notes=["the node refuses before reading: the client may still be "
                             "sending when the answer comes, so MB sent is what the socket "
                             "took, not what the node read"])
