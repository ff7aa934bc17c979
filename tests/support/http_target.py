"""A real HTTP server on 127.0.0.1 standing in for an http agent's endpoint, with routes a
test sets, and a ``ClaimedRun`` builder for executor tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentcron.models import AgentKind, AgentSpec, ClaimedRun
from agentcron.rules.ids import new_run_id

Route = tuple[int, dict[str, str], bytes]


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    base: str
    routes: dict[str, Route | str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.base + path


def json_route(doc: Any, status: int = 200) -> Route:
    return status, {"Content-Type": "application/json"}, json.dumps(doc).encode()


@pytest.fixture
def server() -> Iterator[Server]:
    state: Server

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(Recorded(self.path, dict(self.headers.items()), body))
            route = state.routes.get(self.path, (404, {}, b"no route"))
            if route == "slow":
                state.release.wait(30)  # the slow agent: answers when the test is over
                route = (200, {}, b"too late")
            elif route == "takes-1.5s":  # an agent whose work takes a while
                time.sleep(1.5)
                route = (200, {}, b"done")
            assert not isinstance(route, str)
            status, headers, payload = route
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state = Server(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def make_run(config: dict[str, Any], payload: Any = None, deadline_s: float = 60) -> ClaimedRun:
    now = datetime.now(UTC)
    spec = AgentSpec(name="http-agent", kind=AgentKind.HTTP, config=config)
    return ClaimedRun(
        run_id=new_run_id(),
        lease=1,
        attempt=2,
        agent=spec,
        trigger_id="tr_http",
        scheduled_for=datetime(2026, 3, 1, 13, 30, tzinfo=UTC),
        started_at=now,
        deadline_at=now + timedelta(seconds=deadline_s),
        payload=payload,
    )
