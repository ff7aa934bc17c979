"""The API's response models and the JSON documents both front doors show must not drift,
and the documents stay light enough for the command line's start-up. (That no front door
imports another is checked by ``tests/unit/test_layers.py``.)

A response model is built from its document (``services.documents``) and pydantic drops a
key the model does not declare, silently: that is how the API once lost agents' budgets.
So for agents, triggers, runs (with their events) and nodes, documents built from real rows
in a real store must have exactly the keys of their model, in the model's order (the order
the API answers in), and nested models (a run's events, an agent's budget when it has a
model) are checked the same way.
"""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from agentcron.api.schemas import AgentOut, NodeOut, RunDetail, RunOut, TriggerOut
from agentcron.models import Usage
from agentcron.services import Services
from agentcron.services.documents import (
    agent_json,
    node_json,
    run_detail_json,
    run_json,
    trigger_json,
)
from agentcron.store import NodeInfo, Store
from tests.support.budgets import agent_with_budget, spend
from tests.support.helpers import add_trigger

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The response model inside ``annotation`` (``X``, ``X | None``, ``list[X]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType, list):
        for arg in get_args(annotation):
            found = nested_model(arg)
            if found is not None:
                return found
    return None


def drift(document: dict[str, Any], model: type[BaseModel], where: str) -> Iterator[str]:
    """Each way ``document`` differs from ``model``: missing or extra keys, another order,
    and the same for every nested document that has a model."""
    declared = list(model.model_fields)
    shown = list(document)
    missing = [k for k in shown if k not in declared]
    extra = [k for k in declared if k not in shown]
    if missing:
        yield f"{where}: the document has {missing}, {model.__name__} does not declare them"
    if extra:
        yield f"{where}: {model.__name__} declares {extra}, the document has no such key"
    if not missing and not extra and shown != declared:
        yield f"{where}: keys in another order than {model.__name__}: {shown} != {declared}"
    for name, field in model.model_fields.items():
        inner = nested_model(field.annotation)
        if inner is None or name not in document:
            continue
        value = document[name]
        if value is None or value == []:
            yield (f"{where}.{name} is empty, so its keys go unchecked: build the rows with "
                   "a value there")
            continue
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            yield from drift(item, inner, f"{where}.{name}[{i}]")


@pytest.fixture
def rows(store: Store) -> Services:
    """One of each: an agent with a budget, triggers of each kind (one paused, one with a
    window), a run that finished with usage and one cancelled, and a node."""
    services = Services(store)
    agent_with_budget(store, "writer", {"tokens_per_day": 1000, "usd_per_month": 5},
                      on_budget="pause", now=NOW, description="writes", zombie_timeout="2m")
    spend(store, "writer", NOW - timedelta(minutes=5), Usage(10, 20, 0.01, "m-1"))
    cancelled = services.fire("writer", {"topic": "x"}, now=NOW)
    services.cancel_run(cancelled, NOW)
    add_trigger(store, NOW, agent="writer", cron="0 9 * * 1-5", tz="Europe/Paris",
                payload={"a": 1}, name="weekdays", jitter="5s")
    add_trigger(store, NOW, agent="writer", every="1h", start=NOW + timedelta(hours=1),
                end=NOW + timedelta(days=7), paused=True)
    add_trigger(store, NOW, agent="writer", at=NOW + timedelta(days=1))
    store.register_node(NodeInfo(id="n1", hostname="h", pid=1, version="t",
                                 zombie_timeout_s=30), NOW)
    return services


def test_agent_documents_match_agent_out(store: Store, rows: Services) -> None:
    agents = store.list_agents()
    assert agents and all(a.budget is not None for a in agents)
    assert [p for a in agents for p in drift(agent_json(a), AgentOut, a.name)] == []


def test_trigger_documents_match_trigger_out(store: Store, rows: Services) -> None:
    paused = next(t for t in store.list_triggers() if t.paused)
    # Quarantined (as firing would), so that the nested "broken" document is checked too.
    store.update_trigger(paused.id, {"paused": True, "broken_at": NOW,
                                     "broken_reason": "ValueError: bad"}, NOW)
    triggers = store.list_triggers()
    assert {t.kind.value for t in triggers} >= {"cron", "interval", "once"}
    assert [t.id for t in triggers if t.broken_at is not None] == [paused.id]
    problems = [p for t in triggers
                for p in drift(trigger_json(t, rows.describe(t)), TriggerOut, t.id)
                # A healthy trigger's "broken" is null by contract.
                if not (t.broken_at is None and p.startswith(f"{t.id}.broken is empty"))]
    assert problems == []


def test_run_documents_match_run_out_and_run_detail(store: Store, rows: Services) -> None:
    page = rows.list_runs(limit=100)
    assert len(page.runs) == 2
    problems = [p for r in page.runs for p in drift(run_json(r), RunOut, r.id)]
    details = [rows.get_run(r.id) for r in page.runs]
    with_events = [(run, events) for run, events in details if events]
    assert with_events, "no run has events to check"
    for run, events in with_events:
        problems += drift(run_detail_json(run, events), RunDetail, run.id)
    assert problems == []


def test_node_documents_match_node_out(store: Store, rows: Services) -> None:
    nodes = rows.nodes(NOW)
    assert nodes
    assert [p for n, alive in nodes for p in drift(node_json(n, alive), NodeOut, n.id)] == []


def test_the_api_answers_with_the_documents_unchanged(store: Store, rows: Services) -> None:
    """Beyond the keys: a response model gives back the values of its document, so
    ``--json`` and the API show the same thing."""
    for agent in store.list_agents():
        assert AgentOut.of(agent).model_dump(mode="json") == agent_json(agent)
    for t in store.list_triggers():
        description = rows.describe(t)
        assert (TriggerOut.of(t, description).model_dump(mode="json")
                == trigger_json(t, description))
    for listed in rows.list_runs(limit=100).runs:
        run, events = rows.get_run(listed.id)
        assert RunOut.of(run).model_dump(mode="json") == run_json(run)
        assert (RunDetail.with_events(run, events).model_dump(mode="json")
                == run_detail_json(run, events))
    for node, alive in rows.nodes(NOW):
        assert NodeOut.of(node, alive).model_dump(mode="json") == node_json(node, alive)


def test_the_documents_load_without_the_store_or_the_web_framework() -> None:
    """The command line imports them at start-up; ``--help`` must stay quick."""
    heavy = ("sqlalchemy", "fastapi", "pydantic", "agentcron.store", "agentcron.api",
             "agentcron.cli")
    code = ("import sys, agentcron.services.documents; "
            f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.strip()
    assert loaded == "[]"
