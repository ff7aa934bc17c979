"""Small builders shared by the store and engine tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agentcron.models import AgentSpec, Trigger
from agentcron.services import Services, TriggerInput
from agentcron.store import Store


def add_agent(store: Store, name: str = "a", now: datetime | None = None,
              **kwargs: Any) -> AgentSpec:
    services = Services(store)
    spec = services.build_agent(name, "python", {"target": "agentcron.examples:noop"}, **kwargs)
    return services.add_agent(spec, now)


def add_trigger(store: Store, now: datetime, agent: str = "a", **kwargs: Any) -> Trigger:
    return Services(store).add_trigger(TriggerInput(agent=agent, **kwargs), now)


def runs_of(store: Store, trigger_id: str | None = None) -> list[Any]:
    from agentcron.store import RunFilter

    return store.list_runs(RunFilter(trigger_id=trigger_id), limit=10_000)


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0,
               message: str = "condition") -> Any:
    """Wait for a condition the system under test will make true (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.02)
