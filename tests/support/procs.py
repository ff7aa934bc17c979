"""Real ``agentcron serve`` processes for the multi-replica and fault tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.helpers import wait_until

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ChildProcess:
    """An ``agentcron`` process a test started (``proc``), logging to ``log_path``:
    signals, kill -9 and its log, shared by nodes and workers."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class ServeProcess(ChildProcess):
    """One node, started as its own OS process with the real console entry point."""

    def __init__(self, db_url: str, node_id: str, log_dir: Path, *, ledger: Path | None = None,
                 zombie_timeout: str = "3s", drain_timeout: str = "2s",
                 heartbeat_interval: str = "0.5s", poll_interval: str = "0.2s",
                 extra: list[str] | None = None, env: dict[str, str] | None = None,
                 api_port: int | None = None, api_host: str = "127.0.0.1",
                 wrapper: list[str] | None = None) -> None:
        """``api_port``: serve the HTTP API and dashboard on ``api_host`` at that port
        (default: ``--no-api``). ``wrapper``: a command that execs the node in place
        (``ip netns exec NAME``: the pid is the node's)."""
        self.node_id = node_id
        self.log_path = log_dir / f"{node_id}.log"
        api = ["--no-api"] if api_port is None else ["--host", api_host,
                                                     "--port", str(api_port)]
        args = [
            *(wrapper or []), sys.executable, "-m", "agentcron", "--db", db_url, "serve", *api,
            "--node-id", node_id, "--zombie-timeout", zombie_timeout,
            "--drain-timeout", drain_timeout, "--heartbeat-interval", heartbeat_interval,
            "--poll-interval", poll_interval, *(extra or []),
        ]
        child_env = dict(os.environ)
        child_env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO), str(REPO / "src"), child_env.get("PYTHONPATH", "")])
        child_env["AGENTCRON_LOG_LEVEL"] = "info"
        if ledger is not None:
            child_env["AGENTCRON_TEST_LEDGER"] = str(ledger)
        child_env.update(env or {})
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=child_env, cwd=log_dir)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the drain to end; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._log.close()

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        def logged() -> bool:
            if text in self.log():
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.node_id} exited ({self.proc.returncode}):\n"
                                     f"{self.log()[-3000:]}")
            return False

        wait_until(logged, timeout, lambda: f"{text!r} in the log of {self.node_id}:\n"
                   f"{self.log()[-3000:]}", interval=0.05)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()
