"""Alert rules through every front door: the CLI (Rich table and --json), the HTTP API,
the agents file and the dashboard build the same ``AlertRuleInput`` and get the same
errors naming the field; the alerts list shows what the outbox holds."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from agentcron.api.app import create_app
from agentcron.cli import app
from agentcron.errors import ValidationError
from agentcron.models import AlertKind
from agentcron.services import Services
from agentcron.services.access import Access
from agentcron.services.agents_file import load_agents_file
from agentcron.services.alerts import AlertRuleInput
from agentcron.store import Store
from agentcron.store.alerts import raise_alert
from tests.support.dashboard import session_client, sign_in
from tests.support.helpers import add_agent, add_trigger

Cli = Callable[..., Result]
_tokens = itertools.count()


@pytest.fixture
def cli_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    store = Store(url)
    store.upgrade()
    add_agent(store, "a")
    store.close()
    return url


def _cli(url: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", url, *args])


def test_cli_adds_lists_and_removes_rules_and_lists_alerts(cli_db: str) -> None:
    store = Store(cli_db)
    trigger = add_trigger(store, store.now(), every="1m", name="minutely")
    added = _cli(cli_db, "alerts", "rules", "add", "a", "--on", "consecutive_failures",
                 "--threshold", "3", "--trigger", "minutely", "--channel",
                 "https://hooks.example.com/x?token=s3cret", "--channel",
                 "slack://TokenA/TokenB/TokenC", "--json")
    assert added.exit_code == 0, added.output
    rule = json.loads(added.stdout)
    assert (rule["kind"], rule["trigger_id"], rule["threshold"]) == (
        "consecutive_failures", trigger.id, 3)
    assert "s3cret" not in added.stdout and "TokenA" not in added.stdout
    table = _cli(cli_db, "alerts", "rules", "list")
    assert rule["id"] in table.stdout and "consecutive_failures" in table.stdout.replace(
        "\n", "")
    listed = json.loads(_cli(cli_db, "alerts", "rules", "list", "--json").stdout)
    assert [r["id"] for r in listed] == [rule["id"]]

    bad = _cli(cli_db, "alerts", "rules", "add", "a", "--on", "consecutive_failures",
               "--channel", "https://x.example")
    assert bad.exit_code != 0 and "threshold" in bad.output and "Traceback" not in bad.output
    bad = _cli(cli_db, "alerts", "rules", "add", "a", "--on", "failed", "--channel", "nope")
    assert bad.exit_code != 0 and "channels[0]" in bad.output

    with store.engine.begin() as conn:
        raise_alert(conn, AlertKind.CONSECUTIVE_FAILURES, "a", trigger.id, None, "3 failed",
                    store.now())
    alerts = json.loads(_cli(cli_db, "alerts", "list", "--json").stdout)
    assert [(a["kind"], a["reason"], a["status"]) for a in alerts] == [
        ("consecutive_failures", "3 failed", "open")]
    assert "consecutive_failures" in _cli(cli_db, "alerts", "list").stdout.replace("\n", "")
    assert _cli(cli_db, "alerts", "rules", "rm", rule["id"]).exit_code == 0
    assert json.loads(_cli(cli_db, "alerts", "list", "--json").stdout) == []
    store.close()


def _api(store: Store, requests: list[tuple[str, str, Any]], scope: str = "admin"
         ) -> list[httpx.Response]:
    _, token = Access(store).create_token(f"alerts-{next(_tokens)}", scope)
    api = create_app(store, "alerts-node")

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                     base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            return [await client.request(method, path, json=body)
                    for method, path, body in requests]

    return asyncio.run(main())


def test_api_creates_lists_and_deletes_rules(store: Store) -> None:
    add_agent(store, "a")
    body = {"agent": "a", "kind": "dead_man", "after": "90m",
            "channels": ["ntfy://ntfy.sh/topic"], "webhook_secret": "whsec_MfKQ9r8GKYqr"}
    created, listed, alerts = _api(store, [
        ("POST", "/api/v1/alert-rules", body),
        ("GET", "/api/v1/alert-rules", None),
        ("GET", "/api/v1/alerts", None),
    ])
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["after_s"] == 5400 and rule["webhook_signed"] is True
    assert "whsec" not in created.text and rule["channels"] == ["ntfy://********"]
    assert listed.json() == [rule] and alerts.json() == []
    bad, unknown, deleted = _api(store, [
        ("POST", "/api/v1/alert-rules", {**body, "after": "2x"}),
        ("POST", "/api/v1/alert-rules", {**body, "agent": "ghost"}),
        ("DELETE", f"/api/v1/alert-rules/{rule['id']}", None),
    ])
    assert bad.status_code == 422 and bad.json()["field"] == "after"
    assert unknown.status_code == 422 and unknown.json()["field"] == "agent"
    assert deleted.status_code == 200 and store.alert_rules() == []
    [refused] = _api(store, [("POST", "/api/v1/alert-rules", body)], scope="read")
    assert refused.status_code == 403


def test_agents_file_rules_sync_and_errors_name_their_place(store: Store,
                                                            tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('''
[agents.a]
python = "agentcron.examples:noop"

[[agents.a.triggers]]
name = "minutely"
every = "1m"

[[agents.a.alerts]]
on = "dead_man"
trigger = "minutely"
after = "2x"
channels = ["json://127.0.0.1:9/"]

[[agents.a.alerts]]
on = "failed"
channels = ["https://hooks.example.com/a"]
''')
    svc = Services(store)
    svc.sync_agents_file(load_agents_file(path))
    first = {(r.kind.value, r.trigger_id is not None, r.interval_factor, r.source)
             for r in store.alert_rules()}
    assert first == {("dead_man", True, 2.0, "file"), ("failed", False, None, "file")}
    ids = {r.id for r in store.alert_rules()}
    svc.sync_agents_file(load_agents_file(path))  # unchanged: the same rules, kept
    assert {r.id for r in store.alert_rules()} == ids

    path.write_text(path.read_text().replace('trigger = "minutely"', 'trigger = "hourly"'))
    with pytest.raises(ValidationError) as err:
        svc.sync_agents_file(load_agents_file(path))
    assert "agents.a.alerts[0]" in str(err.value) and "hourly" in str(err.value)
    assert {r.id for r in store.alert_rules()} == ids  # nothing written

    path.write_text(path.read_text().replace('on = "failed"', 'on = "failed"\ngroup_windw = 1'))
    with pytest.raises(ValidationError) as err:
        load_agents_file(path)
    assert "agents.a.alerts[1]" in str(err.value)
    assert "did you mean 'group_window'" in str(err.value)


def test_dashboard_shows_alerts_and_rules(store: Store) -> None:
    add_agent(store, "a")
    rule = Services(store).alerts.add(AlertRuleInput(agent="a", kind="paused",
                                                     channels=["json://127.0.0.1:9/"]))
    with store.engine.begin() as conn:
        raise_alert(conn, AlertKind.PAUSED, "a", None, None, "paused <b>now</b>", store.now())

    async def main() -> str:
        client, token = session_client(store, "read")
        async with client:
            await sign_in(client, token)
            page = await client.get("/alerts")
            assert page.status_code == 200
            return page.text

    text = asyncio.run(main())
    assert rule.id in text and "paused &lt;b&gt;now&lt;/b&gt;" in text
    assert 'href="/alerts"' in text
