"""An llm agent's templates are checked against a trigger's static payload when the trigger
is created (CLI, API, agents file), so a missing variable is refused, not a failed run."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcron.errors import ValidationError
from agentcron.services import Services, TriggerInput
from agentcron.services.agents_file import load_agents_file
from agentcron.store import Store
from tests.conftest import T0

CONFIG = {"base_url": "http://127.0.0.1:9/v1", "model": "m",
          "prompt": "Summarise {{ text }} for {{ channel }}", "system": "Hi {{ run.agent }}"}


def _llm_agent(store: Store, **config: object) -> None:
    services = Services(store)
    services.add_agent(services.build_agent("writer", "llm", {**CONFIG, **config}), T0)


def test_a_payload_missing_a_template_variable_is_refused(sqlite_store: Store) -> None:
    _llm_agent(sqlite_store)
    with pytest.raises(ValidationError) as info:
        Services(sqlite_store).add_trigger(
            TriggerInput(agent="writer", every="1h", payload={"text": "x"}), T0)
    assert info.value.field == "payload"
    assert "'channel' is undefined" in str(info.value) and "prompt template" in str(info.value)
    assert sqlite_store.list_triggers() == []


def test_a_complete_payload_is_accepted(sqlite_store: Store) -> None:
    _llm_agent(sqlite_store)
    trigger = Services(sqlite_store).add_trigger(
        TriggerInput(agent="writer", every="1h", payload={"text": "x", "channel": "#c"}), T0)
    assert trigger.payload == {"text": "x", "channel": "#c"}


def test_the_system_template_is_checked_too(sqlite_store: Store) -> None:
    _llm_agent(sqlite_store, system="Write for {{ audience }}")
    with pytest.raises(ValidationError, match="system template"):
        Services(sqlite_store).add_trigger(
            TriggerInput(agent="writer", every="1h", payload={"text": "x", "channel": "#c"}),
            T0)


def test_other_agent_kinds_are_not_checked(sqlite_store: Store) -> None:
    services = Services(sqlite_store)
    services.add_agent(services.build_agent("py", "python", {"target": "m:f"}), T0)
    services.add_trigger(TriggerInput(agent="py", every="1h", payload={"any": 1}), T0)


def test_the_agents_file_reports_the_trigger_by_its_place(sqlite_store: Store,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('''
[agents.writer]
llm = "m"
base_url = "http://127.0.0.1:9/v1"
prompt = "Summarise {{ text }}"

[[agents.writer.triggers]]
every = "1h"
payload = { txt = "typo" }
''')
    with pytest.raises(ValidationError) as info:
        Services(sqlite_store).sync_agents_file(load_agents_file(path), now=T0)
    assert info.value.field == "agents.writer.triggers[0].payload"
    assert "'text' is undefined" in str(info.value) and "the payload has: txt" in str(info.value)
    assert sqlite_store.list_agents() == []  # nothing written


def test_llm_settings_on_another_kind_of_agent_are_refused(sqlite_store: Store,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.x]\ncommand = "echo"\nprompt = "hi"\n')
    with pytest.raises(ValidationError) as info:
        Services(sqlite_store).sync_agents_file(load_agents_file(path), now=T0)
    assert info.value.field == "agents.x.prompt" and "llm agents" in str(info.value)


def test_a_bad_budget_in_the_file_names_its_place(sqlite_store: Store, tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.x]\ncommand = "echo"\nbudget = { usd_per_day = -1 }\n')
    with pytest.raises(ValidationError) as info:
        Services(sqlite_store).sync_agents_file(load_agents_file(path), now=T0)
    assert info.value.field == "agents.x.budget.usd_per_day"
