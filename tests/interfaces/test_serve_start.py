"""Starting and stopping ``agentcron serve`` as a person does: the first admin token is
never lost to a start that fails, every start says how to get in, and a node whose output
pipe lost its reader still drains and exits on a signal. Real processes on SQLite files."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.support.helpers import wait_until
from tests.support.procs import REPO, free_port

TOKEN = re.compile(r"act_[A-Za-z0-9_\-]{43}")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env["AGENTCRON_LOG_LEVEL"] = "info"
    env.pop("AGENTCRON_DATABASE_URL", None)
    return env


def _serve_args(db: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "agentcron", "--db", db, "serve", "--drain-timeout", "2s",
            "--poll-interval", "0.2s", *extra]


class Output:
    """Everything a process writes on one pipe, read by a thread as it comes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.text = ""
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.text += line.decode(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60.0) -> str:
        def seen() -> bool:
            if needle in self.text:
                return True
            if self.proc.poll() is not None:
                self._thread.join(5)
                return needle in self.text or _exited(self.proc, self.text)
            return False

        wait_until(seen, timeout, lambda: f"{needle!r} in:\n{self.text[-3000:]}",
                   interval=0.05)
        return self.text


def _exited(proc: subprocess.Popen[bytes], text: str) -> bool:
    raise AssertionError(f"exited with {proc.returncode}:\n{text[-3000:]}")


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Output]:
    proc = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=_env(), cwd=tmp_path)
    return proc, Output(proc)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, env=_env(), cwd=tmp_path,
                          timeout=120)


def _token_works(port: int, token: str) -> bool:
    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/agents",
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return answer.status_code == 200


def _serve_until_up(tmp_path: Path, db: str, port: int, *extra: str) -> str:
    """Start a node on ``port``, wait until it runs, stop it; returns what it printed."""
    proc, out = _start(tmp_path, *_serve_args(db, "--port", str(port), *extra))
    try:
        out.wait_for("running (dashboard")
        tokens = TOKEN.findall(out.text)
        if tokens:
            assert _token_works(port, tokens[0])
    finally:
        assert _stop(proc) == 0
    return out.text


def test_a_port_clash_makes_no_token_and_the_next_start_prints_one(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ac.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = _run(tmp_path, *_serve_args(db, "--port", str(port)))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "cannot serve the API" in failed.stderr
    assert not TOKEN.search(failed.stdout + failed.stderr)
    listed = _run(tmp_path, sys.executable, "-m", "agentcron", "--db", db, "tokens", "list",
                  "--json")
    assert listed.returncode == 0 and '"local-admin"' not in listed.stdout, listed.stdout

    text = _serve_until_up(tmp_path, db, free_port())
    assert len(TOKEN.findall(text)) == 1, text  # shown, and it signs in (checked above)


def test_a_typo_in_the_agents_file_makes_no_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ac.db'}"
    config = tmp_path / "agents.toml"
    config.write_text('[agents.hi]\ncommand = "echo hi"\ntimout = "1m"\n')
    failed = _run(tmp_path, *_serve_args(db, "--port", str(free_port()), "--config",
                                         str(config)))
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert "agents.hi.timout" in failed.stderr and "did you mean 'timeout'" in failed.stderr
    assert not TOKEN.search(failed.stdout + failed.stderr)

    config.write_text('[agents.hi]\ncommand = "echo hi"\ntimeout = "1m"\n')
    text = _serve_until_up(tmp_path, db, free_port(), "--config", str(config))
    assert len(TOKEN.findall(text)) == 1, text


def test_later_starts_say_how_to_get_in(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ac.db'}"
    first = _serve_until_up(tmp_path, db, free_port())
    assert len(TOKEN.findall(first)) == 1
    again = _serve_until_up(tmp_path, db, free_port())
    assert not TOKEN.search(again)
    assert "agentcron tokens revoke local-admin" in again
    assert "agentcron tokens create" in again


def test_a_token_made_but_never_shown_is_pointed_out(tmp_path: Path) -> None:
    """A local-admin token made by a start whose output nobody saw (or an older version)."""
    db = f"sqlite:///{tmp_path / 'ac.db'}"
    made = _run(tmp_path, sys.executable, "-m", "agentcron", "--db", db, "tokens", "create",
                "local-admin", "--scope", "admin")
    assert made.returncode == 0, made.stderr
    text = _serve_until_up(tmp_path, db, free_port())
    assert "'local-admin' exists but was never used" in text
    assert "`agentcron tokens revoke local-admin`, then `agentcron tokens create" in text


def test_a_node_whose_output_reader_died_drains_and_exits(tmp_path: Path) -> None:
    """``agentcron serve 2>&1 | tee log``, then ``tee`` dies, then Ctrl-C / SIGTERM."""
    db = f"sqlite:///{tmp_path / 'ac.db'}"
    config = tmp_path / "agents.toml"
    config.write_text('[agents.tick]\ncommand = ["true"]\n'
                      '[[agents.tick.triggers]]\nevery = "1s"\noverlap = "allow"\n')
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(_serve_args(db, "--no-api", "--config", str(config)),
                            stdout=write_end, stderr=write_end, env=_env(), cwd=tmp_path)
    os.close(write_end)
    try:
        seen = b""
        while b"running (no HTTP API" not in seen:
            chunk = os.read(read_end, 65536)
            assert chunk, f"exited with {proc.wait()}: {seen.decode(errors='replace')}"
            seen += chunk
    finally:
        os.close(read_end)  # the reader is gone: every later write gets EPIPE
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(timeout=60)  # drain timeout 2s; generous for a busy machine
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
