"""The service layer: the use cases every front door calls, each input validated once here,
before the store is touched. See ARCHITECTURE.md."""

from agentcron.services.facade import (
    Duration,
    Services,
    TriggerInput,
    input_of,
    schedule_of,
    schedule_spec_for,
    with_default_name,
)

__all__ = [
    "Duration",
    "Services",
    "TriggerInput",
    "input_of",
    "schedule_of",
    "schedule_spec_for",
    "with_default_name",
]
