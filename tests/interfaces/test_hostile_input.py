"""Times outside the accepted range and hostile JSON are refused by every front door with a
``ValidationError`` naming the field (CLI exit 2), and nothing is written: the service layer
on SQLite and PostgreSQL, the CLI, the agents file, the Python API and signed webhooks."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentcron import Agentcron
from agentcron.errors import ValidationError
from agentcron.services import AgentInput, Services, TriggerInput
from agentcron.services.agents_file import load_agents_file
from agentcron.store import Store
from tests.conftest import T0, Cli
from tests.support.helpers import add_agent
from tests.support.hostile import HOSTILE_TEXT, nested
from tests.support.webhooks import headers, webhook

# Each class of hostile value, as a Python value.
HOSTILE: dict[str, Any] = {
    "deep": nested(65),
    "very deep": nested(100_000),
    "lone surrogate": {"text": "\ud800"},
    "lone surrogate key": {"\udfff": 1},
    "NaN": {"x": float("nan")},
    "Infinity": [float("inf")],
    "huge": {"blob": "x" * (256 * 1024)},
    "not JSON": {"when": T0},
}
OUT_OF_RANGE = ["0999-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "9001-01-01T00:00:00Z",
                "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]


def test_the_edges_of_the_range_are_accepted(store: Store) -> None:
    add_agent(store, "a", T0)
    services = Services(store)
    early = services.add_trigger(TriggerInput(agent="a", every="1h",
                                              start="1970-01-01T00:00:00Z"), T0)
    late = services.add_trigger(TriggerInput(agent="a", at="9000-12-31T23:59:59Z"), T0)
    assert early.start_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert late.at == datetime(9000, 12, 31, 23, 59, 59, tzinfo=UTC)


@pytest.mark.parametrize("when", OUT_OF_RANGE)
@pytest.mark.parametrize("field", ["start", "end", "at"])
def test_times_outside_the_range_are_refused(store: Store, field: str, when: str) -> None:
    add_agent(store, "a", T0)
    schedule: dict[str, Any] = {} if field == "at" else {"every": "1m"}
    with pytest.raises(ValidationError) as info:
        Services(store).add_trigger(TriggerInput(agent="a", **{field: when}, **schedule), T0)
    assert info.value.field == field
    assert "1970-01-01" in (info.value.hint or "")
    assert store.list_triggers() == []


@pytest.mark.parametrize("field", ["start", "at"])
def test_datetimes_outside_the_range_are_refused(store: Store, field: str) -> None:
    add_agent(store, "a", T0)
    schedule: dict[str, Any] = {} if field == "at" else {"every": "1m"}
    when = datetime(999, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError) as info:
        Services(store).add_trigger(TriggerInput(agent="a", **{field: when}, **schedule), T0)
    assert info.value.field == field
    assert store.list_triggers() == []


def test_run_filters_outside_the_range_are_refused(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        Services(store).runs.page(since=datetime(1, 1, 1, tzinfo=UTC))
    assert info.value.field == "since"


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_payloads_are_refused(store: Store, kind: str) -> None:
    add_agent(store, "a", T0)
    services = Services(store)
    with pytest.raises(ValidationError) as info:
        services.add_trigger(TriggerInput(agent="a", every="1m", payload=HOSTILE[kind]), T0)
    assert info.value.field == "payload"
    with pytest.raises(ValidationError) as fired:
        services.fire("a", HOSTILE[kind], now=T0)
    assert fired.value.field == "payload"
    assert store.list_triggers() == [] and store.list_runs() == []


@pytest.mark.parametrize("kind", sorted(HOSTILE_TEXT))
def test_hostile_json_text_is_refused(store: Store, kind: str) -> None:
    add_agent(store, "a", T0)
    services = Services(store)
    with pytest.raises(ValidationError) as info:
        services.add_trigger(TriggerInput(agent="a", every="1m", payload=HOSTILE_TEXT[kind],
                                          payload_is_json_text=True), T0)
    assert info.value.field == "payload"
    assert store.list_triggers() == []


def test_a_payload_64_deep_is_accepted(store: Store) -> None:
    add_agent(store, "a", T0)
    trigger = Services(store).add_trigger(TriggerInput(agent="a", every="1m",
                                                       payload=nested(64)), T0)
    assert store.get_trigger(trigger.id).payload == nested(64)


@pytest.mark.parametrize("kind", sorted(HOSTILE_TEXT))
def test_hostile_signed_webhook_bodies_are_refused(store: Store, kind: str) -> None:
    trigger_id, secret = webhook(store)
    body = HOSTILE_TEXT[kind].encode("utf-8", "surrogatepass")
    with pytest.raises(ValidationError) as info:
        Services(store).receive_webhook(trigger_id, headers(secret, "m1", body), body, now=T0)
    assert info.value.field == "body"
    assert store.list_runs() == []


@pytest.mark.parametrize("args", [
    ["--at", "9999-12-31T23:59:59-12:00"],
    ["--every", "1s", "--start", "0999-01-01T00:00:00Z"],
    ["--every", "1s", "--end", "9001-01-01T00:00:00Z"],
])
def test_the_cli_refuses_times_outside_the_range(cli: Cli, args: list[str]) -> None:
    assert cli("agents", "add", "bot", "--python", "myapp.jobs:run").exit_code == 0
    result = cli("triggers", "add", "bot", *args)
    field = args[-2].lstrip("-")
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert result.stderr.startswith(f"error: {field}: "), result.stderr
    listed = cli("triggers", "list", "--json")
    assert json.loads(listed.stdout) == []


@pytest.mark.parametrize("kind", ["deep", "very deep", "lone surrogate", "NaN", "Infinity"])
def test_the_cli_refuses_hostile_payloads(cli: Cli, kind: str) -> None:
    assert cli("agents", "add", "bot", "--python", "myapp.jobs:run").exit_code == 0
    for args in (["triggers", "add", "bot", "--every", "1m"], ["fire", "bot"]):
        result = cli(*args, "--payload", HOSTILE_TEXT[kind])
        assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
        assert result.stderr.startswith("error: payload: "), result.stderr
    assert json.loads(cli("runs", "list", "--json").stdout) == []


@pytest.mark.parametrize(("line", "field"), [
    ('every = "1m"\nstart = 0999-01-01T00:00:00Z', "start"),
    ('at = 9000-12-31T23:59:59-12:00', "at"),
    ('every = "1m"\npayload = {x = nan}', "payload"),
    ('every = "1m"\npayload = {x = -inf}', "payload"),
    ('every = "1m"\npayload = {when = 2026-01-01}', "payload"),
    ('every = "1m"\npayload = ' + "[" * 65 + "]" * 65, "payload"),
])
def test_the_agents_file_refuses_hostile_values(store: Store, tmp_path: Path, line: str,
                                                field: str) -> None:
    path = tmp_path / "agents.toml"
    path.write_text(textwrap.dedent("""
        [agents.a]
        command = "true"
        [[agents.a.triggers]]
    """) + line + "\n")
    with pytest.raises(ValidationError) as info:
        Services(store).sync_agents_file(load_agents_file(path), now=T0)
    assert info.value.field.endswith(f"agents.a.triggers[0].{field}")
    assert store.list_agents() == [] and store.list_triggers() == []


def test_the_python_api_refuses_hostile_values(tmp_path: Path) -> None:
    app = Agentcron(f"sqlite:///{tmp_path}/hub.db", api=False)
    app.agent()(test_the_python_api_refuses_hostile_values)
    app.sync()
    for kind in ("deep", "lone surrogate", "NaN", "huge"):
        with pytest.raises(ValidationError, match="payload"):
            app.fire("test_the_python_api_refuses_hostile_values", HOSTILE[kind])
    app.schedule("test_the_python_api_refuses_hostile_values", every="1m",
                 start=datetime(1000, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="start"):
        app.sync()


@pytest.mark.parametrize("kind", ["deep", "lone surrogate", "NaN", "huge"])
def test_hostile_agent_configs_are_refused(store: Store, kind: str) -> None:
    agents = Services(store).agents
    config = {"target": "agentcron.examples:noop", "extra": HOSTILE[kind]}
    with pytest.raises(ValidationError) as info:
        agents.build(AgentInput(name="a", kind="python", config=config))
    assert info.value.field == "config"


@pytest.mark.parametrize("name", ["report\u202egnp.exe", "a\u2066b", "x\u200fy", "lone\ud800"])
def test_names_and_descriptions_with_bidi_controls_are_refused(store: Store, name: str
                                                               ) -> None:
    add_agent(store, "a", T0)
    with pytest.raises(ValidationError) as info:
        Services(store).add_trigger(TriggerInput(agent="a", every="1m", name=name), T0)
    assert info.value.field == "name"
    agents = Services(store).agents
    with pytest.raises(ValidationError) as described:
        agents.build(AgentInput(name="b", kind="python", description=name,
                                config={"target": "agentcron.examples:noop"}))
    assert described.value.field == "description"
    assert store.list_triggers() == []


def test_the_cli_refuses_a_trigger_name_with_a_bidi_control(cli: Cli) -> None:
    assert cli("agents", "add", "bot", "--python", "myapp.jobs:run").exit_code == 0
    result = cli("triggers", "add", "bot", "--every", "1m", "--name", "daily\u202etxt.sh")
    assert result.exit_code == 2 and result.stderr.startswith("error: name: ")
