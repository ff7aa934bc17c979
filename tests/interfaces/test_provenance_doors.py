"""Provenance through every front door: the CLI (``cli``), the agents file (``file``), the
Python API (``python``), the HTTP API (``api:<token name>``); the ``--created-by`` /
``?created_by=`` filters; approving a pending trigger in the CLI, the API and the
dashboard, and the dashboard's filter by who made a trigger (a run-made one linking to its
run); an agent's scheduling policy in the agents file and the API. In-process, both
backends where a store is used directly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agentcron.api.app import create_app
from agentcron.errors import ValidationError
from agentcron.services import Services, TriggerInput
from agentcron.services.access import Access
from agentcron.services.agents_file import load_agents_file
from agentcron.store import Store
from tests.conftest import Cli
from tests.support.dashboard import BASE, session_client, sign_in
from tests.support.helpers import add_agent, mcp_trigger, stored_agent

HELLO = {"kind": "python", "config": {"target": "agentcron.examples:hello"}}


def _api(store: Store, token_name: str, requests: list[tuple[str, str, Any]]
         ) -> list[httpx.Response]:
    _, token = Access(store).create_token(token_name, "admin")
    app = create_app(store, "provenance-node")

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            return [await client.request(method, path, json=body)
                    for method, path, body in requests]

    return asyncio.run(main())


def test_the_cli_records_cli_and_lists_and_filters_by_it(ok: Callable[..., str],
                                                         db_url: str) -> None:
    ok("agents", "add", "bot", "--python", "agentcron.examples:noop")
    trigger_id = ok("triggers", "add", "bot", "--every", "10m").strip()
    store = Store(db_url)
    try:
        mcp_trigger(store, TriggerInput(agent="bot", every="1h"))
    finally:
        store.close()
    listed = json.loads(ok("triggers", "list", "--json"))
    assert {t["id"]: t["created_by"] for t in listed}[trigger_id] == "cli"
    assert sorted(t["created_by"] for t in listed) == ["cli", "mcp:desk"]
    only_mcp = json.loads(ok("triggers", "list", "--created-by", "mcp:", "--json"))
    assert [t["created_by"] for t in only_mcp] == ["mcp:desk"]
    assert only_mcp[0]["expires_at"] is not None
    table = ok("triggers", "list")
    assert "CREATED BY" in table and "mcp:desk" in table
    shown = json.loads(ok("triggers", "show", trigger_id, "--json"))
    assert shown["created_by"] == "cli"
    assert shown["chain"] == [{"trigger_id": trigger_id, "agent": "bot",
                               "created_by": "cli", "run_id": None}]


def test_the_agents_file_records_file_and_its_scheduling_policy(store: Store,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('''
[agents.watcher]
python = "agentcron.examples:noop"

[agents.watcher.scheduling]
may_schedule = ["watcher", "notify"]
min_interval = "5m"
max_live = 7
expires_after = "2d"
require_approval = true

[[agents.watcher.triggers]]
every = "1h"
''')
    Services(store).sync_agents_file(load_agents_file(path))
    [trigger] = store.list_triggers("watcher")
    assert (trigger.created_by, trigger.source) == ("file", "file")
    policy = store.get_agent("watcher").scheduling
    assert (policy.may_schedule, policy.min_interval_s, policy.max_live,
            policy.expires_after_s, policy.require_approval) == (
        ("watcher", "notify"), 300.0, 7, 172800.0, True)


def test_a_bad_scheduling_setting_names_its_field(store: Store, tmp_path: Path) -> None:
    from agentcron.errors import ValidationError

    path = tmp_path / "agents.toml"
    path.write_text('[agents.w]\npython = "agentcron.examples:noop"\n'
                    '[agents.w.scheduling]\nmax_live = -1\n')
    with pytest.raises(ValidationError) as refused:
        Services(store).sync_agents_file(load_agents_file(path))
    assert "scheduling.max_live" in str(refused.value)
    assert store.list_agents() == []


def test_the_python_api_records_python(store: Store) -> None:
    from agentcron.python_api import CREATED_BY, SOURCE
    from agentcron.services import AgentInput

    Services(store).declared.apply(
        SOURCE, [AgentInput(name="py", kind="python",
                            config={"target": "agentcron.examples:noop"})],
        [TriggerInput(agent="py", every="1h")], created_by=CREATED_BY)
    [trigger] = store.list_triggers("py")
    assert trigger.created_by == "python"


def test_the_python_api_declares_what_its_agents_may_schedule(tmp_path: Path) -> None:
    """The scheduling policy is a keyword of ``@app.agent`` as it is a table of the agents
    file, validated by the same parser (a bad value names ``scheduling.<field>``)."""
    from agentcron import Agentcron

    url = f"sqlite:///{tmp_path}/py.db"
    app = Agentcron(db=url)
    app.agent("watch", scheduling={"may_schedule": ["watch", "notify"], "max_live": 3,
                                   "min_interval": "5m", "require_approval": True})(_watch)
    app.sync()
    policy = stored_agent(url, "watch").scheduling
    assert (policy.may_schedule, policy.max_live, policy.min_interval_s,
            policy.require_approval) == (("watch", "notify"), 3, 300.0, True)
    bad = Agentcron(db=url)
    bad.agent("watch", scheduling={"max_live": -1})(_watch)
    with pytest.raises(ValidationError, match=r"^scheduling\.max_live: invalid -1"):
        bad.sync()


def _watch() -> None:
    return None


def test_the_api_records_the_token_name_and_filters(store: Store) -> None:
    responses = _api(store, "deployer", [
        ("PUT", "/api/v1/agents/a", {**HELLO, "scheduling": {"max_live": 5,
                                                             "min_interval": "2m"}}),
        ("POST", "/api/v1/triggers", {"agent": "a", "every": "10m"}),
        ("POST", "/api/v1/triggers/batch", {"triggers": [{"agent": "a", "every": "1h"}]}),
        ("GET", "/api/v1/triggers?created_by=api:", None),
        ("GET", "/api/v1/triggers?created_by=cli", None),
    ])
    put, one, batch, by_api, by_cli = responses
    assert put.status_code == 200, put.text
    assert put.json()["scheduling"]["max_live"] == 5
    assert put.json()["scheduling"]["min_interval"] == 120.0
    assert one.status_code == 201, one.text
    assert one.json()["created_by"] == "api:deployer"
    assert batch.json()["triggers"][0]["created_by"] == "api:deployer"
    assert by_api.json()["total"] == 2
    assert by_cli.json()["total"] == 0
    shown, = _api(store, "reader", [("GET", f"/api/v1/triggers/{one.json()['id']}", None)])
    assert shown.json()["chain"][0]["created_by"] == "api:deployer"


def test_approve_in_the_api_and_a_resume_refused_while_pending(store: Store) -> None:
    add_agent(store, "a", scheduling={"require_approval": True})
    pending = mcp_trigger(store, TriggerInput(agent="a", every="1h"))
    resumed, approved, again = _api(store, "ops", [
        ("POST", f"/api/v1/triggers/{pending.id}/resume", None),
        ("POST", f"/api/v1/triggers/{pending.id}/approve", None),
        ("POST", f"/api/v1/triggers/{pending.id}/approve", None),
    ])
    assert resumed.status_code == 409, resumed.text
    assert "awaiting approval" in resumed.json()["detail"]
    assert f"/api/v1/triggers/{pending.id}/approve" in resumed.json()["detail"]
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["approval"], body["paused"], body["paused_reason"]) == (
        "approved", False, None)
    assert body["next_fire_at"] is not None
    assert again.status_code == 409


def test_approve_in_the_cli(ok: Callable[..., str], cli: Cli, db_url: str) -> None:
    ok("agents", "add", "bot", "--python", "agentcron.examples:noop")
    store = Store(db_url)
    try:
        add_agent(store, "bot", scheduling={"require_approval": True})
        pending = mcp_trigger(store, TriggerInput(agent="bot", every="1h"))
    finally:
        store.close()
    refused = cli("triggers", "resume", pending.id)
    assert refused.exit_code != 0
    assert f"agentcron triggers approve {pending.id}" in refused.stderr
    assert "approved" in ok("triggers", "approve", pending.id)
    shown = json.loads(ok("triggers", "show", pending.id, "--json"))
    assert (shown["approval"], shown["paused"]) == ("approved", False)


def test_the_dashboard_shows_provenance_and_approves(store: Store) -> None:
    add_agent(store, "a", scheduling={"require_approval": True})
    pending = mcp_trigger(store, TriggerInput(agent="a", every="1h"))

    async def main() -> None:
        client, token = session_client(store)
        async with client:
            _, csrf = await sign_in(client, token)
            page = await client.get("/triggers")
            assert "mcp:desk" in page.text and "pending" in page.text
            assert f"/triggers/{pending.id}/approve" in page.text
            done = await client.post(f"/triggers/{pending.id}/approve",
                                     data={"csrf": csrf, "next": "/triggers"},
                                     headers={"Origin": BASE})
            assert done.status_code == 303, done.text
            note = parse_qs(urlsplit(done.headers["location"]).query)["note"][0]
            assert note.startswith(f"trigger {pending.id} approved")
            after = await client.get("/triggers")
            assert f"/triggers/{pending.id}/approve" not in after.text

    asyncio.run(main())
    assert store.get_trigger(pending.id).approval == "approved"
    assert store.get_trigger(pending.id).next_fire_at is not None


def test_the_dashboard_filters_by_who_made_a_trigger_and_links_a_run_made_one(
        store: Store) -> None:
    add_agent(store, "a")
    services = Services(store)
    by_cli = services.triggers.add(TriggerInput(agent="a", every="1h"))
    by_mcp = mcp_trigger(store, TriggerInput(agent="a", every="2h"))
    parent = store.fire_now("a")
    by_run = services.triggers.add(TriggerInput(agent="a", every="3h"), source="run",
                                   created_by=f"run:{parent}")

    async def main() -> tuple[str, str, str]:
        client, token = session_client(store)
        async with client:
            await sign_in(client, token)
            return tuple([(await client.get("/triggers", params={"created_by": who})).text
                          for who in ("mcp:", "run:", "")])  # type: ignore[return-value]

    mcp_only, run_only, every = asyncio.run(main())
    assert by_mcp.id in mcp_only and by_cli.id not in mcp_only and by_run.id not in mcp_only
    assert 'name="created_by" value="mcp:"' in mcp_only
    assert by_run.id in run_only and by_mcp.id not in run_only
    assert f'href="/runs/{parent}"' in run_only  # followed back to the run that made it
    assert all(t.id in every for t in (by_cli, by_mcp, by_run))


def test_the_cli_sets_an_agents_scheduling_policy(ok: Callable[..., str]) -> None:
    shown = json.loads(ok("agents", "add", "watcher", "--python", "agentcron.examples:noop",
                          "--may-schedule", "watcher", "--may-schedule", "notify",
                          "--min-interval", "10m", "--max-live", "3", "--expires-after",
                          "7d", "--require-approval", "--json"))
    assert shown["scheduling"] == {"may_schedule": ["watcher", "notify"],
                                   "min_interval": 600.0, "max_live": 3,
                                   "expires_after": 604800.0, "require_approval": True}
    plain = json.loads(ok("agents", "add", "plain", "--python", "agentcron.examples:noop",
                          "--json"))
    assert plain["scheduling"] == {"may_schedule": None, "min_interval": 60.0,
                                   "max_live": 100, "expires_after": 2592000.0,
                                   "require_approval": False}
