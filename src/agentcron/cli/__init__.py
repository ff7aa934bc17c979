"""The ``agentcron`` command line (front door): parse arguments, call the services, render."""

from agentcron.cli.root import app, main

__all__ = ["app", "main"]
