"""The service layer: the use cases every front door calls, each input validated once here,
before the store is touched. ``Services`` composes one small service per job; see
ARCHITECTURE.md."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentcron.services.agents import AGENT_SETTINGS, AgentInput, Duration, agent_settings
    from agentcron.services.facade import Services
    from agentcron.services.trigger_input import (
        TRIGGER_CHANGES,
        NewTrigger,
        TriggerInput,
        input_of,
        with_default_name,
    )
    from agentcron.services.triggers import schedule_of, schedule_spec_for

_HOMES = {
    "AGENT_SETTINGS": "agents",
    "AgentInput": "agents",
    "Duration": "agents",
    "agent_settings": "agents",
    "Services": "facade",
    "TRIGGER_CHANGES": "trigger_input",
    "NewTrigger": "trigger_input",
    "TriggerInput": "trigger_input",
    "input_of": "trigger_input",
    "schedule_of": "triggers",
    "schedule_spec_for": "triggers",
    "with_default_name": "trigger_input",
}
__all__ = [
    "AGENT_SETTINGS",
    "TRIGGER_CHANGES",
    "AgentInput",
    "Duration",
    "NewTrigger",
    "Services",
    "TriggerInput",
    "agent_settings",
    "input_of",
    "schedule_of",
    "schedule_spec_for",
    "with_default_name",
]


def __getattr__(name: str) -> Any:
    # Lazy, because the command line imports ``services.documents`` at start-up and the
    # services bring in the store and SQLAlchemy: ``agentcron --help`` stays quick.
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"agentcron.services.{home}"), name)
