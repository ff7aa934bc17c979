"""A real ``agentcron serve`` with its HTTP API, for the API, fuzz and browser tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agentcron.executors.signing import sign
from agentcron.services.access import Access
from agentcron.store import Store
from tests.conftest import _truncate
from tests.support.helpers import wait_until
from tests.support.procs import ServeProcess, free_port

SCOPES = ("read", "write", "admin")


@dataclass
class ApiServer:
    proc: ServeProcess
    base: str
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, scope: str | None = "admin") -> httpx.Client:
        headers = {} if scope is None else {"Authorization": f"Bearer {self.tokens[scope]}"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def wait_run(self, run_id: str, statuses: tuple[str, ...] = ("succeeded",),
                 timeout: float = 30.0) -> dict[str, Any]:
        """Poll the API until the run has one of ``statuses`` (never a fixed sleep)."""
        last: dict[str, Any] = {}
        with self.client("read") as client:
            def reached() -> dict[str, Any] | None:
                last.update(client.get(f"/api/v1/runs/{run_id}").json())
                return dict(last) if last.get("status") in statuses else None

            run: dict[str, Any] = wait_until(
                reached, timeout, lambda: f"run {run_id} (it is {last.get('status')}) to be "
                f"{' or '.join(statuses)}\n{self.proc.log()[-3000:]}", interval=0.05)
            return run


@contextmanager
def api_server(db_url: str, log_dir: Path, node_id: str = "api-node", *,
               env: dict[str, str] | None = None, extra: list[str] | None = None,
               truncate: bool = True) -> Iterator[ApiServer]:
    """Start a node with its API on a free port, with a read, a write and an admin token
    (created through the service layer before the node starts), and wait until /readyz
    answers 200."""
    store = Store(db_url)
    if truncate:
        _truncate(store)
    access = Access(store)
    tokens = {scope: access.create_token(f"test-{scope}", scope)[1] for scope in SCOPES}
    port = free_port()
    proc = ServeProcess(db_url, node_id, log_dir, api_port=port, env=env, extra=extra,
                        heartbeat_interval="0.5s", zombie_timeout="5s")
    server = ApiServer(proc, f"http://127.0.0.1:{port}", store, tokens)

    def ready() -> bool:
        if proc.proc.poll() is not None:
            raise AssertionError(f"serve exited before it got ready:\n{proc.log()[-3000:]}")
        return httpx.get(f"{server.base}/readyz", timeout=2).status_code == 200

    try:
        wait_until(ready, 30, lambda: f"serve to get ready:\n{proc.log()[-3000:]}",
                   interval=0.05, ignoring=(httpx.HTTPError,))
        yield server
    finally:
        proc.stop(timeout=30)
        proc.cleanup()
        store.close()


def signed_headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None
                   ) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, msg_id, stamp, body),
            "content-type": "application/json"}
