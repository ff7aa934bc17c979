"""Executors: how agents run. The engine calls ``Executors.for_agent(spec).execute(run, ctx)``.

Agent code sees a ``RunContext``; Python agents raise ``PermanentError`` to fail without retry.
"""

from agentcron.executors.base import OUTPUT_LIMIT, Executor, PermanentError
from agentcron.executors.context import RunContext
from agentcron.executors.kinds import Executors
from agentcron.executors.registry import AgentRegistry

__all__ = ["OUTPUT_LIMIT", "AgentRegistry", "Executor", "Executors", "PermanentError", "RunContext"]
