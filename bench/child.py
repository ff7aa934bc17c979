"""Every system runs in its own process, so that imports, threads and event loops do not
contaminate each other: ``python -m bench.child SYSTEM PARAMS_JSON`` runs one step and
prints its figures as one JSON line after ``RESULT_MARKER`` on stdout.

The parent side (``run_child``) starts it, enforces a deadline, and turns a crash into a
row that says so instead of losing the step.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import REPO

RESULT_MARKER = "BENCH_RESULT "
RUNNERS = {
    "agentcron": "bench.agentcron_runner",
    "apscheduler": "bench.peers.apscheduler_runner",
    "procrastinate": "bench.peers.procrastinate_runner",
    "pgqueuer": "bench.peers.pgqueuer_runner",
    "pgqueuer-queue": "bench.peers.pgqueuer_runner",
    "scale": "bench.scale",
    "statements": "bench.statements",
}
LOG_DIR = Path(tempfile.gettempdir()) / "agentcron-bench-logs"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / "src"), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_child(system: str, params: dict[str, Any], *, timeout_s: float,
              label: str) -> dict[str, Any]:
    """Run one step of ``system`` in a fresh process; its result, or ``{"error": ...}``."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"{label}.log"
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.child", system, json.dumps(params)],
            stdout=subprocess.PIPE, stderr=log, text=True, env=child_env(), cwd=REPO,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return {"error": f"timed out after {timeout_s:.0f}s (log: {log_path})"}
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_MARKER):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARKER):])
            result.setdefault("wall_s", round(time.monotonic() - started, 1))
            return result
    tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
    return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)[-400:]
                     + f" (log: {log_path})"}


def main(argv: list[str]) -> None:
    system, raw = argv
    module = importlib.import_module(RUNNERS[system])
    result = module.run_step(json.loads(raw))
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # The figures are out: skip interpreter teardown, which would wait for a peer's
    # leftover pool threads (APScheduler's backlog) or connections.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
