"""Python agents: a callable run in this process.

The target (``config["target"]``) is looked up in the ``AgentRegistry`` by name, else imported
as ``module:function``. The callable is called as ``fn(ctx)`` when it takes a positional
parameter and as ``fn()`` when it takes none. Coroutine functions are awaited on the event loop;
plain functions run in the shared thread pool so they cannot block the loop; their results
come back to the loop in batches (``executors/threads.py``), not one wake-up per run.

Cancellation: the engine cancels the task. A coroutine is cancelled where it awaits. A sync
function cannot be interrupted by Python: ``ctx.cancel_event`` is set so code that checks it
(``ctx.cancelled``) can stop, and ``execute`` re-raises ``CancelledError`` at once. The thread
itself keeps running until the function returns, holding a pool slot, and whatever it
returns then is discarded. A sync call that waits for a free pool thread waits inside its run,
so its timeout is already running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import json
import traceback
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from agentcron.errors import ValidationError
from agentcron.executors.base import PermanentError, failed, merge_usage, output_limit, truncate
from agentcron.executors.context import RunContext
from agentcron.executors.registry import AgentRegistry, resolve_target
from agentcron.executors.threads import ThreadCalls
from agentcron.models import ClaimedRun, ExecutionResult

_log: FilteringBoundLogger = structlog.get_logger(__name__)

TRACEBACK_FRAMES = 8
"""How many of the innermost traceback frames an error keeps: where it failed, not the engine."""


class PythonExecutor:
    """Runs Python agents. ``thread_pool`` is owned by the caller, who shuts it down."""

    def __init__(
        self, registry: AgentRegistry, thread_pool: concurrent.futures.ThreadPoolExecutor
    ) -> None:
        self._registry = registry
        self._pool = thread_pool
        # Results come back to the loop in batches: one wake-up for many finished calls.
        self._calls = ThreadCalls(thread_pool)

    async def execute(self, run: ClaimedRun, ctx: RunContext) -> ExecutionResult:
        limit = output_limit(run.agent.config)
        target = run.agent.config.get("target")
        if not isinstance(target, str) or not target:
            return failed("python agent has no 'target' in its config", retryable=False)
        try:
            fn = await self._resolve(target)
            call_ctx = _takes_ctx(fn)
        except ValidationError as exc:
            return failed(str(exc), retryable=False)
        args: tuple[Any, ...] = (ctx,) if call_ctx else ()
        _log.debug("python agent starting", target=target, run_id=run.run_id,
                   agent=run.agent.name, attempt=run.attempt)
        try:
            if _is_async(fn):
                value = await fn(*args)
            else:
                value = await self._in_thread(fn, args, ctx)
        except asyncio.CancelledError:
            # Tell code still running in the worker thread (or shielded) to stop.
            ctx.cancel("cancelled")
            raise
        except (Exception, SystemExit) as exc:  # SystemExit: sys.exit() in agent code fails the run
            retryable = not isinstance(exc, PermanentError)
            _log.info("python agent failed", error=repr(exc)[:200], retryable=retryable,
                      run_id=run.run_id, agent=run.agent.name, attempt=run.attempt)
            return replace(failed(_describe(exc), retryable=retryable,
                                  usage=merge_usage(ctx.usage, None)),
                           schedule=ctx.follow_ups)
        output = _render(value)
        return ExecutionResult(
            ok=True,
            output=None if output is None else truncate(output, limit),
            usage=merge_usage(ctx.usage, None),
            schedule=ctx.follow_ups,
        )

    async def aclose(self) -> None:
        """Nothing to release: the thread pool belongs to the caller."""

    async def _resolve(self, target: str) -> Callable[..., Any]:
        fn = self._registry.lookup(target)
        if fn is not None:
            return fn
        # First import of a module runs its top-level code: keep that off the event loop.
        loop = asyncio.get_running_loop()
        fn = await loop.run_in_executor(self._pool, resolve_target, target)
        _log.debug("imported python agent target", target=target)
        return fn

    async def _in_thread(
        self, fn: Callable[..., Any], args: tuple[Any, ...], ctx: RunContext
    ) -> Any:
        # Copy the context so contextvars (structlog's bound context included) reach the thread.
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        value = await self._calls.run(call)
        if inspect.isawaitable(value):  # a sync wrapper around a coroutine function
            value = await value
        return value


@functools.lru_cache(maxsize=1024)
def _takes_ctx(fn: Callable[..., Any]) -> bool:
    """True for ``fn(ctx)``, False for ``fn()``; ValidationError for anything else.
    Cached: inspect.signature per run was 7% of a busy node's CPU."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: assume fn(ctx)
        return True
    positional = [
        p
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    required = [
        p
        for p in params
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if len(required) > 1 or any(p.kind is p.KEYWORD_ONLY for p in required):
        raise ValidationError(
            "python",
            f"{getattr(fn, '__qualname__', fn)!r} takes required parameters "
            f"{[p.name for p in required]}",
            "an agent function takes one parameter (ctx) or none",
        )
    return bool(positional)


@functools.lru_cache(maxsize=1024)
def _is_async(fn: Callable[..., Any]) -> bool:
    """Cached like ``_takes_ctx``: asked once per run of a busy node."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    )


def _render(value: Any) -> str | None:
    """The stored output for a return value: str as is, None as none, else JSON."""
    if value is None or isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):  # circular references and the like
        return repr(value)


def _describe(exc: BaseException) -> str:
    """``"ValueError: message"`` then the innermost frames, so the error says where."""
    head = f"{type(exc).__name__}: {exc}"
    frames = traceback.format_exception(exc, limit=-TRACEBACK_FRAMES)
    return head + "\n\n" + "".join(frames).rstrip()
