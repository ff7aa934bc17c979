"""Python executor: real functions, the real thread pool, real cancellation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.errors import ValidationError
from agentcron.executors import AgentRegistry, Executors, PermanentError, RunContext
from agentcron.executors.base import truncate
from agentcron.executors.python import PythonExecutor
from agentcron.executors.registry import IMPORT_HINT, resolve_target
from agentcron.models import AgentKind, AgentSpec, ClaimedRun, ExecutionResult, Usage
from agentcron.rules.ids import new_run_id


def make_run(config: dict[str, Any], payload: Any = None) -> ClaimedRun:
    now = datetime.now(UTC)
    spec = AgentSpec(name="py-agent", kind=AgentKind.PYTHON, config=config)
    return ClaimedRun(
        run_id=new_run_id(),
        lease=1,
        attempt=2,
        agent=spec,
        trigger_id="tr_abc",
        scheduled_for=now.replace(microsecond=0),
        started_at=now,
        deadline_at=now + timedelta(seconds=60),
        payload=payload,
    )


@pytest.fixture
def pool() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    with concurrent.futures.ThreadPoolExecutor(4) as p:
        yield p


@pytest.fixture
def registry() -> AgentRegistry:
    return AgentRegistry()


def execute(
    registry: AgentRegistry,
    pool: concurrent.futures.ThreadPoolExecutor,
    fn: Callable[..., Any],
    payload: Any = None,
    **config: Any,
) -> tuple[ExecutionResult, RunContext]:
    """Register ``fn``, run it once, return the result and the context it got."""
    registry.register("job", fn)

    async def main() -> tuple[ExecutionResult, RunContext]:
        run = make_run({"target": "job", **config}, payload)
        ctx = RunContext(run)
        return await PythonExecutor(registry, pool).execute(run, ctx), ctx

    return asyncio.run(main())


def test_sync_function_gets_ctx_and_its_return_value_is_json(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    seen: dict[str, Any] = {}

    def job(ctx: RunContext) -> dict[str, Any]:
        seen.update(
            thread=threading.current_thread().name, run_id=ctx.run_id, key=ctx.idempotency_key
        )
        seen.update(attempt=ctx.attempt, agent=ctx.agent, trigger=ctx.trigger_id)
        return {"doubled": ctx.payload["n"] * 2, "when": datetime(2026, 1, 2, tzinfo=UTC)}

    result, ctx = execute(registry, pool, job, payload={"n": 21})
    assert result.ok and result.error is None
    assert result.output == '{"doubled": 42, "when": "2026-01-02 00:00:00+00:00"}'
    assert result.usage is None
    assert seen["thread"] != threading.main_thread().name  # sync code ran off the loop
    assert seen["run_id"] == seen["key"] == ctx.run_id
    assert (seen["attempt"], seen["agent"], seen["trigger"]) == (2, "py-agent", "tr_abc")


def test_async_function_is_awaited_on_the_loop(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    async def job(ctx: RunContext) -> str:
        await asyncio.sleep(0)
        return f"hello {ctx.payload}"

    result, _ = execute(registry, pool, job, payload="world")
    assert result == ExecutionResult(ok=True, output="hello world")


def test_zero_argument_function_and_none_output(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    calls: list[int] = []

    def job() -> None:
        calls.append(1)

    result, _ = execute(registry, pool, job)
    assert result.ok and result.output is None and calls == [1]


def test_output_is_capped_with_a_marker(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    result, _ = execute(registry, pool, lambda: "x" * 5000, output_limit=100)
    assert result.output == truncate("x" * 5000, 100)
    assert result.output is not None and result.output.startswith("x" * 100 + "\n[agentcron:")
    assert "4900 more chars" in result.output


def test_exception_fails_retryable_with_type_message_and_frames(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    def parse_payload(value: str) -> int:
        return int(value)

    def job(ctx: RunContext) -> int:
        return parse_payload(ctx.payload)

    result, _ = execute(registry, pool, job, payload="not a number")
    assert not result.ok and result.retryable
    assert result.error is not None
    assert result.error.startswith("ValueError: invalid literal for int() with base 10")
    assert "in parse_payload" in result.error and "Traceback" in result.error


def test_permanent_error_is_not_retried(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    async def job(ctx: RunContext) -> None:
        raise PermanentError("payload has no 'url'")

    result, _ = execute(registry, pool, job)
    assert not result.ok and not result.retryable
    assert result.error is not None and result.error.startswith("PermanentError: payload has no")


def test_sys_exit_in_agent_code_fails_the_run_not_the_node(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    result, _ = execute(registry, pool, lambda: sys.exit(3))
    assert not result.ok and result.error is not None and result.error.startswith("SystemExit: 3")


def test_record_usage_accumulates_across_threads(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    def job(ctx: RunContext) -> str:
        def record() -> None:
            for _ in range(100):
                ctx.record_usage(input_tokens=1, output_tokens=2, cost_usd=0.5)

        threads = [threading.Thread(target=record) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ctx.record_usage(model="gpt-test")
        return "done"

    result, ctx = execute(registry, pool, job)
    expected = Usage(input_tokens=400, output_tokens=800, cost_usd=200.0, model="gpt-test")
    assert result.usage == expected == ctx.usage


def test_usage_is_kept_when_the_agent_fails(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    def job(ctx: RunContext) -> None:
        ctx.record_usage(input_tokens=10)
        raise RuntimeError("model said no")

    result, _ = execute(registry, pool, job)
    assert not result.ok and result.usage == Usage(input_tokens=10)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"input_tokens": True}, "input_tokens"),
        ({"cost_usd": -0.01}, "cost_usd"),
        ({"cost_usd": float("nan")}, "cost_usd"),
        ({"cost_usd": "1"}, "cost_usd"),
        ({"model": 4}, "model"),
    ],
)
def test_record_usage_rejects_bad_values_naming_the_argument(
    kwargs: dict[str, Any], name: str
) -> None:
    ctx = RunContext(make_run({"target": "job"}))
    with pytest.raises(ValueError, match=name):
        ctx.record_usage(**kwargs)
    assert ctx.usage == Usage()


def test_cancelling_a_sync_agent_sets_cancel_event_for_its_thread(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    started, stopped = threading.Event(), threading.Event()

    def job(ctx: RunContext) -> str:
        started.set()
        # Cooperative sync code: waits for work or for cancellation.
        if ctx.cancel_event.wait(timeout=30):
            stopped.set()
            return "stopped"
        return "finished"

    registry.register("job", job)

    async def main() -> RunContext:
        run = make_run({"target": "job"})
        ctx = RunContext(run)
        task = asyncio.create_task(PythonExecutor(registry, pool).execute(run, ctx))
        assert await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return ctx

    ctx = asyncio.run(main())
    assert ctx.cancelled and ctx.cancel_reason == "cancelled"
    assert stopped.wait(10)


def test_cancel_returns_promptly_even_if_the_thread_ignores_it(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    started, release = threading.Event(), threading.Event()

    def stubborn() -> None:
        started.set()
        release.wait(30)  # ignores ctx.cancel_event

    registry.register("job", stubborn)

    async def main() -> float:
        run = make_run({"target": "job"})
        ctx = RunContext(run)
        ctx.cancel("timeout")  # the engine's reason wins over the executor's
        task = asyncio.create_task(PythonExecutor(registry, pool).execute(run, ctx))
        assert await asyncio.to_thread(started.wait, 10)
        begin = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ctx.cancel_reason == "timeout"
        return time.monotonic() - begin

    try:
        assert asyncio.run(main()) < 1.0
    finally:
        release.set()


def test_cancelling_an_async_agent(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    cleaned: list[bool] = []

    async def job(ctx: RunContext) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append(ctx.cancelled)

    registry.register("job", job)

    async def main() -> RunContext:
        run = make_run({"target": "job"})
        ctx = RunContext(run)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(PythonExecutor(registry, pool).execute(run, ctx), 0.05)
        return ctx

    assert asyncio.run(main()).cancelled
    assert len(cleaned) == 1  # the coroutine was cancelled where it awaited and cleaned up


def test_heartbeat_from_a_worker_thread_reaches_the_loop_thread(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    def job(ctx: RunContext) -> None:
        ctx.heartbeat("step 1")
        ctx.heartbeat("x" * 5000)
        ctx.heartbeat()

    registry.register("job", job)
    beats: list[tuple[str | None, int]] = []

    async def main() -> int:
        run = make_run({"target": "job"})
        ctx = RunContext(run, lambda p: beats.append((p, threading.get_ident())))
        result = await PythonExecutor(registry, pool).execute(run, ctx)
        # Handed over in order before the thread's result, so already delivered here.
        assert result.ok and len(beats) == 3
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert [p if p is None else p[:10] for p, _ in beats] == ["step 1", "x" * 10, None]
    assert len(beats[1][0] or "") == 1000
    assert {t for _, t in beats} == {loop_thread}


def test_heartbeat_never_raises_into_agent_code() -> None:
    def broken(progress: str | None) -> None:
        raise RuntimeError("database down")

    ctx = RunContext(make_run({"target": "job"}), broken)
    ctx.heartbeat("still here")  # outside a loop: called directly, error logged and dropped


def test_import_path_targets(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    registry: AgentRegistry,
    pool: concurrent.futures.ThreadPoolExecutor,
) -> None:
    module = tmp_path / "agentcron_test_jobs.py"
    module.write_text(
        "class Jobs:\n"
        "    @staticmethod\n"
        "    def triple(ctx):\n"
        "        return ctx.payload * 3\n"
        "def double(ctx):\n"
        "    return ctx.payload * 2\n"
        "NOT_CALLABLE = 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    async def main(target: str) -> ExecutionResult:
        run = make_run({"target": target}, payload=7)
        return await PythonExecutor(registry, pool).execute(run, RunContext(run))

    assert asyncio.run(main("agentcron_test_jobs:double")).output == "14"
    assert asyncio.run(main("agentcron_test_jobs:Jobs.triple")).output == "21"
    missing = asyncio.run(main("agentcron_test_jobs:nope"))
    assert not missing.ok and not missing.retryable
    assert missing.error == (
        "python: cannot import 'agentcron_test_jobs:nope': 'nope' not found in "
        f"agentcron_test_jobs ({IMPORT_HINT})"
    )
    not_callable = asyncio.run(main("agentcron_test_jobs:NOT_CALLABLE"))
    assert not_callable.error is not None and "int object is not callable" in not_callable.error


def test_resolve_target_errors_name_the_reason() -> None:
    with pytest.raises(ValidationError) as info:
        resolve_target("agentcron_no_such_module:run")
    assert info.value.field == "python"
    assert info.value.message.startswith(
        "cannot import 'agentcron_no_such_module:run': ModuleNotFoundError"
    )
    assert info.value.hint == IMPORT_HINT
    with pytest.raises(ValidationError, match="expected 'module:function'"):
        resolve_target("no_colon")
    assert resolve_target("json:dumps") is __import__("json").dumps


def test_registry_name_wins_over_import_path(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    registry.register("json:dumps", lambda: "registered")

    async def main() -> ExecutionResult:
        run = make_run({"target": "json:dumps"})
        return await PythonExecutor(registry, pool).execute(run, RunContext(run))

    assert asyncio.run(main()).output == "registered"


def test_registry_refuses_a_second_function_under_a_taken_name(registry: AgentRegistry) -> None:
    def one() -> None: ...

    def two() -> None: ...

    registry.register("a", one)
    registry.register("a", one)
    with pytest.raises(ValidationError, match="already registered"):
        registry.register("a", two)
    assert registry.get("a") is one and registry.get("b") is None
    assert registry.names() == ["a"]


def test_a_function_with_two_required_parameters_fails_without_retry(
    registry: AgentRegistry, pool: concurrent.futures.ThreadPoolExecutor
) -> None:
    def job(ctx: RunContext, other: int) -> None: ...

    result, _ = execute(registry, pool, job)
    assert not result.ok and not result.retryable
    assert result.error is not None and "takes required parameters ['ctx', 'other']" in result.error


def test_executors_share_one_executor_per_kind() -> None:
    async def main() -> None:
        executors = Executors(thread_pool_size=2)
        py = AgentSpec(name="a", kind=AgentKind.PYTHON, config={"target": "m:f"})
        py2 = AgentSpec(name="b", kind=AgentKind.PYTHON, config={"target": "m:g"})
        cmd = AgentSpec(name="c", kind=AgentKind.COMMAND, config={"argv": ["true"]})
        http = AgentSpec(name="d", kind=AgentKind.HTTP, config={"url": "http://x"})
        assert executors.for_agent(py) is executors.for_agent(py2)
        assert executors.for_agent(cmd) is not executors.for_agent(py)
        assert executors.for_agent(http) is executors.for_agent(http)
        await executors.aclose()

    asyncio.run(main())
