"""A real HTTP receiver on 127.0.0.1 for alert deliveries: it records every request (path,
headers, JSON body) and answers with the statuses a test queues (then 200)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float

    @property
    def body(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Receiver:
    base: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: When set, the first request is held unanswered until ``release`` is set.
    hold_first: bool = False
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    def ids(self) -> list[str]:
        """The webhook-id of every request, in arrival order (repeats included)."""
        with self.lock:
            return [r.headers.get("webhook-id", "") for r in self.received]

    def bodies(self, path: str | None = None) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received if path is None or r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    import time

    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            with state.lock:
                state.received.append(Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, raw,
                    time.monotonic()))
                status = state.statuses.pop(0) if state.statuses else 200
                held = state.hold_first and len(state.received) == 1
            if held:
                state.release.wait(30)
            try:
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            except OSError:
                pass  # the sender is gone (a node killed while delivering)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Receiver(base=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
