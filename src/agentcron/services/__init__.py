"""The service layer: the use cases every front door calls, each input validated once here,
before the store is touched. ``Services`` composes one small service per job; see
ARCHITECTURE.md."""

from agentcron.services.agents import AGENT_SETTINGS, AgentInput, Duration, agent_settings
from agentcron.services.facade import Services
from agentcron.services.triggers import (
    TRIGGER_CHANGES,
    NewTrigger,
    TriggerInput,
    input_of,
    schedule_of,
    schedule_spec_for,
    with_default_name,
)

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
