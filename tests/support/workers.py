"""Real ``agentcron worker`` processes (the proxies tests put in their way are in
``tests/support/proxies.py``)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.helpers import wait_until
from tests.support.procs import REPO, ChildProcess


class WorkerProcess(ChildProcess):
    """One ``agentcron worker``, started with the real console entry point."""

    def __init__(self, url: str, token: str, agent: str, worker_id: str, log_dir: Path, *,
                 python: str = "tests.support.remote_agents:sleeper",
                 command: str | None = None, concurrency: int = 1,
                 heartbeat_interval: str = "0.5s", wait: str = "2s",
                 drain_timeout: str = "2s", extra_env: dict[str, str] | None = None,
                 wrapper: list[str] | None = None) -> None:
        """``wrapper``: a command that execs the worker in place (``ip netns exec NAME``)."""
        self.worker_id = worker_id
        self.log_path = log_dir / f"worker-{worker_id}.log"
        run = ["--command", command] if command is not None else ["--python", python]
        args = [*(wrapper or []), sys.executable, "-m", "agentcron", "worker", "--url", url, "--agent", agent,
                *run, "--worker-id", worker_id, "--concurrency", str(concurrency),
                "--heartbeat-interval", heartbeat_interval, "--wait", wait,
                "--drain-timeout", drain_timeout]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src"),
                                             env.get("PYTHONPATH", "")])
        env["AGENTCRON_TOKEN"] = token  # not on the command line
        env["AGENTCRON_LOG_LEVEL"] = "info"
        env.update(extra_env or {})
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, cwd=REPO)

    @property
    def node_id(self) -> str:
        """What its runs' ``node_id`` says."""
        return f"worker:{self.worker_id}"

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the drain to end; returns the exit code."""
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        wait_until(lambda: text in self.log(), timeout,
                   lambda: f"{text!r} in the log of worker {self.worker_id}:\n"
                   f"{self.log()[-3000:]}", interval=0.05)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self._log.closed:
            self._log.close()
