"""Whatever got into the database before it was refused, every listing still reads: each
hostile value class is written straight into the tables (on SQLite and PostgreSQL; a class
the database itself refuses cannot get in there) and the CLI, the API and the dashboard list
and show agents, triggers and runs without an error, listings with a bounded preview."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import SQLAlchemyError
from typer.testing import CliRunner

from agentcron.cli import app
from agentcron.services import Services, TriggerInput
from agentcron.services.documents import PREVIEW_BYTES
from agentcron.store import Store
from agentcron.store.schema import metadata
from tests.conftest import T0, _truncate
from tests.support.api_server import api_server
from tests.support.dashboard import session_client, sign_in
from tests.support.helpers import add_agent
from tests.support.hostile import nested

pytestmark = [pytest.mark.slow]


HOSTILE: dict[str, Any] = {
    "deep": nested(300),
    "lone surrogate": {"t": "\ud800", "\udfff": 1},
    "NaN": {"x": float("nan"), "y": [float("inf"), float("-inf")]},
    "huge": {"blob": "x" * (3 * 1024 * 1024)},
}
HUGE_OUTPUT = "o" * (2 * 1024 * 1024)


@dataclass
class Planted:
    url: str
    triggers: dict[str, str]  # class -> trigger id
    runs: dict[str, str]  # class -> run id


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def planted(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Planted]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/hostile.db"
        store = Store(url)
        store.upgrade()
    else:
        url = request.getfixturevalue("pg_url")
        store = Store(url)
        _truncate(store)
    add_agent(store, "a", T0)
    services = Services(store)
    triggers, runs = {}, {}
    table, run_table = metadata.tables["triggers"], metadata.tables["runs"]
    for kind, value in HOSTILE.items():
        trigger = services.add_trigger(TriggerInput(agent="a", every="1h", name=kind,
                                                    paused=True), T0)
        run_id = store.fire_now("a", None, T0)
        try:
            with store.engine.begin() as conn:
                conn.execute(table.update().where(table.c.id == trigger.id)
                             .values(payload=value))
                conn.execute(run_table.update().where(run_table.c.id == run_id)
                             .values(payload=value, status="succeeded", output=HUGE_OUTPUT))
        except (SQLAlchemyError, ValueError):
            services.triggers.delete(trigger.id)  # this database refuses the class
            with store.engine.begin() as conn:
                conn.execute(run_table.delete().where(run_table.c.id == run_id))
            continue
        triggers[kind], runs[kind] = trigger.id, run_id
    store.close()
    if request.param == "sqlite":  # SQLite stores every class: the test reads them all
        assert set(triggers) == set(HOSTILE)
    else:  # PostgreSQL's json type refuses NaN itself, and keeps "\ud800" as written
        assert {"deep", "huge", "lone surrogate"} <= set(triggers)
    yield Planted(url, triggers, runs)


def test_the_cli_lists_and_shows_every_stored_value(planted: Planted) -> None:
    runner = CliRunner()

    def read(*args: str) -> Any:
        result = runner.invoke(app, ["--db", planted.url, *args, "--json"])
        assert result.exit_code == 0, (args, result.stderr[-2000:], result.exception)
        return json.loads(result.stdout)

    assert [a["name"] for a in read("agents", "list")] == ["a"]
    listed = {t["name"]: t for t in read("triggers", "list")}
    assert set(listed) == set(planted.triggers)
    for kind, trigger_id in planted.triggers.items():
        assert read("triggers", "show", trigger_id)["id"] == trigger_id
        assert listed[kind]["payload_truncated"] == (kind == "huge")
    if "huge" in listed:
        assert len(listed["huge"]["payload"].encode()) <= PREVIEW_BYTES
    runs = read("runs", "list", "--limit", "100")
    assert all(r["output_truncated"] and len(r["output"]) <= PREVIEW_BYTES for r in runs)
    for run_id in planted.runs.values():
        shown = read("runs", "show", run_id)
        assert shown["output"] == HUGE_OUTPUT and not shown["output_truncated"]


def test_the_api_lists_and_shows_every_stored_value(planted: Planted, tmp_path: Path) -> None:
    with api_server(planted.url, tmp_path, truncate=False) as srv, srv.client("read") as api:
        assert api.get("/api/v1/agents").status_code == 200
        listed = api.get("/api/v1/triggers")
        assert listed.status_code == 200, listed.text[:500]
        # Bounded: the 3 MiB payload is not in the listing.
        assert len(listed.content) < 64 * 1024
        for trigger_id in planted.triggers.values():
            shown = api.get(f"/api/v1/triggers/{trigger_id}")
            assert shown.status_code == 200, shown.text[:500]
        runs = api.get("/api/v1/runs", params={"limit": 100})
        assert runs.status_code == 200, runs.text[:500]
        assert len(runs.content) < 64 * 1024
        assert all(r["output_truncated"] for r in runs.json()["runs"])
        for kind, run_id in planted.runs.items():
            shown = api.get(f"/api/v1/runs/{run_id}")
            assert shown.status_code == 200, (kind, shown.text[:500])
            assert shown.json()["output"] == HUGE_OUTPUT
        if "huge" in planted.runs:
            full = api.get(f"/api/v1/runs/{planted.runs['huge']}").json()
            assert full["payload"] == HOSTILE["huge"] and not full["payload_truncated"]
    assert os.path.exists(tmp_path)


def test_the_dashboard_shows_every_stored_value(planted: Planted) -> None:
    store = Store(planted.url)
    client, token = session_client(store, "read")

    async def main() -> None:
        async with client:
            await sign_in(client, token)
            for path in ("/", "/agents", "/triggers", "/runs",
                         *(f"/runs/{run_id}" for run_id in planted.runs.values())):
                page = await client.get(path)
                assert page.status_code == 200, (path, page.text[:500])

    try:
        asyncio.run(main())
    finally:
        store.close()
