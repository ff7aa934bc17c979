"""HTTP agents: POST the run to a URL and read the answer.

Config: ``{"url": str, "secret": str | None, "headers": {...}, "output_limit": int}``.

Request: ``POST url`` with the JSON body ``{"run_id", "attempt", "agent", "trigger_id",
"scheduled_for" (ISO 8601 UTC), "payload"}`` and the headers ``Idempotency-Key: <run_id>``
(the same for every attempt of a run), ``Content-Type: application/json``,
``User-Agent: agentcron/<version>``; with a secret, the Standard Webhooks headers
``webhook-id`` (run id), ``webhook-timestamp`` and ``webhook-signature``. Configured headers
are sent too but cannot replace these. Redirects are never followed. The request may take the
run's whole time budget (``agents.base.request_timeout_s``: not this host's clock, which may be
wrong); the engine ends the run at its deadline. At most ``MAX_CONNECTIONS`` requests are open
at once; more runs wait their turn.

Where it may connect: see ``agents.netguard`` (the metadata address and link-local ranges
are always refused, private ranges with ``AGENTCRON_HTTP_DENY_PRIVATE=1``, checked after DNS
resolution); a refused address fails the run without retry.

Outcome: 2xx succeeds (output, usage and ``"schedule"`` follow-ups read as in
``executors.response``); 3xx fails without
retry; 408, 429, 5xx, timeouts and connection errors fail and are retried; other 4xx fail
without retry. Errors name the status and the first 500 characters of the body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata

import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from agentcron.executors.base import failed, merge_usage, output_limit, request_timeout_s
from agentcron.executors.context import RunContext
from agentcron.executors.follow_ups import merged
from agentcron.executors.netguard import OutboundAddressDenied, guarded_client
from agentcron.executors.response import parse_answer
from agentcron.executors.signing import sign
from agentcron.models import ClaimedRun, ExecutionResult
from agentcron.rules.secrets import mask_url

_log: FilteringBoundLogger = structlog.get_logger(__name__)

MAX_BODY = 1024 * 1024
"""Bytes of a response read at most; the rest is discarded (output is capped well below)."""
ERROR_BODY_CHARS = 500
MAX_CONNECTIONS = 100
"""Requests one executor has open at once (its client's pool, every connection kept alive);
runs beyond it wait for a free connection."""
RETRYABLE_STATUSES = frozenset({408, 429})


def _version() -> str:
    try:
        return metadata.version("agentcron")
    except metadata.PackageNotFoundError:  # running from a source checkout
        return "0+unknown"


USER_AGENT = f"agentcron/{_version()}"


class HttpExecutor:
    """Runs HTTP agents over ``client`` (the node's shared one), or its own if None.

    ``clock`` returns the current UTC time; it sets the signature timestamp.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._owns_client = client is None
        self._client = client or guarded_client(
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))
        self._clock = clock
        # httpcore's pool scans every request waiting in it against every connection each
        # time a request starts or ends: with hundreds of runs queued inside it a node spends
        # its CPU there, and runs time out waiting. Requests beyond the pool's size wait here
        # instead, first come first served, at no cost (the run's timeout still runs).
        self._gate = asyncio.Semaphore(max_connections)

    async def execute(self, run: ClaimedRun, ctx: RunContext) -> ExecutionResult:
        cfg = run.agent.config
        log = _log.bind(run_id=run.run_id, agent=run.agent.name, attempt=run.attempt)
        url = cfg.get("url")
        if not isinstance(url, str) or not url:
            return failed("http agent has no 'url' in its config", retryable=False)
        limit = output_limit(cfg)
        now = self._clock()
        body = _body(run)
        configured = cfg.get("headers")
        headers = (
            {str(k): str(v) for k, v in configured.items()} if isinstance(configured, dict) else {}
        )
        headers.update(
            {
                "Idempotency-Key": run.run_id,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            }
        )
        secret = cfg.get("secret")
        if secret:
            stamp = int(now.timestamp())
            headers["webhook-id"] = run.run_id
            headers["webhook-timestamp"] = str(stamp)
            try:
                if not isinstance(secret, str):
                    raise ValueError("secret must be a string")
                headers["webhook-signature"] = sign(secret, run.run_id, stamp, body)
            except ValueError as exc:  # validation should have caught it
                return _fail(ctx, f"invalid secret: {exc}", retryable=False)
        timeout = request_timeout_s(run)
        try:
            # follow_redirects=False per request: a shared client may be configured otherwise.
            # `async with` closes the response (and frees the connection) on cancellation too.
            async with self._gate, self._client.stream(
                "POST", url, content=body, headers=headers, timeout=timeout, follow_redirects=False
            ) as response:
                status, text = response.status_code, await read_text(response)
                location = response.headers.get("location")
        except OutboundAddressDenied as exc:
            log.warning("http agent address refused", reason=str(exc))
            return _fail(ctx, str(exc), retryable=False)
        except httpx.TimeoutException as exc:
            log.info("http agent timed out", timeout_s=timeout)
            return _fail(ctx, f"request timed out after {timeout:.1f}s ({type(exc).__name__})")
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return _fail(ctx, f"cannot request {mask_url(url)!r}: {_masked(exc, url)}",
                         retryable=False)
        except httpx.HTTPError as exc:  # connection refused/reset, protocol and decoding errors
            log.info("http agent request failed", error=_masked(exc, url))
            return _fail(ctx, f"request failed: {type(exc).__name__}: {_masked(exc, url)}")
        log.debug("http agent answered", status=status)
        if 200 <= status < 300:
            output, reported, asked = parse_answer(text, log, limit, self._clock())
            return ExecutionResult(ok=True, output=output, usage=merge_usage(ctx.usage, reported),
                                   schedule=merged(ctx.follow_ups, asked))
        snippet = text[:ERROR_BODY_CHARS]
        if 300 <= status < 400:
            return _fail(
                ctx,
                f"HTTP {status} redirect to {location!r}: redirects are not followed, "
                "configure the final URL",
                retryable=False,
            )
        retryable = status in RETRYABLE_STATUSES or status >= 500
        return _fail(ctx, f"HTTP {status}: {snippet}", retryable=retryable)

    async def aclose(self) -> None:
        """Close the client if this executor created it; a shared client is the caller's."""
        if self._owns_client:
            await self._client.aclose()


def _masked(exc: Exception, url: str) -> str:
    """The error's text with the URL's credentials masked: a run's error is shown to every
    token that can read runs."""
    return str(exc).replace(url, mask_url(url))


def _body(run: ClaimedRun) -> bytes:
    doc = {
        "run_id": run.run_id,
        "attempt": run.attempt,
        "agent": run.agent.name,
        "trigger_id": run.trigger_id,
        "scheduled_for": run.scheduled_for.astimezone(UTC).isoformat(),
        "payload": run.payload,
    }
    return json.dumps(doc, default=str, separators=(",", ":"), ensure_ascii=False).encode()


async def read_text(response: httpx.Response, limit: int = MAX_BODY) -> str:
    """The body decoded (its charset, else UTF-8), read up to ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    raw = b"".join(chunks)[:limit]
    try:
        return raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def _fail(ctx: RunContext, error: str, *, retryable: bool = True) -> ExecutionResult:
    return failed(error, retryable=retryable, usage=merge_usage(ctx.usage, None))
