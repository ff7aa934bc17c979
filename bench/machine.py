"""What a result was measured on: the machine, PostgreSQL, the code and package versions."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.pg import server_info

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ["agentcron", "SQLAlchemy", "psycopg", "APScheduler", "procrastinate", "pgqueuer",
            "croniter"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def code_version() -> dict[str, Any]:
    """The commit, and whether src/ differed from it (others edit the tree concurrently)."""
    return {"commit": _git("rev-parse", "--short", "HEAD") or "unknown",
            "src_modified": bool(_git("status", "--porcelain", "--", "src"))}


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def describe(pg_url: str) -> dict[str, Any]:
    memory = psutil.virtual_memory()
    try:
        pg: dict[str, Any] = server_info(pg_url)
    except Exception as exc:  # the table still gets written, saying why
        pg = {"error": str(exc)}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu_model": _cpu_model(),
        "memory_gb": round(memory.total / 2**30, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "postgresql": pg,
        "code": code_version(),
        "versions": versions(),
    }
