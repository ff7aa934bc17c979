"""agentcron: a durable, distributed scheduler for AI agents."""

__version__ = "0.1.0"
