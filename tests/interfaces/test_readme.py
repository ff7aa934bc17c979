"""The README's first steps, run as written: its quick-start node, and the "Your first agent
in five minutes" walk-through, in a temporary folder, against real processes.

The commands are read from the README itself, by the markers before its code blocks, so the
README and this test cannot drift apart:

- ``<!-- quickstart -->``: the first install-and-run line. Installing is too heavy for a
  test; its last step (``.venv/bin/agentcron serve ...``) runs as written, with ``.venv``
  pointing at this test's environment and ``examples/`` copied next to it;
- ``<!-- first-agent:file NAME -->``: the block is saved as NAME;
- ``<!-- first-agent:run -->``: each line runs in bash, in turn, and must succeed;
  ``RUN_ID`` stands for the id the walk-through's ``fire`` printed;
- ``<!-- first-agent:serve -->``: the node, started in the background;
- ``<!-- python-api:file app.py -->``: the Python API example, run as ``python app.py``;
- ``<!-- follow-up:file watch.py -->``: the agent that schedules its own next check, synced
  and run by a real node against a loopback "deploy" that is not done yet.

The default port 8080 is taken from ``AGENTCRON_PORT`` (a free port), so the commands stay
as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.support.helpers import wait_until
from tests.support.procs import REPO, free_port

README = REPO / "README.md"
TOKEN = re.compile(r"act_[A-Za-z0-9_\-]{43}")
BLOCK = re.compile(r"<!-- (?P<marker>[^>]+?) -->\n+```[a-z]*\n(?P<body>.*?)```", re.S)


def blocks(prefix: str) -> list[tuple[str, str]]:
    """(marker, body) of every README code block whose marker starts with ``prefix``."""
    return [(m["marker"], m["body"]) for m in BLOCK.finditer(README.read_text())
            if m["marker"].startswith(prefix)]


def _env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AGENTCRON_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["AGENTCRON_PORT"] = str(port)
    return env


class Node:
    """A long-running README command, its output read as it comes."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.text = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.text += line.decode(errors="replace")

    def wait_running(self) -> str:
        def running() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.text}")
            return "running (dashboard and API at" in self.text

        wait_until(running, 60, lambda: f"the node to run:\n{self.text[-3000:]}")
        tokens = TOKEN.findall(self.text)
        assert len(tokens) == 1, self.text  # a fresh install prints its admin token
        return tokens[0]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def _sh(line: str, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(["bash", "-c", line], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
    return done.stdout


def _until_succeeded(line: str, cwd: Path, env: dict[str, str]) -> str:
    """Run ``runs show`` until the run it shows has succeeded, as a reader would."""

    def shown() -> str | None:
        out = _sh(line, cwd, env)
        return out if "succeeded" in out else None

    return wait_until(shown, 60, f"{line!r} to show a succeeded run")


def test_the_quick_start_node_runs_as_written(tmp_path: Path) -> None:
    [(_, body)] = blocks("quickstart")
    command = body.strip().split(" && ")[-1]
    assert command.startswith(".venv/bin/agentcron serve"), command
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    port = free_port()
    node = Node(command, tmp_path, _env(port))
    try:
        token = node.wait_running()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as api:
            agents = {a["name"] for a in api.get("/api/v1/agents").json()}
            assert {"hello", "uptime"} <= agents
            fired = api.post("/api/v1/agents/hello/fire")
            assert fired.status_code == 202
            run_id = fired.json()["id"]
            wait_until(lambda: api.get(f"/api/v1/runs/{run_id}").json()["status"]
                       == "succeeded", 60, "the example agent's run to succeed")
    finally:
        assert node.stop() == 0, node.text


def test_your_first_agent_in_five_minutes(tmp_path: Path) -> None:
    steps = blocks("first-agent:")
    assert [m.split()[0] for m, _ in steps] == [
        "first-agent:file", "first-agent:file", "first-agent:run", "first-agent:serve",
        "first-agent:run"]
    port = free_port()
    env = _env(port)
    node: Node | None = None
    run_id = ""
    try:
        for marker, body in steps:
            kind = marker.split()[0]
            if kind == "first-agent:file":
                (tmp_path / marker.split()[1]).write_text(body)
            elif kind == "first-agent:serve":
                node = Node(body.strip(), tmp_path, env)
                token = node.wait_running()
            else:
                for line in body.strip().splitlines():
                    if "RUN_ID" in line:
                        shown = _until_succeeded(line.replace("RUN_ID", run_id), tmp_path,
                                                 env)
                        assert "summary of my first run (attempt 1)" in shown
                        continue
                    out = _sh(line, tmp_path, env)
                    if " fire " in f" {line} ":
                        run_id = out.strip()
        assert node is not None and run_id
        assert (tmp_path / "agentcron.db").exists()
        # the run on the dashboard, signed in with the token the node printed
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as browser:
            signed = browser.post("/login", data={"token": token}, headers={"Origin": base})
            assert signed.status_code == 303
            page = browser.get(f"/runs/{run_id}")
            assert page.status_code == 200 and "summary of my first run" in page.text
            runs = browser.get("/runs")
            assert run_id[:8] in runs.text and "summarize" in runs.text
            triggers = browser.get("/triggers")
            assert "every-minute" in triggers.text
    finally:
        if node is not None:
            assert node.stop() == 0, node.text


def test_the_python_api_example_runs_as_written(tmp_path: Path) -> None:
    [(marker, body)] = blocks("python-api:file")
    assert marker.split()[1] == "app.py"
    (tmp_path / "app.py").write_text(body)
    port = free_port()
    node = Node(f"{sys.executable} app.py", tmp_path, _env(port))
    try:
        node.wait_running()
        assert f"http://127.0.0.1:{port}/" in node.text
    finally:
        assert node.stop() == 0, node.text
    listed = _sh("agentcron agents list --json", tmp_path, _env(port))
    assert '"target": "app:summarise"' in listed  # importable by other nodes, not __main__


class _Deploy(BaseHTTPRequestHandler):
    """A deploy that is still building."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "building"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_the_agent_that_schedules_its_own_next_check_runs_as_written(tmp_path: Path) -> None:
    [(marker, body)] = blocks("follow-up:file")
    assert marker.split()[1] == "watch.py"
    (tmp_path / "watch.py").write_text(body)
    deploy = ThreadingHTTPServer(("127.0.0.1", 0), _Deploy)
    threading.Thread(target=deploy.serve_forever, daemon=True).start()
    port = free_port()
    env = _env(port)
    _sh(f"{sys.executable} -c 'import watch; watch.app.sync()'", tmp_path, env)
    node = Node("agentcron serve", tmp_path, env)
    try:
        node.wait_running()
        url = f"http://127.0.0.1:{deploy.server_address[1]}/deploys/41"
        run_id = _sh(f"agentcron fire watch_deploy --payload '{json.dumps({'url': url})}'",
                     tmp_path, env).strip()
        shown = json.loads(_until_succeeded(f"agentcron runs show {run_id} --json",
                                            tmp_path, env))
        assert shown["output"] == "building"
        made = json.loads(_sh("agentcron triggers list --created-by run: --json",
                              tmp_path, env))
    finally:
        assert node.stop() == 0, node.text
        deploy.shutdown()
    assert [(t["agent"], t["created_by"], t["kind"]) for t in made] == [
        ("watch_deploy", f"run:{run_id}", "once")]
    assert made[0]["payload"] == {"url": url}
    ahead = datetime.fromisoformat(made[0]["next_fire_at"]) - datetime.fromisoformat(
        shown["finished_at"])
    assert timedelta(minutes=9) < ahead <= timedelta(minutes=10, seconds=5)

