"""Limits before work, over real HTTP against a real ``agentcron serve`` on PostgreSQL: a
write without a token is refused before its body is read, bodies are capped while they
stream in (413, JSON), and hostile JSON and times outside the accepted range get 422 naming
the field on every door that takes a payload or a time."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from agentcron.engine.settings import settings_from_env
from agentcron.errors import ValidationError
from tests.support.api_server import ApiServer, api_server, signed_headers
from tests.support.hostile import HOSTILE_TEXT

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HUGE = 170 * 1024 * 1024
MAX_BODY = 512 * 1024
HELLO = {"kind": "python", "config": {"target": "agentcron.examples:hello"}}


@pytest.fixture(scope="module")
def srv(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(pg_url, tmp_path_factory.mktemp("limits"),
                    extra=["--max-body-bytes", str(MAX_BODY)]) as server:
        with server.client() as admin:
            assert admin.put("/api/v1/agents/bot", json=HELLO).status_code == 200
        yield server


@pytest.fixture(scope="module")
def admin(srv: ApiServer) -> Iterator[httpx.Client]:
    with srv.client("admin") as client:
        yield client


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def post_streaming(srv: ApiServer, path: str, headers: dict[str, str], total: int,
                   *, chunked: bool = False) -> tuple[int, int, dict[str, Any]]:
    """POST ``total`` bytes to ``path`` in 64 KiB pieces over a raw socket, stopping as soon
    as the server answers (or stops reading). Returns the bytes sent, the status and the
    JSON answer."""
    url = urlsplit(srv.base)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=5)
    framing = ("Transfer-Encoding: chunked\r\n" if chunked
               else f"Content-Length: {total}\r\n")
    head = (f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Type: application/json\r\n" + framing
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
    sock.sendall(head.encode())
    piece = b" " * 65536
    framed = b"%x\r\n" % len(piece) + piece + b"\r\n" if chunked else piece
    sent = 0
    try:
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break  # the server stopped reading
            sent += len(piece)
        sock.settimeout(10)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    finally:
        sock.close()
    head_text, _, body = answer.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ")[1])
    return sent, status, json.loads(body)


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


@pytest.mark.parametrize("path", ["/api/v1/triggers", "/api/v1/agents/bot/fire"])
def test_a_huge_post_without_a_token_is_refused_before_its_body_is_read(
        srv: ApiServer, path: str) -> None:
    before = rss_kib(srv.proc.pid)
    sent, status, body = post_streaming(srv, path, {}, HUGE)
    assert status == 401, body
    assert body["detail"].startswith("missing credentials")
    assert sent < HUGE // 4, f"{sent:,} bytes sent before the answer"
    sent, status, body = post_streaming(srv, path, {"Authorization": "Bearer nope"}, HUGE)
    assert status == 401 and body["detail"] == "invalid or revoked token"
    assert sent < HUGE // 4
    assert rss_kib(srv.proc.pid) - before < 64 * 1024  # not the body's 170 MB


def test_login_is_capped_before_it_is_read(srv: ApiServer) -> None:
    sent, status, body = post_streaming(srv, "/login", {}, HUGE)
    assert status == 413 and body["field"] == "body"
    assert sent < HUGE // 4


@pytest.mark.parametrize("chunked", [False, True])
def test_bodies_over_the_limit_get_413_while_streaming(srv: ApiServer, chunked: bool) -> None:
    before = rss_kib(srv.proc.pid)
    token = {"Authorization": f"Bearer {srv.tokens['admin']}"}
    sent, status, body = post_streaming(srv, "/api/v1/agents/bot/fire", token, HUGE,
                                        chunked=chunked)
    assert status == 413, body
    # The limit is the one given to serve (--max-body-bytes), not the 1 MiB default.
    assert f"{MAX_BODY:,} byte limit" in body["detail"] and body["field"] == "body"
    assert sent < HUGE // 4
    assert rss_kib(srv.proc.pid) - before < 64 * 1024


def test_a_body_under_the_limit_still_works(admin: httpx.Client) -> None:
    fired = admin.post("/api/v1/agents/bot/fire", json={"payload": {"x": "y" * 1000}})
    assert fired.status_code == 202, fired.text


def test_a_declared_length_over_the_limit_is_413(admin: httpx.Client) -> None:
    response = admin.post("/api/v1/triggers", content=b" " * (MAX_BODY + 1),
                          headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["field"] == "body"
    at_limit = admin.post("/api/v1/triggers", content=b" " * (MAX_BODY - 100) + b"{}",
                          headers={"content-type": "application/json"})
    assert at_limit.status_code == 422  # read and parsed: the agent is missing




@pytest.mark.parametrize("kind", sorted(HOSTILE_TEXT))
def test_hostile_payloads_get_422_on_every_api_door(srv: ApiServer, admin: httpx.Client,
                                                    kind: str) -> None:
    payload = HOSTILE_TEXT[kind]
    doors = [("/api/v1/agents/bot/fire", '{"payload": %s}'),
             ("/api/v1/triggers", '{"agent": "bot", "every": "1m", "payload": %s}')]
    for path, template in doors:
        response = admin.post(path, content=(template % payload).encode(),
                              headers={"content-type": "application/json"})
        assert response.status_code == 422, (path, response.status_code, response.text[:300])
        assert response.json()["field"] in ("payload", "body")
    created = admin.post("/api/v1/triggers", json={"agent": "bot", "webhook": True}).json()
    body = payload.encode()
    hook = httpx.post(f"{srv.base}/hooks/{created['id']}", content=body,
                      headers=signed_headers(created["secret"], f"m-{kind}", body))
    assert hook.status_code == (413 if kind == "huge" else 422), hook.text[:300]
    assert hook.json()["field"] == "body"
    assert admin.delete(f"/api/v1/triggers/{created['id']}").status_code == 200
    runs = admin.get("/api/v1/runs", params={"agent": "bot"}).json()
    assert all(run["payload"] is None or "x" in run["payload"] for run in runs["runs"])


@pytest.mark.parametrize(("fields", "named"), [
    ({"at": "9999-12-31T23:59:59-12:00"}, "at"),
    ({"every": "1s", "start": "0999-01-01T00:00:00Z"}, "start"),
    ({"every": "1s", "end": "9001-01-01T00:00:00Z"}, "end"),
])
def test_times_outside_the_range_get_422(admin: httpx.Client, fields: dict[str, str],
                                         named: str) -> None:
    response = admin.post("/api/v1/triggers", json={"agent": "bot", **fields})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == named
    assert "1970-01-01" in response.json()["hint"]
    since = admin.get("/api/v1/runs", params={"since": "0001-01-01T00:00:00+00:00"})
    assert since.status_code == 422 and since.json()["field"] == "since"


def test_a_400_digit_webhook_timestamp_is_401_not_500(srv: ApiServer,
                                                      admin: httpx.Client) -> None:
    created = admin.post("/api/v1/triggers", json={"agent": "bot", "webhook": True}).json()
    body = b'{"a": 1}'
    headers = signed_headers(created["secret"], "m-stamp", body)
    headers["webhook-timestamp"] = "9" * 400
    answer = httpx.post(f"{srv.base}/hooks/{created['id']}", content=body, headers=headers)
    assert answer.status_code == 401 and "unix seconds" in answer.json()["detail"]
    assert "api_unexpected_error" not in srv.proc.log()


def test_the_body_limit_is_read_from_the_environment_and_checked() -> None:
    assert settings_from_env({}).max_body_bytes == 1024 * 1024
    assert settings_from_env({"AGENTCRON_MAX_BODY_BYTES": "2048"}).max_body_bytes == 2048
    with pytest.raises(ValidationError) as info:
        settings_from_env({"AGENTCRON_MAX_BODY_BYTES": "0"}).validate()
    assert info.value.field == "max-body-bytes"
