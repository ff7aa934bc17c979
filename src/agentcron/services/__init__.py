"""The service layer: the use cases every front door calls, each input validated once here,
before the store is touched. See ARCHITECTURE.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "Duration",
    "Services",
    "TriggerInput",
    "input_of",
    "schedule_of",
    "schedule_spec_for",
    "with_default_name",
]

if TYPE_CHECKING:
    from agentcron.services.facade import (
        Duration,
        Services,
        TriggerInput,
        input_of,
        schedule_of,
        schedule_spec_for,
        with_default_name,
    )


def __getattr__(name: str) -> Any:
    # Lazy, because the command line imports ``services.documents`` at start-up and the
    # facade brings in the store and SQLAlchemy: ``agentcron --help`` stays quick.
    if name in __all__:
        from agentcron.services import facade

        return getattr(facade, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
