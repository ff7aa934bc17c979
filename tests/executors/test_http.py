"""HTTP executor against a real HTTP server on 127.0.0.1 (stdlib, in a background thread)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import standardwebhooks
import structlog

from agentcron.executors import OUTPUT_LIMIT, RunContext
from agentcron.executors.http import HttpExecutor
from agentcron.executors.signing import verify
from agentcron.models import ClaimedRun, ExecutionResult, Usage
from tests.support.http_target import Route, Server, json_route, make_run

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"



def post(
    url: str, payload: Any = None, *, deadline_s: float = 60, record: bool = False, **config: Any
) -> tuple[ExecutionResult, ClaimedRun]:
    async def main() -> tuple[ExecutionResult, ClaimedRun]:
        run = make_run({"url": url, **config}, payload, deadline_s)
        ctx = RunContext(run)
        if record:
            ctx.record_usage(input_tokens=5, cost_usd=0.5)
        executor = HttpExecutor()
        try:
            return await executor.execute(run, ctx), run
        finally:
            await executor.aclose()

    return asyncio.run(main())


def test_success_reads_output_and_usage_and_sends_a_signed_request(server: Server) -> None:
    usage = {"input_tokens": 100, "output_tokens": 20, "cost_usd": 0.25, "model": "m1"}
    server.routes["/agent"] = json_route({"output": "summary", "usage": usage})
    result, run = post(server.url("/agent"), {"q": "news"}, record=True, secret=WHSEC)

    assert result == ExecutionResult(ok=True, output="summary", usage=Usage(105, 20, 0.75, "m1"))
    [request] = server.requests
    assert json.loads(request.body) == {
        "run_id": run.run_id,
        "attempt": 2,
        "agent": "http-agent",
        "trigger_id": "tr_http",
        "scheduled_for": "2026-03-01T13:30:00+00:00",
        "payload": {"q": "news"},
    }
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["idempotency-key"] == run.run_id == headers["webhook-id"]
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("agentcron/")
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    # An independent implementation of the standard accepts our signature...
    standardwebhooks.Webhook(WHSEC).verify(request.body, headers)
    # ...and so does ours.
    verify(WHSEC, headers, request.body, now=datetime.now(UTC))


def test_a_raw_string_secret_signs_with_its_utf8_bytes(server: Server) -> None:
    server.routes["/agent"] = (200, {}, b"ok")
    secret = "plain text secret, ünïcode"
    assert post(server.url("/agent"), secret=secret)[0].ok
    [request] = server.requests
    standardwebhooks.Webhook(secret.encode()).verify(request.body, request.headers)


def test_without_secret_no_signature_and_configured_headers_are_sent(server: Server) -> None:
    server.routes["/agent"] = (204, {}, b"")
    result, run = post(
        server.url("/agent"),
        headers={"Authorization": "Bearer t0ken", "Idempotency-Key": "mine"},
    )
    assert result == ExecutionResult(ok=True, output="")
    headers = {k.lower(): v for k, v in server.requests[0].headers.items()}
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["idempotency-key"] == run.run_id  # configured headers cannot replace ours
    assert not any(name.startswith("webhook-") for name in headers)


@pytest.mark.parametrize(
    ("route", "output"),
    [
        ((200, {"Content-Type": "text/plain"}, b"plain answer"), "plain answer"),
        (json_route({"output": {"items": [1, 2]}}), '{"items": [1, 2]}'),
        (json_route({"output": None}), None),
        (json_route([1, 2]), "[1, 2]"),
        (json_route({"result": "x"}), '{"result": "x"}'),
    ],
)
def test_output_forms(server: Server, route: Route, output: str | None) -> None:
    server.routes["/agent"] = route
    assert post(server.url("/agent"))[0] == ExecutionResult(ok=True, output=output)


def test_invalid_usage_values_are_ignored_with_a_log_line(server: Server) -> None:
    usage = {"input_tokens": -3, "output_tokens": 7, "cost_usd": "lots", "model": 5}
    server.routes["/agent"] = json_route({"output": "ok", "usage": usage})
    with structlog.testing.capture_logs() as logs:
        result, _ = post(server.url("/agent"))
    assert result.usage == Usage(output_tokens=7)
    ignored = {e["field"] for e in logs if e["event"] == "reported usage field ignored"}
    assert ignored == {"input_tokens", "cost_usd", "model"}


def test_big_response_is_capped(server: Server) -> None:
    server.routes["/agent"] = (200, {}, b"z" * 5_000_000)
    result, _ = post(server.url("/agent"))
    assert result.ok and result.output is not None
    assert result.output.startswith("z" * OUTPUT_LIMIT + "\n[agentcron: output truncated")


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (408, True), (404, False), (400, False), (401, False)],
)
def test_error_statuses(server: Server, status: int, retryable: bool) -> None:
    server.routes["/agent"] = (status, {}, b"E" * 2000)
    result, _ = post(server.url("/agent"))
    assert not result.ok and result.retryable is retryable
    assert result.error == f"HTTP {status}: " + "E" * 500


def test_redirects_are_not_followed(server: Server) -> None:
    server.routes["/old"] = (302, {"Location": "/new"}, b"")
    server.routes["/new"] = (200, {}, b"should not be reached")
    result, _ = post(server.url("/old"))
    assert not result.ok and not result.retryable
    assert result.error is not None and "redirects are not followed" in result.error
    assert "'/new'" in result.error
    assert [r.path for r in server.requests] == ["/old"]


def test_a_shared_client_is_used_without_following_redirects_and_not_closed(
    server: Server,
) -> None:
    server.routes["/old"] = (307, {"Location": "/new"}, b"")

    async def main() -> None:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            executor = HttpExecutor(client)
            run = make_run({"url": server.url("/old")})
            result = await executor.execute(run, RunContext(run))
            assert not result.ok and not result.retryable
            await executor.aclose()
            assert not client.is_closed

    asyncio.run(main())
    assert [r.path for r in server.requests] == ["/old"]


def test_request_times_out_at_the_deadline_and_is_retryable(server: Server) -> None:
    server.routes["/agent"] = "slow"
    begin = time.monotonic()
    result, _ = post(server.url("/agent"), deadline_s=0.2)  # min 1 s
    elapsed = time.monotonic() - begin
    assert not result.ok and result.retryable
    assert result.error is not None and result.error.startswith("request timed out after 1.0s")
    assert 0.9 < elapsed < 5


@pytest.mark.parametrize("host_clock_off_by", [timedelta(minutes=5), timedelta(minutes=-5)])
def test_a_wrong_host_clock_does_not_shorten_the_request(server: Server,
                                                         host_clock_off_by: timedelta) -> None:
    """Found by the chaos suite's skew scenario: the deadline is on the database's clock, and a
    node whose own clock ran 5 minutes fast saw every deadline as past, so each request got
    the 1 s minimum and an agent taking 1.5 s failed every attempt."""
    server.routes["/agent"] = "takes-1.5s"

    async def main() -> ExecutionResult:
        executor = HttpExecutor(clock=lambda: datetime.now(UTC) + host_clock_off_by)
        run = make_run({"url": server.url("/agent")}, deadline_s=30)
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await executor.aclose()

    result = asyncio.run(main())
    assert result.ok, result.error


def test_runs_beyond_the_pool_wait_outside_httpcore(server: Server) -> None:
    """Found by the chaos suite's kill scenario: with hundreds of runs in flight on a node,
    all of them waited inside httpcore's pool, which scans every waiting request against
    every connection whenever one starts or ends; the node spent its CPU there and runs timed
    out. Runs beyond the pool's size now wait at the executor's gate, so the pool never holds
    more requests than it has connections."""
    server.routes["/agent"] = (200, {}, b"ok")
    limit, runs = 4, 40

    async def main() -> tuple[list[ExecutionResult], int]:
        executor = HttpExecutor(max_connections=limit)
        pool = executor._client._transport._pool  # type: ignore[attr-defined]
        most = 0
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal most
            while not done.is_set():
                most = max(most, len(pool._requests))
                await asyncio.sleep(0)

        watcher = asyncio.create_task(watch())
        try:
            batch = [make_run({"url": server.url("/agent")}) for _ in range(runs)]
            results = await asyncio.gather(*(executor.execute(r, RunContext(r)) for r in batch))
        finally:
            done.set()
            await watcher
            await executor.aclose()
        return results, most

    results, most = asyncio.run(main())
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    assert len(server.requests) == runs
    assert 0 < most <= limit, f"{most} requests queued inside httpcore's pool"


def test_httpcore_finds_sniffio() -> None:
    """httpcore imports sniffio on every request; when it is missing (anyio no longer pulls it
    in) each failed import searches all of sys.path, many times per request. It is a declared
    dependency; this fails if it ever goes missing again."""
    import importlib.util

    assert importlib.util.find_spec("sniffio") is not None


def test_cancellation_returns_promptly(server: Server) -> None:
    server.routes["/agent"] = "slow"

    async def main() -> float:
        executor = HttpExecutor()
        run = make_run({"url": server.url("/agent")})
        begin = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(executor.execute(run, RunContext(run)), 0.2)
        elapsed = time.monotonic() - begin
        await executor.aclose()
        return elapsed

    assert asyncio.run(main()) < 1.5


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result, _ = post(f"http://127.0.0.1:{port}/agent")
    assert not result.ok and result.retryable
    assert result.error is not None and result.error.startswith("request failed: ConnectError")


def test_unsupported_url_fails_without_retry() -> None:
    result, _ = post("ftp://127.0.0.1/agent")
    assert not result.ok and not result.retryable
    assert result.error is not None and result.error.startswith("cannot request 'ftp://")


def test_signature_timestamp_comes_from_the_injected_clock(server: Server) -> None:
    server.routes["/agent"] = (200, {}, b"ok")
    fixed = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

    async def main() -> None:
        executor = HttpExecutor(clock=lambda: fixed)
        run = make_run({"url": server.url("/agent"), "secret": WHSEC})
        assert (await executor.execute(run, RunContext(run))).ok
        await executor.aclose()

    asyncio.run(main())
    [request] = server.requests
    assert request.headers["webhook-timestamp"] == str(int(fixed.timestamp()))
    verify(WHSEC, request.headers, request.body, now=fixed + timedelta(seconds=299))


@pytest.mark.parametrize("url", [
    "ftp://bot:hunter2@127.0.0.1/run",  # not requestable: the error names the URL
    "http://bot:hunter2@127.0.0.1:1/run?api_key=qs-token",  # nothing listens on port 1
])
def test_errors_never_show_credentials_in_the_url(url: str) -> None:
    """A run's error is shown to every token that can read runs."""
    result, _ = post(url)
    assert not result.ok and result.error
    assert "hunter2" not in result.error and "qs-token" not in result.error
