"""Operating many triggers from the command line and the API, on both backends: ``apply``
(and ``--dry-run``, which writes nothing), pausing and resuming many, backfill, and the
circuit breaker's reason where people look."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from agentcron.api.app import create_app
from agentcron.cli import app as cli_app
from agentcron.models import Outcome, RunStatus
from agentcron.services.access import Access
from agentcron.store import Store
from tests.conftest import T0
from tests.support.dashboard import session_client, sign_in
from tests.support.helpers import add_agent, add_trigger, runs_of

_tokens = itertools.count()

FILE = """
[agents.report]
command = ["true"]
pause_after_failures = 3

[[agents.report.triggers]]
name = "nightly-report"
cron = "0 2 * * *"

[[agents.report.triggers]]
name = "hourly"
every = "1h"

[prices."m-1"]
input_per_mtok = 1.0
output_per_mtok = 2.0
"""


def run(store: Store, *args: str) -> Any:
    """The real CLI against ``store``'s database; must succeed with nothing on stderr."""
    result = CliRunner().invoke(cli_app, ["--db", store.url, *args])
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    assert result.stderr == ""
    return result.stdout


def fails(store: Store, *args: str) -> str:
    result = CliRunner().invoke(cli_app, ["--db", store.url, *args])
    assert result.exit_code == 2, (args, result.stdout, result.stderr)
    return str(result.stderr)


def api(store: Store, method: str, path: str, body: Any = None) -> httpx.Response:
    _, token = Access(store).create_token(f"ops-{next(_tokens)}", "write")
    application = create_app(store, "ops-node")

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application),
                                     base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            return await client.request(method, path, json=body)

    return asyncio.run(main())


def dashboard_triggers(store: Store) -> str:
    """The dashboard's triggers page, signed in."""
    client, token = session_client(store, "read")

    async def main() -> str:
        async with client:
            await sign_in(client, token)
            return (await client.get("/triggers")).text

    return asyncio.run(main())


def _file(tmp_path: Path, text: str = FILE) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    return path


# -- apply ------------------------------------------------------------------------------


def test_apply_dry_run_writes_nothing_and_apply_writes_it(store: Store, tmp_path: Path
                                                          ) -> None:
    path = _file(tmp_path)
    planned = json.loads(run(store, "apply", str(path), "--dry-run", "--json"))
    assert sorted((c["action"], c["kind"], c["name"]) for c in planned) == [
        ("create", "agent", "report"), ("create", "price", "m-1"),
        ("create", "trigger", "report/hourly"), ("create", "trigger", "report/nightly-report")]
    table = run(store, "apply", str(path), "--dry-run")
    assert "nothing written" in table and "report/hourly" in table
    assert store.list_agents() == [] and store.list_triggers() == []
    assert store.list_prices() == []

    assert "1 agents; triggers 2 created" in run(store, "apply", str(path))
    assert store.get_agent("report").pause_after_failures == 3
    assert {t.name for t in store.list_triggers()} == {"nightly-report", "hourly"}
    assert run(store, "apply", str(path), "--dry-run").startswith(
        f"{path}: nothing to change")

    changed = FILE.replace('every = "1h"', 'every = "2h"').replace(
        '[[agents.report.triggers]]\nname = "nightly-report"\ncron = "0 2 * * *"\n', "")
    before = {t.id: t for t in store.list_triggers()}
    planned = json.loads(run(store, "apply", str(_file(tmp_path, changed)), "--dry-run",
                             "--json"))
    assert sorted((c["action"], c["name"], c["detail"]) for c in planned) == sorted([
        ("update", "report/hourly", "every_s"),
        ("remove", "report/nightly-report",
         next(i for i, t in before.items() if t.name == "nightly-report"))])
    assert {t.id: t for t in store.list_triggers()} == before  # still nothing written


def test_apply_refuses_a_bad_file_naming_the_place_and_writes_nothing(
        store: Store, tmp_path: Path) -> None:
    bad = FILE.replace('cron = "0 2 * * *"', 'cron = "0 25 * * *"')
    for extra in ((), ("--dry-run",)):
        message = fails(store, "apply", str(_file(tmp_path, bad)), *extra)
        assert "agents.report.triggers[0].cron" in message
    assert store.list_agents() == []


# -- pause and resume many ----------------------------------------------------------------


def test_pause_and_resume_many_from_the_cli(store: Store) -> None:
    add_agent(store, "a", now=T0)
    add_agent(store, "b", now=T0)
    for name in ("nightly-1", "nightly-2", "other"):
        add_trigger(store, T0, "a", every="1h", name=name)
    add_trigger(store, T0, "b", every="1h", name="nightly-b")
    assert run(store, "triggers", "pause", "--name", "nightly-*") == "3 triggers paused\n"
    assert json.loads(run(store, "triggers", "resume", "--agent", "a", "--json"))[
        "resumed"] == 2
    message = fails(store, "triggers", "pause", "--all")
    assert "--all would pause 3 triggers" in message and "--yes" in message
    assert not any(t.paused for t in store.list_triggers() if t.name != "nightly-b")
    assert run(store, "triggers", "pause", "--all", "--yes") == "3 triggers paused\n"
    assert "selection" in fails(store, "triggers", "pause")
    assert "together" in fails(store, "triggers", "pause", "other", "--agent", "a")
    assert run(store, "triggers", "resume", "--all", "--yes", "--catch-up") == (
        "4 triggers resumed\n")


