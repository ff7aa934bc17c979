"""The llm executor against a real OpenAI-compatible server process on loopback
(``tests/llm_server.py``): real sockets, real httpx, nothing mocked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from agentcron.engine.dispatcher import outcome_for
from agentcron.executors import Executors, RunContext
from agentcron.executors.llm import LlmExecutor, parse_retry_after
from agentcron.executors.validation import validate_agent_config
from agentcron.models import AgentKind, AgentSpec, ClaimedRun, ExecutionResult, RunStatus, Usage
from agentcron.rules.ids import new_run_id
from tests.support.llm_server import LlmServer

KEY = "sk-test-0123456789abcdef-secret"


@pytest.fixture(scope="module")
def llm() -> Iterator[LlmServer]:
    server = LlmServer.start()
    try:
        yield server
    finally:
        server.stop()


def make_run(config: dict[str, Any], payload: Any = None, deadline_s: float = 30,
             max_attempts: int = 3) -> ClaimedRun:
    now = datetime.now(UTC)
    spec = AgentSpec(name="writer", kind=AgentKind.LLM, max_attempts=max_attempts,
                     config=validate_agent_config(AgentKind.LLM, config))
    return ClaimedRun(
        run_id=new_run_id(), lease=1, attempt=1, agent=spec, trigger_id="tr_llm",
        scheduled_for=datetime(2026, 3, 1, 9, 0, tzinfo=UTC), started_at=now,
        deadline_at=now + timedelta(seconds=deadline_s), payload=payload,
    )


def call(llm: LlmServer, model: str, payload: Any = None, *, env: dict[str, str] | None = None,
         deadline_s: float = 30, **config: Any) -> tuple[ExecutionResult, ClaimedRun]:
    config = {"base_url": llm.base_url, "model": model,
              "prompt": "Summarise {{ text }} for {{ channel }}", **config}
    run = make_run(config, payload, deadline_s)

    async def main() -> ExecutionResult:
        executor = LlmExecutor(environ=env if env is not None else {"LLM_KEY": KEY})
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await executor.aclose()

    return asyncio.run(main()), run


PAYLOAD = {"text": "the news of the day", "channel": "#general"}


def test_a_completion_is_the_output_and_its_usage_is_recorded_with_the_configured_model(
    llm: LlmServer,
) -> None:
    model = "echo;prompt_tokens=120;completion_tokens=30"
    result, run = call(llm, model, PAYLOAD, api_key_env="LLM_KEY", system="Be terse, {{ channel }}.",
                       temperature=0.3, max_tokens=64)
    assert result.ok, result.error
    assert result.output == "echo: Summarise the news of the day for #general"
    # The configured name, not the dated variant the server answers with: prices key on it.
    assert result.usage == Usage(input_tokens=120, output_tokens=30, model=model)
    [request] = llm.requests_for(model)
    assert request["body"] == {
        "model": model,
        "messages": [
            {"role": "system", "content": "Be terse, #general."},
            {"role": "user", "content": "Summarise the news of the day for #general"},
        ],
        "temperature": 0.3,
        "max_tokens": 64,
    }
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["user-agent"].startswith("agentcron/")
    assert run.agent.config["api_key_env"] == "LLM_KEY"  # the name is stored, never the key
    assert KEY not in repr(run.agent.config)


def test_the_template_sees_payload_keys_payload_and_run(llm: LlmServer) -> None:
    result, run = call(llm, "echo", [1, 2],
                       prompt="{{ payload | tojson }} {{ run.id }} {{ run.attempt }} {{ run.agent }}")
    assert result.output == f"echo: [1, 2] {run.run_id} 1 writer"


def test_without_api_key_env_no_authorization_header_is_sent(llm: LlmServer) -> None:
    result, _ = call(llm, "echo;anon=1", PAYLOAD)
    assert result.ok
    [request] = llm.requests_for("echo;anon=1")
    assert "authorization" not in {k.lower() for k in request["headers"]}


def test_a_missing_key_variable_fails_without_retry_and_sends_nothing(llm: LlmServer) -> None:
    result, _ = call(llm, "echo;nokey=1", PAYLOAD, env={}, api_key_env="MISSING_LLM_KEY")
    assert not result.ok and not result.retryable
    assert "MISSING_LLM_KEY" in (result.error or "") and "not set" in (result.error or "")
    assert llm.requests_for("echo;nokey=1") == []


def test_a_missing_template_variable_fails_without_retry_naming_it(llm: LlmServer) -> None:
    result, _ = call(llm, "echo;tpl=1", {"text": "x"})
    assert not result.ok and not result.retryable
    assert result.error is not None
    assert "prompt template" in result.error and "'channel' is undefined" in result.error
    assert "the payload has: text" in result.error
    assert llm.requests_for("echo;tpl=1") == []


def test_the_sandbox_refuses_python_internals(llm: LlmServer) -> None:
    result, _ = call(llm, "echo;sandbox=1", PAYLOAD,
                     prompt="{{ text.__class__.__mro__[1].__subclasses__() }}")
    assert not result.ok and not result.retryable
    assert "sandbox" in (result.error or "")
    assert llm.requests_for("echo;sandbox=1") == []


def test_429_is_retried_honouring_retry_after(llm: LlmServer) -> None:
    result, run = call(llm, "status;code=429;retry_after=7", PAYLOAD)
    assert not result.ok and result.retryable and result.retry_after_s == 7.0
    assert "HTTP 429" in (result.error or "") and "simulated HTTP 429" in (result.error or "")
    # The engine waits at least what the server asked for, even with a 1 s backoff.
    outcome = outcome_for(run, result)
    assert outcome.status is RunStatus.FAILED and outcome.retry_delay_s is not None
    assert outcome.retry_delay_s >= 7.0


def test_500_is_retried_with_the_normal_backoff(llm: LlmServer) -> None:
    result, run = call(llm, "status;code=503", PAYLOAD)
    assert not result.ok and result.retryable and result.retry_after_s is None
    delay = outcome_for(run, result).retry_delay_s
    assert delay is not None and delay <= run.agent.retry_backoff_s


def test_401_fails_without_retry_and_never_shows_the_key(llm: LlmServer) -> None:
    with structlog.testing.capture_logs() as logs:
        result, _ = call(llm, "status;code=401;echo_key=1", PAYLOAD, api_key_env="LLM_KEY")
    assert not result.ok and not result.retryable
    assert "HTTP 401" in (result.error or "") and "check the key in LLM_KEY" in (result.error or "")
    assert KEY not in (result.error or "") and "Bearer ***" in (result.error or "")
    assert KEY not in repr(logs)


def test_a_body_that_is_not_json_fails_without_retry_with_a_clear_error(llm: LlmServer) -> None:
    result, _ = call(llm, "not-json", PAYLOAD)
    assert not result.ok and not result.retryable
    assert "not JSON" in (result.error or "") and "text/html" in (result.error or "")
    assert "base_url" in (result.error or "")


def test_json_without_choices_fails_without_retry(llm: LlmServer) -> None:
    result, _ = call(llm, "no-choices", PAYLOAD)
    assert not result.ok and not result.retryable
    assert "choices[0].message.content" in (result.error or "")


def test_an_answer_without_usage_succeeds_with_unknown_tokens(llm: LlmServer) -> None:
    result, _ = call(llm, "no-usage", PAYLOAD)
    assert result.ok and result.usage == Usage(model="no-usage")


def test_a_hanging_server_times_out_at_the_run_deadline(llm: LlmServer) -> None:
    started = time.monotonic()
    result, _ = call(llm, "hang", PAYLOAD, deadline_s=1.2)
    elapsed = time.monotonic() - started
    assert not result.ok and result.retryable and "timed out" in (result.error or "")
    assert 1.0 <= elapsed < 10


def test_a_refused_connection_is_retried(llm: LlmServer) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = make_run({"base_url": f"http://127.0.0.1:{port}/v1", "model": "m", "prompt": "hi"})

    async def main() -> ExecutionResult:
        executor = LlmExecutor()
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await executor.aclose()

    result = asyncio.run(main())
    assert not result.ok and result.retryable and "ConnectError" in (result.error or "")


def test_executors_pick_the_llm_executor() -> None:
    spec = AgentSpec(name="w", kind=AgentKind.LLM, config={})
    executors = Executors()
    try:
        assert isinstance(executors.for_agent(spec), LlmExecutor)
    finally:
        asyncio.run(executors.aclose())


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("Thu, 05 Mar 2026 12:00:30 GMT", 30.0),
        ("Thu, 05 Mar 2026 11:00:00 GMT", 0.0),
        ("soon", None),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    now = datetime(2026, 3, 5, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == expected


def test_retry_after_never_shortens_the_backoff_and_is_capped() -> None:
    from agentcron.rules.retry import MAX_RETRY_DELAY_S

    run = make_run({"base_url": "http://127.0.0.1:9/v1", "model": "m", "prompt": "hi"})
    slow_backoff = ClaimedRun(**{**run.__dict__,
                                 "agent": AgentSpec(**{**run.agent.__dict__,
                                                       "retry_backoff_s": 50.0})})
    short = ExecutionResult(ok=False, error="429", retryable=True, retry_after_s=1.0)
    delay = outcome_for(slow_backoff, short).retry_delay_s
    assert delay is not None and delay >= 50.0
    huge = ExecutionResult(ok=False, error="429", retryable=True, retry_after_s=10**9)
    assert outcome_for(run, huge).retry_delay_s == MAX_RETRY_DELAY_S
    final = ClaimedRun(**{**run.__dict__, "attempt": run.agent.max_attempts})
    assert outcome_for(final, huge).retry_delay_s is None  # no attempts left: fails


def test_a_key_echoed_in_a_successful_answer_is_redacted_from_the_output(llm: LlmServer) -> None:
    result, _ = call(llm, "echo;echo_key=1", PAYLOAD, api_key_env="LLM_KEY")
    assert result.ok, result.error
    assert "you sent Bearer ***" in (result.output or "")
    assert KEY not in (result.output or "")


def test_deny_private_refuses_an_llm_base_url_on_loopback_and_never_sends_the_key(
    llm: LlmServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTCRON_HTTP_DENY_PRIVATE", "1")
    before = len(llm.requests())
    result, _ = call(llm, "echo;guarded=1", PAYLOAD, api_key_env="LLM_KEY")
    assert not result.ok and not result.retryable
    assert "127.0.0.1" in (result.error or "") and "DENY_PRIVATE" in (result.error or "")
    assert llm.requests_for("echo;guarded=1") == []
    assert len(llm.requests()) == before  # nothing reached the server, so neither did the key


def test_proxy_variables_are_ignored_by_the_llm_client(
    llm: LlmServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A proxy that does not exist: honouring it would fail the request.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    result, _ = call(llm, "echo;noproxy=1", PAYLOAD)
    assert result.ok, result.error
    assert len(llm.requests_for("echo;noproxy=1")) == 1


def test_a_template_that_loops_too_long_fails_without_retry_and_never_stalls_the_loop(
    llm: LlmServer,
) -> None:
    model = "echo;slow_template=1"
    prompt = ("{% for a in payload %}{% for b in payload %}{% for c in payload %}"
              "{% endfor %}{% endfor %}{% endfor %}")
    run = make_run({"base_url": llm.base_url, "model": model, "prompt": prompt},
                   list(range(2000)))

    async def main() -> tuple[ExecutionResult, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        executor = LlmExecutor(environ={})
        try:
            return await executor.execute(run, RunContext(run)), ticks
        finally:
            ticker.cancel()
            await executor.aclose()

    started = time.monotonic()
    result, ticks = asyncio.run(main())
    assert not result.ok and not result.retryable
    assert "prompt template" in (result.error or "") and "longer than" in (result.error or "")
    assert time.monotonic() - started < 10
    # The render ran off the event loop: other coroutines kept running meanwhile
    # (about 2 s of render at 10 ms a tick).
    assert ticks >= 20, ticks
    assert llm.requests_for(model) == []
