"""Small builders shared by the store and engine tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agentcron.models import AgentSpec, Trigger
from agentcron.services import AgentInput, Services, TriggerInput
from agentcron.store import Store


def add_agent(store: Store, name: str = "a", now: datetime | None = None,
              **kwargs: Any) -> AgentSpec:
    """A python agent running ``agentcron.examples:noop``; ``kwargs`` are ``AgentInput``
    settings."""
    agents = Services(store).agents
    spec = AgentInput(name=name, kind="python", config={"target": "agentcron.examples:noop"},
                      **kwargs)
    return agents.save(agents.build(spec), now)


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


def race(stores: list[Store], work: Callable[[Store, int], Any]) -> list[Any]:
    """Run ``work(store, i)`` for every store in its own thread, all released at once by a
    barrier (separate engines, as separate nodes have); errors are raised here."""
    barrier = threading.Barrier(len(stores))
    results: list[Any] = [None] * len(stores)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(stores[i], i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results
