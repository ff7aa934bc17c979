"""Real ``agentcron worker`` processes, and a loopback TCP proxy a test can cut (closing
its connections, or silently dropping their traffic)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.helpers import wait_until
from tests.support.procs import REPO, ChildProcess


class WorkerProcess(ChildProcess):
    """One ``agentcron worker``, started with the real console entry point."""

    def __init__(self, url: str, token: str, agent: str, worker_id: str, log_dir: Path, *,
                 python: str = "tests.support.remote_agents:sleeper",
                 command: str | None = None, concurrency: int = 1,
                 heartbeat_interval: str = "0.5s", wait: str = "2s",
                 drain_timeout: str = "2s") -> None:
        self.worker_id = worker_id
        self.log_path = log_dir / f"worker-{worker_id}.log"
        run = ["--command", command] if command is not None else ["--python", python]
        args = [sys.executable, "-m", "agentcron", "worker", "--url", url, "--agent", agent,
                *run, "--worker-id", worker_id, "--concurrency", str(concurrency),
                "--heartbeat-interval", heartbeat_interval, "--wait", wait,
                "--drain-timeout", drain_timeout]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src"),
                                             env.get("PYTHONPATH", "")])
        env["AGENTCRON_TOKEN"] = token  # not on the command line
        env["AGENTCRON_LOG_LEVEL"] = "info"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, cwd=REPO)

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


class CutProxy:
    """A loopback TCP proxy to ``127.0.0.1:target_port`` that a test can cut: while cut, the
    connections it carries are closed and new ones are closed as soon as accepted, as a
    network outage looks to a client.

    ``drop()`` cuts silently instead, as a partition that drops packets looks: connections
    stay open but nothing crosses them (what each side sends waits, unanswered), and new
    ones are accepted and left without an answer. ``mend()`` lets all of it through again,
    the waiting traffic first, as TCP delivers it once the link heals."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._dropping = threading.Event()
        self._mended = threading.Condition()
        self._held: list[socket.socket] = []  # accepted while dropping, not yet connected
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="cut-proxy").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()

    def drop(self) -> None:
        self._dropping.set()

    def mend(self) -> None:
        self._cut.clear()
        with self._mended:
            self._dropping.clear()
            held, self._held = self._held, []
            self._mended.notify_all()
        for client in held:
            self._connect(client)

    def _wait_mended(self) -> None:
        with self._mended:
            while self._dropping.is_set() and not self._closed:
                self._mended.wait(0.1)

    def close(self) -> None:
        self._closed = True
        self.cut()
        with self._mended:
            held, self._held = self._held, []
        for client in held:
            _close(client)
        _close(self.listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._cut.is_set():
                _close(client)
                continue
            with self._mended:
                if self._dropping.is_set():
                    self._held.append(client)
                    continue
            self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), 5)
            upstream.settimeout(None)
        except OSError:
            _close(client)
            return
        with self._lock:
            self._open |= {client, upstream}
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                # Dropping: hold it (and, unread, what follows it); a close too.
                self._wait_mended()
                if not data or self._cut.is_set() or self._closed:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class AnswerHoldingProxy:
    """A loopback TCP proxy to ``127.0.0.1:target_port`` that lets the first request whose
    bytes contain ``marker`` reach the server, then keeps the server's answer from the
    client: ``mode="swallow"`` drops the answer and leaves the connection open (the client
    waits, as one killed before it read its answer would have), ``mode="drop"`` closes the
    connection as the answer arrives (the client sees a network error after the server
    acted, and sends the request again). Everything else passes both ways."""

    def __init__(self, target_port: int, marker: bytes, mode: str) -> None:
        assert mode in ("swallow", "drop")
        self.target_port = target_port
        self.marker = marker
        self.mode = mode
        self.held = threading.Event()  # the marked request reached the server
        self.answered = threading.Event()  # the server answered it (and the client did not
        # get the answer)
        self._lock = threading.Lock()
        self._armed = True
        self._open: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="holding-proxy").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        _close(self.listener)
        with self._lock:
            for sock in self._open:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open += [client, upstream]
            marked = threading.Event()  # this connection carried the marked request
            threading.Thread(target=self._requests, args=(client, upstream, marked),
                             daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, marked),
                             daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket,
                  marked: threading.Event) -> None:
        seen = b""
        try:
            while data := src.recv(65536):
                if not marked.is_set():
                    # The marker may straddle two reads: keep a short tail.
                    seen = (seen + data)[-(len(data) + len(self.marker)):]
                    with self._lock:
                        if self._armed and self.marker in seen:
                            self._armed = False
                            marked.set()
                dst.sendall(data)
                if marked.is_set():
                    self.held.set()
        except OSError:
            pass
        finally:
            if not (marked.is_set() and self.mode == "swallow"):
                _close(src)
                _close(dst)

    def _answers(self, src: socket.socket, dst: socket.socket,
                 marked: threading.Event) -> None:
        try:
            while data := src.recv(65536):
                if marked.is_set():
                    self.answered.set()
                    if self.mode == "drop":
                        break
                    continue  # swallow: the client never reads it
                dst.sendall(data)
        except OSError:
            pass
        finally:
            if not (marked.is_set() and self.mode == "swallow"):
                _close(src)
                _close(dst)
