"""Executors: how agents run. The engine calls ``Executors.for_agent(spec).execute(run, ctx)``.

Agent code sees a ``RunContext``; Python agents raise ``PermanentError`` to fail without retry.
"""

from agentcron.agents.base import OUTPUT_LIMIT, Executor, PermanentError
from agentcron.agents.context import RunContext
from agentcron.agents.executors import Executors
from agentcron.agents.registry import AgentRegistry

__all__ = ["OUTPUT_LIMIT", "AgentRegistry", "Executor", "Executors", "PermanentError", "RunContext"]
