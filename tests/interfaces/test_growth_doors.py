"""Bounded growth at the front doors: the frequency floor and the per-agent trigger maximum
refuse with exit code 2 on the command line and 422 over real HTTP, naming the field and
the setting, and write nothing; the trigger document shows skipped fires."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentcron.services.limits import MAX_TRIGGERS_ENV, MIN_INTERVAL_ENV
from tests.conftest import Cli
from tests.support.api_server import ApiServer, api_server

HELLO = {"kind": "python", "config": {"target": "agentcron.examples:hello"}}


def test_cli_refuses_a_schedule_above_the_floor_and_one_trigger_too_many(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli("agents", "add", "bot", "--python", "myapp.jobs:run").exit_code == 0
    too_fast = cli("triggers", "add", "bot", "--every", "1ms")
    assert too_fast.exit_code == 2, too_fast.stderr
    assert too_fast.stderr.startswith("error: every: ")
    assert MIN_INTERVAL_ENV in too_fast.stderr
    monkeypatch.setenv(MIN_INTERVAL_ENV, "2s")
    cron = cli("triggers", "add", "bot", "--cron", "* * * * * *")
    assert cron.exit_code == 2 and cron.stderr.startswith("error: cron: "), cron.stderr
    monkeypatch.setenv(MAX_TRIGGERS_ENV, "1")
    assert cli("triggers", "add", "bot", "--every", "1m").exit_code == 0
    over = cli("triggers", "add", "bot", "--every", "2m")
    assert over.exit_code == 2 and over.stderr.startswith("error: agent: "), over.stderr
    assert MAX_TRIGGERS_ENV in over.stderr and "Traceback" not in over.stderr
    listing = cli("triggers", "list", "--json")
    assert listing.exit_code == 0 and listing.stdout.count('"skipped_count": 0') == 1


@pytest.fixture(scope="module")
def srv(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    env = {MIN_INTERVAL_ENV: "10s", MAX_TRIGGERS_ENV: "2"}
    with api_server(pg_url, tmp_path_factory.mktemp("growth"), env=env) as server:
        yield server


@pytest.mark.slow
@pytest.mark.postgres
def test_api_refuses_with_422_naming_the_field(srv: ApiServer) -> None:
    with srv.client() as admin:
        assert admin.put("/api/v1/agents/bot", json=HELLO).status_code == 200
        for body, field in (({"agent": "bot", "every": "5s"}, "every"),
                            ({"agent": "bot", "cron": "*/5 * * * * *"}, "cron")):
            response = admin.post("/api/v1/triggers", json=body)
            assert response.status_code == 422, response.text
            assert response.json()["field"] == field
            assert MIN_INTERVAL_ENV in response.text
        for every in ("10s", "1m"):
            created = admin.post("/api/v1/triggers", json={"agent": "bot", "every": every})
            assert created.status_code == 201, created.text
        over = admin.post("/api/v1/triggers", json={"agent": "bot", "every": "2m"})
        assert over.status_code == 422 and over.json()["field"] == "agent", over.text
        listing = admin.get("/api/v1/triggers").json()
        assert listing["total"] == 2
        assert all(t["skipped_count"] == 0 and t["last_skipped_at"] is None
                   for t in listing["triggers"])
