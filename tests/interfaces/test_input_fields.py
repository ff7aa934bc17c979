"""The fields each front door takes are the service layer's inputs, by the same names: a
field added to ``AgentInput`` or ``TriggerInput`` and not to a front door (or the other way
round) fails here, not in a user's hands."""

from __future__ import annotations

from dataclasses import fields

from agentcron.api.schemas import AgentBody, BudgetBody, TriggerChange, TriggerCreate
from agentcron.rules.budgets import BUDGET_KEYS
from agentcron.services import AGENT_SETTINGS, TRIGGER_CHANGES, AgentInput, TriggerInput
from agentcron.services.agents_file import AgentEntry, TriggerEntry


def test_the_api_agent_body_is_agent_input_with_on_budget_inside_the_budget() -> None:
    assert set(AgentBody.model_fields) == {"kind", "config", *AGENT_SETTINGS} - {"on_budget"}
    assert set(BudgetBody.model_fields) == {*BUDGET_KEYS, "on_budget"}


def test_the_agents_file_has_every_agent_setting() -> None:
    assert set(AGENT_SETTINGS) <= set(AgentEntry.model_fields)


def test_api_trigger_bodies_are_trigger_input() -> None:
    assert set(TriggerChange.model_fields) == set(TRIGGER_CHANGES)
    assert set(TriggerCreate.model_fields) == {*TRIGGER_CHANGES, "agent", "webhook"}


def test_an_agents_file_trigger_is_a_trigger_input_without_the_webhook() -> None:
    stated = {f.name for f in fields(TriggerInput)} - {"agent", "payload_is_json_text",
                                                       "webhook"}
    assert set(TriggerEntry.model_fields) == stated


def test_agent_settings_are_agent_input_but_what_it_is() -> None:
    assert set(AGENT_SETTINGS) == {f.name for f in fields(AgentInput)} - {"name", "kind",
                                                                         "config"}
