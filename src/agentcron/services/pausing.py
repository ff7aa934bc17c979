"""Pausing and resuming many triggers at once: ``TriggerSelector`` (which, as every front door
states it) and ``PauseService``. A resume continues from now, as a resume of one trigger
does (``triggers.resume_at``): the paused period is neither run nor counted missed, unless
``catch_up`` asks for the times within each trigger's catch-up window."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from agentcron.errors import ValidationError
from agentcron.models import Trigger
from agentcron.services.triggers import resume_at
from agentcron.services.validate import check_name, has_bidi_control, now_or_store
from agentcron.store import Selection, Store

_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")


@dataclass(frozen=True)
class TriggerSelector:
    """Which triggers: an agent's, those whose name matches a glob (``nightly-*``), or
    ``all`` (which must be asked for: it is never the default)."""

    agent: str | None = None
    name: str | None = None
    all: bool = False

    def selection(self) -> Selection:
        """The store's selection; ``ValidationError`` unless exactly one way (or an agent
        and a name pattern together) is given."""
        if self.all and (self.agent is not None or self.name is not None):
            raise ValidationError("all", "--all selects every trigger, but --agent or "
                                  "--name was given too", "drop --all, or the others")
        if not self.all and self.agent is None and self.name is None:
            raise ValidationError("selection", "no triggers selected",
                                  "give a trigger, --agent NAME, --name 'GLOB*' or --all")
        if self.agent is not None:
            check_name(self.agent, "agent")
        if self.name is not None and (not isinstance(self.name, str)
                                      or not _PATTERN.match(self.name)
                                      or has_bidi_control(self.name)):
            raise ValidationError("name", f"{str(self.name)[:100]!r} is not a name pattern",
                                  "1-100 printable characters; * matches any characters, "
                                  "? one")
        return Selection(agent=self.agent, pattern=self.name)


class PauseService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def count(self, selector: TriggerSelector, paused: bool | None = None) -> int:
        """How many triggers ``selector`` selects (only paused or unpaused ones, if given):
        what a pause or resume would touch, for a confirmation."""
        return self.store.count_triggers(selector.selection(), paused)

    def pause(self, selector: TriggerSelector, now: datetime | None = None) -> list[str]:
        """Pause the selected triggers that are not paused; returns their ids."""
        return self.store.pause_triggers(selector.selection(), now)

    def resume(self, selector: TriggerSelector, now: datetime | None = None, *,
               catch_up: bool = False) -> list[str]:
        """Resume the selected paused triggers from now (or with ``catch_up``); clears the
        circuit breaker's reason and count. Returns their ids."""
        selection = selector.selection()
        at = now_or_store(self.store, now)

        def next_fire(trigger: Trigger, _: datetime) -> datetime | None:
            try:
                return resume_at(trigger, at, catch_up)
            except ValidationError:
                # A stored schedule that does not parse: one broken trigger must not stop
                # the rest. It keeps its time, and firing quarantines it again.
                return trigger.next_fire_at

        return self.store.resume_triggers(selection, next_fire, at)