def test_pause_and_resume_many_through_the_api(store: Store) -> None:
    add_agent(store, "a", now=T0)
    made = [add_trigger(store, T0, "a", every="1h", name=f"t{i}").id for i in range(3)]
    paused = api(store, "POST", "/api/v1/triggers/pause", {"agent": "a"})
    assert paused.status_code == 200, paused.text
    assert paused.json()["count"] == 3 and sorted(paused.json()["triggers"]) == sorted(made)
    resumed = api(store, "POST", "/api/v1/triggers/resume", {"name": "t?", "catch_up": True})
    assert resumed.json()["count"] == 3
    refused = api(store, "POST", "/api/v1/triggers/pause", {})
    assert refused.status_code in (400, 422) and "selection" in refused.text
    assert api(store, "POST", "/api/v1/triggers/pause",
               {"all": True, "catch_up": True}).status_code in (400, 422)
    assert not any(t.paused for t in store.list_triggers())


# -- backfill -----------------------------------------------------------------------------


def test_backfill_from_the_cli_and_the_api(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, cron="0 * * * *", name="hourly")
    out = run(store, "triggers", "backfill", "hourly", "--from", "2026-01-05T10:00Z",
              "--to", "2026-01-05T12:00Z")
    assert out == (f"trigger {trigger.id}: 3 scheduled times in the range; 3 runs queued, "
                   "0 skipped (already had a run)\n")
    answer = api(store, "POST", f"/api/v1/triggers/{trigger.id}/backfill",
                 {"from": "2026-01-05T09:00Z", "to": "2026-01-05T11:00Z"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"trigger_id": trigger.id, "times": 3, "queued": 1, "skipped": 2}
    assert len(runs_of(store, trigger.id)) == 4
    refused = api(store, "POST", f"/api/v1/triggers/{trigger.id}/backfill",
                  {"from": "2026-01-05T09:00Z", "to": "2999-01-01T00:00Z"})
    assert refused.status_code in (400, 422) and "future" in refused.text
    assert "mode" in fails(store, "triggers", "backfill", "hourly", "--from",
                           "2026-01-05T09:00Z", "--to", "2026-01-05T10:00Z", "--mode", "x")


# -- the breaker where people look ----------------------------------------------------------


def test_the_breakers_reason_is_shown_and_resume_clears_it(store: Store) -> None:
    add_agent(store, now=T0, max_attempts=1)
    trigger = add_trigger(store, T0, every="1m", pause_after_failures=1)
    at = T0 + timedelta(minutes=1)
    store.fire_due(at)
    [claimed] = store.claim_runs("n1", 1, at)
    store.finish("n1", [Outcome(claimed.run_id, claimed.lease, RunStatus.FAILED,
                                error="exit 1")], at)
    shown = json.loads(run(store, "triggers", "show", trigger.id, "--json"))
    assert shown["paused"] is True and "circuit breaker" in shown["paused_reason"]
    assert (shown["pause_after_failures"], shown["consecutive_failures"]) == (1, 1)
    assert "circuit breaker" in run(store, "triggers", "show", trigger.id)
    assert "circuit breaker" in run(store, "triggers", "list")
    got = api(store, "GET", f"/api/v1/triggers/{trigger.id}").json()
    assert "circuit breaker" in got["paused_reason"]
    assert "circuit breaker: 1 consecutive failed runs" in dashboard_triggers(store)
    resumed = api(store, "POST", f"/api/v1/triggers/{trigger.id}/resume").json()
    assert (resumed["paused"], resumed["paused_reason"], resumed["consecutive_failures"]) == (
        False, None, 0)


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_a_bad_breaker_threshold_is_refused(store: Store, value: str) -> None:
    add_agent(store, now=T0)
    message = fails(store, "triggers", "add", "a", "--every", "1m",
                    "--pause-after-failures", value)
    assert "pause-after-failures" in message
    assert store.list_triggers() == []


def nightly() -> str:
    return "ok"


def test_the_python_api_declares_the_breaker(tmp_path: Path) -> None:
    from agentcron import Agentcron

    url = f"sqlite:///{tmp_path}/hub.db"
    app = Agentcron(url, api=False)
    app.agent(pause_after_failures=4)(nightly)
    app.schedule("nightly", name="t", every="1h", pause_after_failures=2)
    app.sync()
    store = Store(url)
    try:
        assert store.get_agent("nightly").pause_after_failures == 4
        trigger = store.find_trigger("nightly", "t")
        assert trigger is not None and trigger.pause_after_failures == 2
    finally:
        store.close()
