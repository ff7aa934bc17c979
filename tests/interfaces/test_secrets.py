"""Secrets stay secret through both front doors: every secret value of an agent is masked in
every listing for every scope, a document sent back as shown keeps the stored secrets, and a
mask is never stored as if it were the secret."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from structlog.testing import capture_logs

from agentcron.server import check_secrets_at_rest
from agentcron.services import AgentInput, Services
from agentcron.services.documents import SECRET_MASK, mask_url
from agentcron.services.opening import open_store
from agentcron.store import Store
from agentcron.store.schema import agents
from agentcron.store.secrets import SECRET_KEY_ENV, SecretBox
from tests.conftest import Cli
from tests.support.api_server import ApiServer, api_server

SIGNING = "whsec_" + base64.b64encode(bytes(range(32))).decode()
SECRET_VALUES = ("hunter2", "Bearer sk-header", "sk-env-value", SIGNING, "qs-token")
HTTP_AGENT = {
    "kind": "http",
    "config": {
        "url": "https://bot:hunter2@agents.example/run?api_key=qs-token&v=2",
        "secret": SIGNING,
        "headers": {"Authorization": "Bearer sk-header"},
    },
}
COMMAND_AGENT = {
    "kind": "command",
    "config": {"command": "env", "env": {"DB_PASSWORD": "sk-env-value"},
               "inherit_env": ["OPENAI_API_KEY"]},
}


def assert_masked(text: str) -> None:
    for value in SECRET_VALUES:
        assert value not in text


def test_mask_url_hides_credentials_and_credential_parameters_only() -> None:
    assert mask_url("https://u:p@h.example:8443/x?a=1") == (
        f"https://{SECRET_MASK}@h.example:8443/x?a=1")
    assert mask_url("https://h.example/x?token=t&page=2") == (
        f"https://h.example/x?token={SECRET_MASK}&page=2")
    assert mask_url("https://h.example/run?page=2") == "https://h.example/run?page=2"


# -- the API, with a read token -------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(pg_url, tmp_path_factory.mktemp("secrets")) as server:
        yield server


@pytest.mark.slow
@pytest.mark.postgres
def test_every_api_listing_masks_secrets_for_every_scope(srv: ApiServer) -> None:
    with srv.client("admin") as admin:
        for name, body in (("web", HTTP_AGENT), ("sh", COMMAND_AGENT)):
            created = admin.put(f"/api/v1/agents/{name}", json=body)
            assert created.status_code == 200, created.text
            assert_masked(created.text)
    for scope in ("read", "write", "admin"):
        with srv.client(scope) as client:
            listing = client.get("/api/v1/agents")
            assert listing.status_code == 200
            assert_masked(listing.text)
            web = client.get("/api/v1/agents/web").json()["config"]
            sh = client.get("/api/v1/agents/sh").json()["config"]
            assert_masked(client.get("/api/v1/agents/web").text)
    assert web["secret"] == SECRET_MASK
    assert web["headers"] == {"Authorization": SECRET_MASK}
    assert web["url"] == f"https://{SECRET_MASK}@agents.example/run?api_key={SECRET_MASK}&v=2"
    assert sh["env"] == {"DB_PASSWORD": SECRET_MASK}
    assert sh["inherit_env"] == ["OPENAI_API_KEY"]  # names are not secrets


@pytest.mark.slow
@pytest.mark.postgres
def test_a_shown_agent_put_back_keeps_its_secrets(srv: ApiServer) -> None:
    with srv.client("admin") as admin:
        assert admin.put("/api/v1/agents/roundtrip", json=HTTP_AGENT).status_code == 200
        shown = admin.get("/api/v1/agents/roundtrip").json()
        body = {"kind": shown["kind"], "config": shown["config"], "description": "changed"}
        again = admin.put("/api/v1/agents/roundtrip", json=body)
        assert again.status_code == 200, again.text
        assert srv.store.get_agent("roundtrip").config == {**HTTP_AGENT["config"]}
        # a mask with no stored secret behind it is refused, naming the field
        fresh = admin.put("/api/v1/agents/fresh", json={
            "kind": "command", "config": {"command": "true", "env": {"K": SECRET_MASK}}})
        assert fresh.status_code == 422
        assert fresh.json()["field"] == "env.K"


# -- the CLI ----------------------------------------------------------------------------------


def test_every_cli_listing_masks_secrets(cli: Cli, db_url: str) -> None:
    def ok(*args: str) -> str:
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return str(result.stdout)

    ok("agents", "add", "sh", "--command", "env", "--inherit-env", "OPENAI_API_KEY")
    url = HTTP_AGENT["config"]["url"]
    ok("agents", "add", "web", "--http", url, "--secret", SIGNING)
    store = open_store(db_url)
    try:  # the CLI has no flag for env or headers: declare them as the agents file would
        agents = Services(store).agents
        for name, body in (("web2", HTTP_AGENT), ("sh2", COMMAND_AGENT)):
            agents.save(agents.build(AgentInput(name=name, **body), source="file"))
    finally:
        store.close()
    table = ok("agents", "list")
    listing = ok("agents", "list", "--json")
    assert_masked(table)
    assert_masked(listing)
    shown = {a["name"]: a["config"] for a in json.loads(listing)}
    assert shown["sh"]["inherit_env"] == ["OPENAI_API_KEY"]
    assert shown["web"]["url"] == mask_url(url)
    assert shown["sh2"]["env"] == {"DB_PASSWORD": SECRET_MASK}
    assert shown["web2"]["headers"] == {"Authorization": SECRET_MASK}


def test_cli_inherit_env_applies_to_command_agents_only(cli: Cli) -> None:
    result: Any = cli("agents", "add", "web", "--http", "https://h.example/",
                      "--inherit-env", "OPENAI_API_KEY")
    assert result.exit_code == 2
    assert "inherit-env" in result.stderr
    refused: Any = cli("agents", "add", "sh", "--command", "env",
                       "--inherit-env", "AGENTCRON_DATABASE_URL")
    assert refused.exit_code == 2
    assert "never passed" in refused.stderr


# -- encryption at rest through the CLI and serve ----------------------------------------------


def test_cli_key_rotate_and_a_wrong_key(cli: Cli, db_url: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    first: Any = cli("secrets", "key")
    assert first.exit_code == 0
    key = first.stdout.strip()
    assert Fernet(key.encode())  # a usable key
    assert cli("agents", "add", "web", "--http", "https://h.example/",
               "--secret", SIGNING).exit_code == 0  # stored before the key was set
    monkeypatch.setenv(SECRET_KEY_ENV, key)
    rotated: Any = cli("secrets", "rotate", "--json")
    assert rotated.exit_code == 0, rotated.stderr
    assert json.loads(rotated.stdout) == {"agents": 1, "webhook_triggers": 0}
    store = Store(db_url, secrets=SecretBox(None))
    try:
        with store.engine.connect() as conn:
            assert SIGNING not in json.dumps(conn.execute(select(agents.c.config)).scalar_one())
    finally:
        store.close()

    wrong_key = Fernet.generate_key().decode()
    monkeypatch.setenv(SECRET_KEY_ENV, wrong_key)
    wrong: Any = cli("agents", "list")
    assert wrong.exit_code == 1
    assert SECRET_KEY_ENV in wrong.stderr and "cannot decrypt" in wrong.stderr
    assert "Traceback" not in wrong.stderr + wrong.stdout
    # serve, in its own process (it configures the process's logging): refuses to start
    serve = subprocess.run(
        [sys.executable, "-m", "agentcron", "--db", db_url, "serve", "--no-api"],
        env={**os.environ, SECRET_KEY_ENV: wrong_key}, capture_output=True, text=True,
        timeout=120, check=False)
    assert serve.returncode == 1, serve.stderr
    assert SECRET_KEY_ENV in serve.stderr and "cannot decrypt" in serve.stderr
    assert "Traceback" not in serve.stderr
    monkeypatch.setenv(SECRET_KEY_ENV, "not-a-key")
    malformed: Any = cli("agents", "list")
    assert malformed.exit_code == 2 and SECRET_KEY_ENV in malformed.stderr


def test_serve_warns_at_start_when_secrets_are_stored_in_plain_text(db_url: str) -> None:
    plain = open_store(db_url)
    keyed = Store(db_url, secrets=SecretBox(Fernet.generate_key().decode()))
    try:
        with capture_logs() as logs:
            check_secrets_at_rest(plain)
        assert [e["event"] for e in logs] == ["secrets_stored_in_plain_text"]
        assert SECRET_KEY_ENV in logs[0]["fix"]
        with capture_logs() as logs:
            check_secrets_at_rest(keyed)
        assert [e["event"] for e in logs] == ["secrets_encrypted_at_rest"]
    finally:
        plain.close()
        keyed.close()
