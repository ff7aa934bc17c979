"""``Executors``: the node's executors, one per agent kind, created on first use and shared.

Owns the thread pool sync Python agents run in and, unless the engine passes its own, the HTTP
client. ``aclose`` releases both; call it once, after every run task has finished. ``clock``
(default the host's) is what the http and llm agents read the current UTC time from.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from datetime import datetime

import httpx

from agentcron.errors import ValidationError
from agentcron.executors.base import Executor
from agentcron.executors.command import CommandExecutor
from agentcron.executors.http import HttpExecutor
from agentcron.executors.llm import LlmExecutor
from agentcron.executors.python import PythonExecutor
from agentcron.executors.registry import AgentRegistry
from agentcron.models import AgentKind, AgentSpec


class Executors:
    """Picks the executor for an agent.

    ``thread_pool_size`` bounds how many sync Python agents run at once on this node; a sync
    run beyond it waits for a free thread while its timeout already runs, so size it at least
    to the node's concurrent-run limit. ``http_client`` is the node's shared client, if any:
    it is used, not closed.
    """

    def __init__(
        self,
        registry: AgentRegistry | None = None,
        thread_pool_size: int = 32,
        *,
        http_client: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.registry = registry or AgentRegistry()
        self._clock = clock
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=thread_pool_size, thread_name_prefix="agentcron-agent"
        )
        self._http_client = http_client
        self._executors: dict[AgentKind, Executor] = {}

    def for_agent(self, spec: AgentSpec) -> Executor:
        """The shared executor for ``spec.kind``; ``ValidationError`` for an unknown kind."""
        # Asked once per run: a str-valued member hashes as its value, so no enum call.
        executor = self._executors.get(spec.kind)
        if executor is None:
            try:
                kind = AgentKind(spec.kind)
            except ValueError:
                raise ValidationError("kind", f"unknown agent kind {spec.kind!r}") from None
            executor = self._executors[kind] = self._create(kind)
        return executor

    def _create(self, kind: AgentKind) -> Executor:
        if kind is AgentKind.PYTHON:
            return PythonExecutor(self.registry, self._pool)
        if kind is AgentKind.COMMAND:
            return CommandExecutor()
        if kind is AgentKind.REMOTE:
            # The store never hands a node a remote run; this is the belt to its braces.
            raise ValidationError("kind", "a remote agent's runs are run by workers that "
                                  "pull them over HTTP, never by a node")
        if kind is AgentKind.LLM:
            if self._clock is not None:
                return LlmExecutor(self._http_client, clock=self._clock)
            return LlmExecutor(self._http_client)
        if self._clock is not None:
            return HttpExecutor(self._http_client, clock=self._clock)
        return HttpExecutor(self._http_client)

    async def aclose(self) -> None:
        """Close every executor, then the thread pool without waiting for its threads.

        Queued sync calls are dropped; a sync agent already running keeps its thread until it
        returns (Python cannot stop a thread), and interpreter exit waits for it.
        """
        executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            await executor.aclose()
        self._pool.shutdown(wait=False, cancel_futures=True)
