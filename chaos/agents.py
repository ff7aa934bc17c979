"""In-process agents some scenarios run next to the http agent (importable by the nodes,
whose PYTHONPATH holds the repository)."""

from __future__ import annotations

from agentcron.executors import RunContext


async def noop(ctx: RunContext) -> None:
    """Does nothing: a run whose whole cost is the engine's own (fire, claim, finish)."""
    return None
