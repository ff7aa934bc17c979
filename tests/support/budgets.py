"""Builders for the budget and cost tests: agents with a budget and a spending history made
of real run rows (fired, claimed and finished through the store, as a node would)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from agentcron.models import Outcome, RunStatus, Usage
from agentcron.services import AgentInput, Services
from agentcron.store import RunFilter, Store


def agent_with_budget(store: Store, name: str, budget: dict[str, Any] | None, *,
                      on_budget: str | None = None, now: datetime,
                      history: Sequence[tuple[datetime, Usage]] = (),
                      **kwargs: Any) -> None:
    """Create ``name`` (a python agent), record ``history`` (each entry one finished run that
    started at the given time with the given usage), then set ``budget``: so the history may
    already be over the limit."""
    agents = Services(store).agents
    kwargs.setdefault("max_concurrency", 10)
    plain = AgentInput(name=name, kind="python", config={"target": "agentcron.examples:noop"},
                       **kwargs)
    agents.save(agents.build(plain), now)
    for at, usage in history:
        spend(store, name, at, usage)
    agents.save(agents.build(replace(plain, budget=budget, on_budget=on_budget)), now)


def spend(store: Store, agent: str, at: datetime, usage: Usage) -> str:
    """One run of ``agent`` that starts at ``at`` and finishes at once with ``usage``."""
    run_id = store.fire_now(agent, None, at)
    claimed = [r for r in store.claim_runs("history", 1000, at) if r.run_id == run_id]
    assert claimed, f"could not start the history run of {agent} at {at}"
    store.finish("history", [Outcome(run_id, claimed[0].lease, RunStatus.SUCCEEDED,
                                     usage=usage)], at)
    return run_id


def queue(store: Store, agent: str, n: int, at: datetime) -> list[str]:
    return [store.fire_now(agent, None, at) for _ in range(n)]


def statuses(store: Store, run_ids: list[str]) -> list[RunStatus]:
    return [store.get_run(run_id).status for run_id in run_ids]


def runs_of_agent(store: Store, agent: str) -> list[Any]:
    return store.list_runs(RunFilter(agent=agent), limit=10_000)
