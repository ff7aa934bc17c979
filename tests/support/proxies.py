"""Loopback TCP proxies a test puts between a client and a server, to cut the link (closing
its connections, or silently dropping their traffic) or to keep one answer from the client.
Only loopback: the proxy listens on and connects to 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from tests.support.helpers import process_running, wait_until


class LoopbackProxy:
    """What every proxy here shares: a listener on a free loopback port, its URL, the
    connection to ``127.0.0.1:target_port`` for each client, and closing."""

    def __init__(self, target_port: int, name: str) -> None:
        self.target_port = target_port
        self._lock = threading.Lock()
        self._closed = False
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name=name).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed = True
        _close(self.listener)

    def _accept(self) -> None:
        raise NotImplementedError

    def _upstream(self, client: socket.socket) -> socket.socket | None:
        """A connection to the target for ``client``; None (and ``client`` closed) when the
        target does not answer."""
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), 5)
        except OSError:
            _close(client)
            return None
        upstream.settimeout(None)
        return upstream


class CutProxy(LoopbackProxy):
    """A loopback TCP proxy to ``127.0.0.1:target_port`` that a test can cut: while cut, the
    connections it carries are closed and new ones are closed as soon as accepted, as a
    network outage looks to a client.

    ``drop()`` cuts silently instead, as a partition that drops packets looks: connections
    stay open but nothing crosses them (what each side sends waits, unanswered), and new
    ones are accepted and left without an answer. ``mend()`` lets all of it through again,
    the waiting traffic first, as TCP delivers it once the link heals."""

    def __init__(self, target_port: int) -> None:
        self._cut = threading.Event()
        self._dropping = threading.Event()
        self._mended = threading.Condition()
        self._held: list[socket.socket] = []  # accepted while dropping, not yet connected
        self._open: set[socket.socket] = set()
        super().__init__(target_port, "cut-proxy")

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
        super().close()
        self.cut()
        with self._mended:
            held, self._held = self._held, []
        for client in held:
            _close(client)

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
        upstream = self._upstream(client)
        if upstream is None:
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


class AnswerHoldingProxy(LoopbackProxy):
    """A loopback TCP proxy to ``127.0.0.1:target_port`` that lets the first request whose
    bytes contain ``marker`` reach the server, then keeps the server's answer from the
    client: ``mode="swallow"`` drops the answer and leaves the connection open (the client
    waits, as one killed before it read its answer would have), ``mode="drop"`` closes the
    connection as the answer arrives (the client sees a network error after the server
    acted, and sends the request again). ``every``: every marked request, not only the
    first, until ``stop_holding()``. Everything else passes both ways."""

    def __init__(self, target_port: int, marker: bytes, mode: str, *,
                 every: bool = False) -> None:
        assert mode in ("swallow", "drop")
        self.marker = marker
        self.mode = mode
        self.every = every
        self.held = threading.Event()  # the marked request reached the server
        self.answered = threading.Event()  # the server answered it (and the client did not
        # get the answer)
        self._armed = True
        self._open: list[socket.socket] = []
        super().__init__(target_port, "holding-proxy")

    def stop_holding(self) -> None:
        """From now on, answers to marked requests pass (those held so far stay held)."""
        with self._lock:
            self._armed = False

    def close(self) -> None:
        super().close()
        with self._lock:
            for sock in self._open:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = self._upstream(client)
            if upstream is None:
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
                            self._armed = self.every
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


def cut_until_stopped(proxy: CutProxy, how: str, pid: int, within_s: float,
                      log: Callable[[], str]) -> float:
    """Cut ``proxy`` (``drop``: packets vanish; else refused) and wait for ``pid`` to stop
    within ``within_s`` (a zombie timeout) of the cut: the fencing guarantee, since the
    last beat that got through was sent before the cut and nothing takes the run over
    sooner than a zombie timeout after that beat. Returns how long the stop took; fails
    with the tail of ``log()`` if it did not come in time."""
    cut_at = time.monotonic()
    if how == "drop":
        proxy.drop()
    else:
        proxy.cut()
    wait_until(lambda: not process_running(pid), cut_at + within_s - time.monotonic(),
               lambda: f"pid {pid} to stop within {within_s:g}s of the cut ({how}):\n"
                       f"{log()[-3000:]}", interval=0.02)
    return time.monotonic() - cut_at
