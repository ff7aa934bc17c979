"""``agentcron fire AGENT --wait`` and ``agentcron runs show ID --follow`` against a real
node process on SQLite: they wait for the run, print its output (and a command's stderr on
stderr), follow its progress as the agent reports it, and exit 0 on success, 1 on failure,
124 when ``--timeout`` passes first."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcron.services import Services
from agentcron.store import Store
from tests.conftest import Cli
from tests.support.helpers import wait_until
from tests.support.procs import REPO, ServeProcess

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src"),
                                         env.get("PYTHONPATH", "")])
    return env


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    """A node on a fresh SQLite file with three agents: one succeeds, one fails, one
    reports progress step by step."""
    url = f"sqlite:///{tmp_path}/follow.db"
    store = Store(url)
    store.upgrade()
    services = Services(store)
    script = "echo \"hello $(cat)\"; echo 'a note' >&2; exit ${EXIT:-0}"
    for name, code in (("ok", "0"), ("bad", "3")):
        services.add_agent(services.build_agent(
            name, "command", {"argv": ["/bin/sh", "-c", script], "env": {"EXIT": code}},
            max_attempts=1))
    services.add_agent(services.build_agent(
        "steps", "python", {"target": "tests.support.agents:stepped"}, timeout="2m"))
    proc = ServeProcess(url, "follow-node", tmp_path)
    try:
        proc.wait_for_log("node_started")
        yield url, store
        proc.stop()
    finally:
        proc.cleanup()
        store.close()


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentcron", "--db", url, *args],
                          capture_output=True, text=True, env=_env(), timeout=120)


def test_fire_wait_prints_the_output_and_exits_by_how_the_run_ended(
        node: tuple[str, Store]) -> None:
    url, _ = node
    ok = _cli(url, "fire", "ok", "--payload", '"world"', "--wait")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == 'hello "world"\n'  # the output alone, for scripts
    assert "a note" in ok.stderr  # the command's stderr goes to stderr

    bad = _cli(url, "fire", "bad", "--wait")
    assert bad.returncode == 1
    assert bad.stdout == "hello null\n"  # stdout is kept on failure too
    assert "failed: exit code 3: a note" in bad.stderr

    doc = _cli(url, "fire", "ok", "--wait", "--json")
    assert doc.returncode == 0 and '"status": "succeeded"' in doc.stdout


def test_runs_show_follow_prints_progress_as_it_changes(node: tuple[str, Store],
                                                        tmp_path: Path) -> None:
    url, store = node
    gates = [tmp_path / "gate1", tmp_path / "gate2"]
    run_id = store.fire_now("steps", {"gates": [str(g) for g in gates]})
    follower = subprocess.Popen(
        [sys.executable, "-m", "agentcron", "--db", url, "runs", "show", run_id, "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(follower.stdout.readline, "")
                                                          if follower.stdout else []))
    reader.start()
    try:
        wait_until(lambda: any("step 1 of 2" in line for line in lines),
                   message=lambda: f"step 1 in {lines}")
        gates[0].touch()
        wait_until(lambda: any("progress: step 2 of 2" in line for line in lines),
                   message=lambda: f"step 2 in {lines}")
        gates[1].touch()
        assert follower.wait(timeout=60) == 0, follower.stderr.read() if follower.stderr else ""
    finally:
        if follower.poll() is None:
            follower.kill()
        reader.join(timeout=10)
    assert lines[-1] == "all 2 steps done\n"
    assert any("running (attempt 1 on follow-node)" in line for line in lines)


def test_wait_gives_up_at_its_timeout_with_124_and_the_run_goes_on(cli: Cli) -> None:
    assert cli("agents", "add", "idle", "--command", "true").exit_code == 0
    result = cli("fire", "idle", "--wait", "--timeout", "1s")  # no node: it stays queued
    assert result.exit_code == 124
    assert "is still queued after 1s; it goes on" in result.stderr
    run_id = result.stderr.split("run ", 1)[1].split(" ", 1)[0]
    followed = cli("runs", "show", run_id, "--follow", "--timeout", "1s")
    assert followed.exit_code == 124 and "queued (attempt 0)" in followed.stdout
    bad = cli("fire", "idle", "--wait", "--timeout", "soon")
    assert bad.exit_code == 2 and "timeout" in bad.stderr
    alone = cli("fire", "idle", "--timeout", "1m")
    assert alone.exit_code == 2 and "only applies with --wait" in alone.stderr
