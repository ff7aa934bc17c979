"""The benchmark harness still runs: a tiny fire-rate step (50 triggers for 3 s) writes its
JSON with the expected keys. Nothing about speed is asserted (shared, noisy machines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
STEP_KEYS = {
    "system", "triggers", "fires_per_s", "lag_p50_ms", "lag_p99_ms", "lag_max_ms", "missed",
    "duplicates", "node_cpu_pct", "pg_cpu_pct", "expected", "ran", "sustained",
}


def test_fire_rate_quick_writes_its_json(pg_url: str, tmp_path: Path) -> None:
    pytest.importorskip("psutil", reason="the bench extra is not installed")
    pytest.importorskip("matplotlib", reason="the bench extra is not installed")
    base = pg_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    prefix = f"bench_smoke_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "BENCH_PG": base,
           "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench", "fire-rate", "--quick", "--ladder", "50",
             "--duration", "3", "--out", str(tmp_path), "--db-prefix", prefix],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    finally:
        admin = create_engine(base.replace("postgresql://", "postgresql+psycopg://") + "/postgres",
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{prefix}_agentcron" WITH (FORCE)'))
        admin.dispose()
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    payload = json.loads((tmp_path / "fire-rate.json").read_text())
    assert {"workload", "machine", "settings", "results", "notes"} <= payload.keys()
    assert {"cores", "memory_gb", "postgresql", "date"} <= payload["machine"].keys()
    assert payload["machine"]["postgresql"].get("server_version")
    [step] = payload["results"]
    assert "error" not in step, step.get("error")
    assert step.keys() >= STEP_KEYS
    assert step["system"] == "agentcron" and step["triggers"] == 50
    assert (tmp_path / "fire_lag.png").stat().st_size > 0
    # The README's tables come from that JSON, between the markers, and nowhere else.
    from bench import markdown

    table = markdown.render(tmp_path)
    assert "| agentcron | 50 |" in table and "**Targets** (issue 3)" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{markdown.BEGIN}\nstale\n{markdown.END}\nafter\n")
    markdown.write(tmp_path, readme)
    assert readme.read_text() == f"before\n{markdown.BEGIN}\n{table}{markdown.END}\nafter\n"
