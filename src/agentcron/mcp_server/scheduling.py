"""The one way a trigger is made over MCP, so what it records about its maker is decided in
one place: its ``source`` is ``mcp``, and its maker the calling token."""

from __future__ import annotations

from datetime import datetime

from agentcron.mcp_server.callers import McpCaller
from agentcron.models import Trigger
from agentcron.services import Services
from agentcron.services.trigger_input import TriggerInput

#: The ``source`` of every trigger made over MCP.
SOURCE = "mcp"


def created_by(caller: McpCaller) -> str:
    """The provenance of a trigger ``caller`` makes: ``mcp:<token name>``."""
    return f"{SOURCE}:{caller.name}"


def create_trigger(services: Services, caller: McpCaller, spec: TriggerInput,
                   now: datetime | None = None) -> Trigger:
    """Make the trigger ``spec`` states for ``caller`` (blocking: call it in a thread), as
    of ``now`` (default: the database's clock).

    The caller must be allowed to change schedules and to act on ``spec.agent``
    (``McpRefused`` otherwise); the trigger service validates the rest (``ValidationError``
    naming the field, nothing written). A webhook trigger is refused: its secret would be
    handed to a model."""
    caller.check_change("create_trigger")
    caller.check_agent(spec.agent)
    trigger, _secret = services.create_trigger(spec, now, SOURCE,
                                                created_by=created_by(caller))
    return trigger
