"""agentcron: a durable, distributed scheduler for AI agents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Agentcron", "PermanentError", "RunContext", "__version__"]

if TYPE_CHECKING:
    from agentcron.executors import PermanentError, RunContext
    from agentcron.python_api import Agentcron


def __getattr__(name: str) -> Any:
    # Lazy, so `import agentcron` (and the CLI's start-up) stays cheap.
    if name == "Agentcron":
        from agentcron.python_api import Agentcron

        return Agentcron
    if name in ("RunContext", "PermanentError"):
        from agentcron import executors

        return getattr(executors, name)
    raise AttributeError(name)
