"""LLM agents: one OpenAI-compatible chat completion per run.

Config: see ``agents.llm_config``. Request: ``POST {base_url}/chat/completions`` with
``{"model", "messages": [system?, user], "temperature"?, "max_tokens"?}``; the user message is
the agent's ``prompt`` template rendered from the run's payload (``agents.templates``), the
system message its ``system`` template if set. With ``api_key_env``, the key is read from
that environment variable of the node *when the run starts* and sent as
``Authorization: Bearer``; it is never stored, logged, or kept in an error message (a server
that echoes it back, in an error or in a successful answer, has it replaced by ``***``).
Connections go through the same outbound guard as http agents (``agents.netguard``: no
redirects, refused addresses, no proxy from the environment); a refused address fails the run
without retry and the request, key included, is never sent. The request may
take the run's whole time budget (``agents.base.request_timeout_s``: not this host's clock,
which may be wrong); the engine ends the run at its deadline.

Outcome:

- 2xx with a JSON body: ``choices[0].message.content`` is the output; ``usage.prompt_tokens``
  and ``usage.completion_tokens`` are recorded as input and output tokens, with the
  *configured* model name (the key of the price table; servers often answer with a dated
  variant). Cost is left to the price table (see ``store.pricing``).
- Fails without retry: a missing key variable, a template that does not render, a 2xx body
  that is not JSON or has no ``choices[0].message``, and 4xx other than 408/429.
- Fails and is retried: 408, 429, 5xx (honouring ``Retry-After``, in seconds or as an HTTP
  date, through ``ExecutionResult.retry_after_s``), timeouts and connection errors. Tokens a
  server spent on an attempt that timed out are unknown and not recorded.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from structlog.typing import FilteringBoundLogger

from agentcron.executors.base import failed, output_limit, request_timeout_s, truncate
from agentcron.executors.context import RunContext
from agentcron.executors.http import USER_AGENT, read_text
from agentcron.executors.netguard import OutboundAddressDenied, guarded_client
from agentcron.executors.templates import TemplateError, render
from agentcron.models import ClaimedRun, ExecutionResult, Usage

_log: FilteringBoundLogger = structlog.get_logger(__name__)

MAX_BODY = 4 * 1024 * 1024
"""Bytes of a response read at most."""
ERROR_BODY_CHARS = 500
RETRYABLE_STATUSES = frozenset({408, 429})


class LlmExecutor:
    """Runs llm agents over ``client`` (the node's shared one), or its own if None.

    ``environ`` is where keys are looked up (default ``os.environ``, read at each run, so a
    rotated key is picked up without a restart); ``clock`` gives the current UTC time.
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._owns_client = client is None
        # The same outbound guard as http agents: base_url is typed by a user too.
        self._client = client or guarded_client()
        self._environ = environ if environ is not None else os.environ
        self._clock = clock

    async def execute(self, run: ClaimedRun, ctx: RunContext) -> ExecutionResult:
        cfg = run.agent.config
        log = _log.bind(run_id=run.run_id, agent=run.agent.name, attempt=run.attempt)
        model = str(cfg.get("model") or "")
        headers = {"Content-Type": "application/json", "Accept": "application/json",
                   "User-Agent": USER_AGENT}
        key: str | None = None
        key_env = cfg.get("api_key_env")
        if key_env:
            key = self._environ.get(str(key_env)) or None
            if key is None:
                return failed(
                    f"the environment variable {key_env} (the agent's api_key_env) is not set "
                    "on this node: set it in the environment of `agentcron serve`",
                    retryable=False,
                )
            headers["Authorization"] = f"Bearer {key}"
        try:
            # Off the event loop: a payload-driven template may take up to its time limit
            # (``templates.MAX_RENDER_SECONDS``), which must not stall the node's other runs.
            messages = await asyncio.to_thread(_messages, cfg, run)
        except TemplateError as exc:
            return failed(f"prompt template: {exc}", retryable=False)
        body: dict[str, Any] = {"model": model, "messages": messages}
        if cfg.get("temperature") is not None:
            body["temperature"] = cfg["temperature"]
        if cfg.get("max_tokens") is not None:
            body["max_tokens"] = cfg["max_tokens"]
        url = f"{str(cfg.get('base_url', '')).rstrip('/')}/chat/completions"
        now = self._clock()
        timeout = request_timeout_s(run)
        try:
            async with self._client.stream(
                "POST", url, content=json.dumps(body, ensure_ascii=False).encode(),
                headers=headers, timeout=timeout, follow_redirects=False,
            ) as response:
                status, text = response.status_code, await read_text(response, MAX_BODY)
                retry_after = parse_retry_after(response.headers.get("retry-after"), now)
                content_type = response.headers.get("content-type", "")
        except OutboundAddressDenied as exc:
            log.warning("llm agent address refused", reason=str(exc))
            return failed(str(exc), retryable=False)
        except httpx.TimeoutException as exc:
            log.info("llm request timed out", timeout_s=timeout)
            return failed(f"request to {url} timed out after {timeout:.1f}s "
                          f"({type(exc).__name__})", retryable=True)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return failed(f"cannot request {url!r}: {exc}", retryable=False)
        except httpx.HTTPError as exc:
            log.info("llm request failed", error=_redact(str(exc), key))
            return failed(_redact(f"request to {url} failed: {type(exc).__name__}: {exc}", key),
                          retryable=True)
        log.debug("llm answered", status=status)
        if 200 <= status < 300:
            return _completion(text, content_type, model, output_limit(cfg), log, key)
        detail = _redact(_error_detail(text), key)
        retryable = status in RETRYABLE_STATUSES or status >= 500
        if retryable:
            wait = f"; the server asked to retry after {retry_after:g}s" if retry_after else ""
            return ExecutionResult(ok=False, error=truncate(f"HTTP {status}: {detail}{wait}"),
                                   retryable=True, retry_after_s=retry_after)
        return failed(f"HTTP {status}: {detail}{_hint(status, key_env)}", retryable=False)

    async def aclose(self) -> None:
        """Close the client if this executor created it; a shared client is the caller's."""
        if self._owns_client:
            await self._client.aclose()


def _messages(cfg: dict[str, Any], run: ClaimedRun) -> list[dict[str, str]]:
    variables = {
        "id": run.run_id,
        "attempt": run.attempt,
        "agent": run.agent.name,
        "trigger_id": run.trigger_id,
        "scheduled_for": run.scheduled_for.astimezone(UTC).isoformat(),
    }
    messages = []
    system = cfg.get("system")
    if system:
        try:
            messages.append({"role": "system", "content": render(system, run.payload, variables)})
        except TemplateError as exc:
            raise TemplateError(f"(system) {exc}") from None
    messages.append({"role": "user", "content": render(str(cfg.get("prompt") or ""),
                                                       run.payload, variables)})
    return messages


def _completion(text: str, content_type: str, model: str, limit: int,
                log: FilteringBoundLogger, key: str | None) -> ExecutionResult:
    snippet = _redact(text[:ERROR_BODY_CHARS], key)
    try:
        doc = json.loads(text)
    except ValueError:
        return failed(
            f"the server answered with a body that is not JSON (content-type "
            f"{content_type or 'none'!r}): {snippet!r}; check that base_url is the API root, "
            "e.g. https://api.openai.com/v1",
            retryable=False,
        )
    try:
        message = doc["choices"][0]["message"]
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise TypeError("content is not a string")
    except (KeyError, IndexError, TypeError, AttributeError):
        return failed(f"the server's JSON has no choices[0].message.content: {snippet!r}",
                      retryable=False)
    usage = _usage(doc.get("usage") if isinstance(doc, dict) else None, model, log)
    # A server that echoes the request (a proxy, a debug endpoint) must not put the key
    # into the stored output, which every reader of the run sees.
    output = None if content is None else truncate(_redact(content, key), limit)
    return ExecutionResult(ok=True, output=output, usage=usage)


def _usage(raw: Any, model: str, log: FilteringBoundLogger) -> Usage:
    counts: dict[str, int | None] = {"prompt_tokens": None, "completion_tokens": None}
    if isinstance(raw, dict):
        for name in counts:
            value = raw.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                counts[name] = value
            elif value is not None:
                log.warning("llm usage field ignored", field=name, value=repr(value)[:100])
    if raw is None:
        log.warning("llm answer has no usage: tokens unknown", model=model)
    return Usage(input_tokens=counts["prompt_tokens"], output_tokens=counts["completion_tokens"],
                 model=model or None)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or
    None when absent or unreadable. Never negative."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _error_detail(text: str) -> str:
    """The server's own error message when it sent the OpenAI error shape, else the body."""
    try:
        doc = json.loads(text)
        message = doc["error"]["message"] if isinstance(doc["error"], dict) else doc["error"]
        if isinstance(message, str) and message:
            return message[:ERROR_BODY_CHARS]
    except (ValueError, KeyError, TypeError):
        pass
    return text[:ERROR_BODY_CHARS] or "(empty body)"


def _hint(status: int, key_env: Any) -> str:
    if status in (401, 403):
        where = f"the key in {key_env}" if key_env else "api_key_env: no key was sent"
        return f" (check {where})"
    if status == 404:
        return " (check base_url, which should end at the API root such as /v1, and model)"
    return ""


def _redact(text: str, key: str | None) -> str:
    return text.replace(key, "***") if key else text

