"""The issue's test for quarantine: poison trigger rows written straight into the database
(raw SQL, on SQLite and PostgreSQL) never stop a real running node. A canary trigger keeps
firing every second on time, the node stays ready, and the poison rows are reported broken
by the API and CLI listings, each with its reason; a run whose payload does not read back
(SQLite) fails with its reason instead of failing every claim."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from agentcron.cli import app
from agentcron.store import Store
from tests.support.api_server import api_server
from tests.support.helpers import add_agent, add_trigger, runs_of, wait_until
from tests.support.poison import poison_run, poison_trigger


def _listed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    response = client.get("/api/v1/triggers", params={"limit": 500})
    assert response.status_code == 200, response.text
    return {t["id"]: t for t in response.json()["triggers"]}


def test_poison_rows_are_quarantined_and_a_canary_keeps_firing(
        store: Store, tmp_path: Path) -> None:
    with api_server(store.url, tmp_path, "poison-node") as srv:
        add_agent(store, "canary", max_concurrency=50)
        add_agent(store, "victim")
        now = store.now()
        # Valid when written (paused, so they cannot fire yet), then poisoned and unpaused
        # in one raw UPDATE each: due at once, and unplannable.
        poisons: dict[str, dict[str, Any]] = {
            "unparsable cron": {"kind": "cron", "cron": "not a cron", "every_s": None},
            "unknown zone": {"kind": "cron", "cron": "* * * * * *", "every_s": None,
                             "timezone": "Mars/Olympus_Mons"},
            "unknown overlap": {"overlap": "sometimes"},
        }
        if store.backend == "sqlite":
            poisons["unreadable start"] = {"start_at": "999-01-01 00:00:00.000000"}
        ids: dict[str, str] = {}
        for label, values in poisons.items():
            trigger = add_trigger(store, now, agent="victim", every="1s", paused=True,
                                  name=label.replace(" ", "-"))
            poison_trigger(store, trigger.id, paused=False, **values)
            ids[label] = trigger.id
        canary = add_trigger(store, now, agent="canary", every="1s", overlap="allow")
        poisoned_run = None
        if store.backend == "sqlite":  # PostgreSQL's jsonb cannot hold it
            poisoned_run = store.fire_now("victim", {"x": 1}, now)
            poison_run(store, poisoned_run, payload="{not json")

        with srv.client("read") as client:
            listed = wait_until(
                lambda: (found := _listed(client)) and all(
                    found[i]["broken"] and found[i]["broken"]["at"] for i in ids.values())
                and found, timeout=30, message="every poison row to be reported broken")
            quarantined_at = max(datetime.fromisoformat(listed[i]["broken"]["at"])
                                 for i in ids.values())
            assert "sometimes" in listed[ids["unknown overlap"]]["broken"]["reason"]
            assert "Mars/Olympus_Mons" in listed[ids["unknown zone"]]["broken"]["reason"]
            if store.backend == "sqlite":
                assert "999-01-01" in listed[ids["unreadable start"]]["broken"]["reason"]
            assert listed[canary.id]["broken"] is None
            assert client.get(f"/api/v1/triggers/{ids['unknown zone']}").json()["broken"]

            # The canary fires every second, on time, after the poison rows were met.
            def canary_runs_after() -> list[Any]:
                runs = [r for r in runs_of(store, canary.id)
                        if r.scheduled_for > quarantined_at]
                return runs if len(runs) >= 4 else []

            runs = sorted(wait_until(canary_runs_after, timeout=30,
                                     message="the canary to keep firing"),
                          key=lambda r: r.scheduled_for)
            for earlier, later in pairwise(runs):
                assert later.scheduled_for - earlier.scheduled_for == timedelta(seconds=1)
            # On time: the ticker fired each time as it came, missing none.
            assert all(r.coalesced == 1 for r in runs)
            assert client.get(f"/api/v1/triggers/{canary.id}").json()["missed_count"] == 0
            if poisoned_run is not None:
                failed = srv.wait_run(poisoned_run, ("failed",))
                assert "payload" in failed["error"], failed
            assert all(runs_of(store, i) == [] for i in ids.values())
            ready = httpx.get(f"{srv.base}/readyz", timeout=5)
            assert ready.status_code == 200, ready.text

        # The dashboard's Triggers page lists them too, broken with their reason.
        with httpx.Client(base_url=srv.base, timeout=30) as browser:
            signed_in = browser.post("/login", data={"token": srv.tokens["read"]},
                                     headers={"Origin": srv.base})
            assert signed_in.status_code == 303, signed_in.text
            page = browser.get("/triggers", params={"agent": "victim"})
            assert page.status_code == 200
            for trigger_id in ids.values():
                row = page.text.split(f'id="trigger-{trigger_id}"', 1)[1].split("</tr>", 1)[0]
                assert "status s-failed broken" in row and "Resume" in row
            assert "sometimes" in page.text

        log = srv.proc.log()
        assert "trigger_quarantined" in log
        assert "loop_crashed" not in log and "Traceback" not in log

        cli = CliRunner()
        shown = cli.invoke(app, ["--db", store.url, "triggers", "list", "--json"])
        assert shown.exit_code == 0, shown.output
        documents = {t["id"]: t for t in json.loads(shown.stdout)}
        assert all(documents[i]["broken"]["reason"] for i in ids.values())
        table = cli.invoke(app, ["--db", store.url, "triggers", "list"],
                           env={"COLUMNS": "400"})
        assert table.exit_code == 0, table.output
        assert "BROKEN" in table.stdout and "sometimes" in table.stdout
