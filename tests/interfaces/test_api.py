"""The HTTP API against a real ``agentcron serve`` process on PostgreSQL: auth, every
endpoint, pagination, validation errors (422 naming the field, with the CLI's text),
webhooks over HTTP, and no token in the node's log."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentcron.errors import ValidationError
from agentcron.services import Services, TriggerInput
from tests.support.api_server import ApiServer, api_server, signed_headers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HELLO = {"kind": "python", "config": {"target": "agentcron.examples:hello"}}
SLEEPY = {"kind": "python", "config": {"target": "tests.support.agents:sleepy"},
          "timeout": "60s"}


@pytest.fixture(scope="module")
def srv(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(pg_url, tmp_path_factory.mktemp("api")) as server:
        yield server


@pytest.fixture(scope="module")
def admin(srv: ApiServer) -> Iterator[httpx.Client]:
    with srv.client("admin") as client:
        yield client


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"detail", "field", "hint"}
    assert "Traceback" not in response.text
    return body


# -- health, docs, auth ---------------------------------------------------------------------


def test_health_and_the_openapi_document_are_open_and_the_docs_pages_are_off(
        srv: ApiServer) -> None:
    with srv.client(None) as anon:
        assert anon.get("/healthz").json()["status"] == "ok"
        assert anon.get("/readyz").json()["status"] == "ready"
        spec = anon.get("/openapi.json").json()
        # Off by default: FastAPI's docs pages load their scripts from a CDN.
        assert anon.get("/docs").status_code == 404
        assert anon.get("/redoc").status_code == 404
    with srv.client("admin") as admin:
        assert admin.get("/docs").status_code == 404
    paths = set(spec["paths"])
    for path in ("/api/v1/agents", "/api/v1/agents/{name}", "/api/v1/agents/{name}/fire",
                 "/api/v1/triggers", "/api/v1/triggers/{trigger_id}",
                 "/api/v1/triggers/{trigger_id}/pause", "/api/v1/triggers/{trigger_id}/resume",
                 "/api/v1/triggers/{trigger_id}/next", "/api/v1/triggers/{trigger_id}/fire",
                 "/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/cancel",
                 "/api/v1/runs/{run_id}/retry", "/api/v1/nodes", "/api/v1/stats",
                 "/api/v1/triggers/{trigger_id}/rotate-secret",
                 "/hooks/{trigger_id}", "/metrics", "/healthz", "/readyz"):
        assert path in paths, path
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_missing_and_bad_tokens_are_401(srv: ApiServer) -> None:
    with srv.client(None) as anon:
        response = anon.get("/api/v1/agents")
        assert "Bearer" in error_of(response, 401)["detail"]
        assert response.headers["www-authenticate"] == "Bearer"
        bad = anon.get("/api/v1/agents", headers={"Authorization": "Bearer act_" + "x" * 43})
        assert error_of(bad, 401)["detail"] == "invalid or revoked token"
        basic = anon.get("/api/v1/agents", headers={"Authorization": "Basic dXNlcjpwdw=="})
        error_of(basic, 401)
        error_of(anon.get("/metrics"), 401)


def test_a_token_in_the_query_string_is_refused_even_with_a_good_header(srv: ApiServer
                                                                         ) -> None:
    token = srv.tokens["admin"]
    with srv.client("admin") as client:
        for query in (f"token={token}", f"access_token={token}", f"agent={token}"):
            body = error_of(client.get(f"/api/v1/runs?{query}"), 401)
            assert "not accepted in the URL" in body["detail"]
        assert client.get("/api/v1/runs?limit=1").status_code == 200
        # An agent whose name merely starts like a token is a filter, not a token.
        assert client.get("/api/v1/runs?agent=act_report").status_code == 200


def test_scopes_read_write_admin(srv: ApiServer, admin: httpx.Client) -> None:
    with srv.client("read") as read, srv.client("write") as write:
        assert read.get("/api/v1/agents").status_code == 200
        assert read.get("/metrics").status_code == 200
        body = error_of(read.post("/api/v1/agents/x/fire", json={}), 403)
        assert "'read'" in body["detail"] and "'write'" in body["detail"]
        error_of(write.post("/api/v1/agents", json={"name": "nope", **HELLO}), 403)
        error_of(write.delete("/api/v1/agents/nope"), 403)
    assert admin.put("/api/v1/agents/scoped", json=HELLO).status_code == 200


def test_a_revoked_token_stops_working_at_once(srv: ApiServer) -> None:
    from agentcron.services.access import Access

    access = Access(srv.store)
    _, token = access.create_token("short-lived", "read")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{srv.base}/api/v1/nodes", headers=headers).status_code == 200
    access.revoke_token("short-lived")
    error_of(httpx.get(f"{srv.base}/api/v1/nodes", headers=headers), 401)


# -- agents ---------------------------------------------------------------------------------


def test_agents_crud_and_fire(srv: ApiServer, admin: httpx.Client) -> None:
    created = admin.post("/api/v1/agents", json={"name": "greeter", **HELLO,
                                                 "description": "says hi"})
    assert created.status_code == 201, created.text
    assert created.json()["kind"] == "python" and created.json()["source"] == "api"
    error_of(admin.post("/api/v1/agents", json={"name": "greeter", **HELLO}), 409)
    assert admin.get("/api/v1/agents/greeter").json()["description"] == "says hi"
    replaced = admin.put("/api/v1/agents/greeter", json={**HELLO, "max_concurrency": 3})
    assert replaced.json()["max_concurrency"] == 3
    assert "greeter" in [a["name"] for a in admin.get("/api/v1/agents").json()]

    fired = admin.post("/api/v1/agents/greeter/fire", json={"payload": {"name": "API"}})
    assert fired.status_code == 202
    run = srv.wait_run(fired.json()["id"])
    assert run["payload"] == {"name": "API"} and run["trigger_id"] is None
    assert "API" in (run["output"] or "")

    assert admin.delete("/api/v1/agents/greeter").json() == {"name": "greeter",
                                                             "cancelled_runs": 0}
    error_of(admin.get("/api/v1/agents/greeter"), 404)
    error_of(admin.post("/api/v1/agents/greeter/fire", json={}), 404)


@pytest.mark.parametrize("body, field", [
    ({"kind": "shell", "config": {}}, "kind"),
    ({"kind": "python", "config": {"target": "not a target"}}, "python"),
    ({**HELLO, "timeout": "soon"}, "timeout"),
    ({**HELLO, "max_concurrency": 0}, "max-concurrency"),
    ({**HELLO, "max_concurrency": "many"}, "max_concurrency"),
    ({"kind": "http", "config": {"url": "ftp://x"}}, "http"),
    ({**HELLO, "description": "bad\x00byte"}, "description"),
])
def test_agent_validation_errors_name_the_field(admin: httpx.Client, body: dict[str, Any],
                                                field: str) -> None:
    error = error_of(admin.put("/api/v1/agents/checked", json=body), 422)
    assert error["field"] == field, error


def test_bad_agent_names_are_422_or_404(admin: httpx.Client) -> None:
    error_of(admin.post("/api/v1/agents", json={"name": "bad name!", **HELLO}), 422)
    error_of(admin.get("/api/v1/agents/bad%20name!"), 422)


# -- triggers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent(admin: httpx.Client) -> str:
    assert admin.put("/api/v1/agents/scheduled", json=HELLO).status_code == 200
    return "scheduled"


def test_trigger_lifecycle(srv: ApiServer, admin: httpx.Client, agent: str) -> None:
    created = admin.post("/api/v1/triggers", json={
        "agent": agent, "cron": "0 9 * * 1-5", "tz": "Europe/Berlin",
        "payload": {"name": "Berlin"}, "name": "mornings"})
    assert created.status_code == 201, created.text
    trigger = created.json()
    assert trigger["description"] == "At 09:00 on Monday through Friday (Europe/Berlin)"
    assert trigger["secret"] is None and trigger["next_fire_at"].endswith("Z")
    tid = trigger["id"]

    nxt = admin.get(f"/api/v1/triggers/{tid}/next", params={"n": 3}).json()
    assert len(nxt["times"]) == 3 and nxt["times"][0]["utc"] == trigger["next_fire_at"]
    assert nxt["times"][0]["local"].startswith(nxt["times"][0]["local"][:10])
    assert nxt["description"] == trigger["description"] and nxt["timezone"] == "Europe/Berlin"

    patched = admin.patch(f"/api/v1/triggers/{tid}", json={"payload": {"name": "Paris"}})
    assert patched.json()["payload"] == {"name": "Paris"}
    assert patched.json()["next_fire_at"] == trigger["next_fire_at"]  # schedule unchanged
    rescheduled = admin.patch(f"/api/v1/triggers/{tid}", json={"every": "1h"}).json()
    assert rescheduled["kind"] == "interval" and rescheduled["every_s"] == 3600.0
    assert rescheduled["timezone"] == "UTC"

    paused = admin.post(f"/api/v1/triggers/{tid}/pause").json()
    assert paused["paused"] is True
    resumed = admin.post(f"/api/v1/triggers/{tid}/resume").json()
    assert resumed["paused"] is False and resumed["next_fire_at"]

    fired = admin.post(f"/api/v1/triggers/{tid}/fire")
    assert fired.status_code == 202
    run = srv.wait_run(fired.json()["id"])
    assert run["payload"] == {"name": "Paris"}

    assert admin.get(f"/api/v1/triggers/{tid}").json()["name"] == "mornings"
    assert admin.delete(f"/api/v1/triggers/{tid}").json() == {"id": tid, "deleted": True}
    error_of(admin.get(f"/api/v1/triggers/{tid}"), 404)
    error_of(admin.post(f"/api/v1/triggers/{tid}/pause"), 404)


def test_a_trigger_path_takes_a_unique_name(srv: ApiServer, admin: httpx.Client,
                                            agent: str) -> None:
    admin.put("/api/v1/agents/named-other", json=HELLO)
    one = admin.post("/api/v1/triggers", json={"agent": agent, "every": "1h",
                                               "name": "api nightly"}).json()
    shown = admin.get("/api/v1/triggers/api nightly")
    assert shown.status_code == 200 and shown.json()["id"] == one["id"]
    assert admin.post("/api/v1/triggers/api nightly/pause").json()["paused"] is True
    patched = admin.patch("/api/v1/triggers/api nightly", json={"every": "2h"}).json()
    assert patched["id"] == one["id"] and patched["every_s"] == 7200.0
    two = admin.post("/api/v1/triggers", json={"agent": "named-other", "every": "1h",
                                               "name": "api nightly"}).json()
    ambiguous = error_of(admin.post("/api/v1/triggers/api nightly/resume"), 422)
    assert ambiguous["field"] == "trigger"
    assert one["id"] in ambiguous["detail"] and two["id"] in ambiguous["detail"]
    assert admin.delete(f"/api/v1/triggers/{two['id']}").json()["id"] == two["id"]
    assert admin.delete("/api/v1/triggers/api nightly").json() == {"id": one["id"],
                                                                    "deleted": True}
    error_of(admin.get("/api/v1/triggers/api nightly"), 404)


def test_rotating_a_webhook_secret_over_the_api(srv: ApiServer, admin: httpx.Client) -> None:
    agent = "rotation"
    admin.put(f"/api/v1/agents/{agent}", json=HELLO)
    hook = admin.post("/api/v1/triggers", json={"agent": agent, "webhook": True,
                                                "name": "rotated hook"}).json()
    with srv.client("read") as read:
        error_of(read.post(f"/api/v1/triggers/{hook['id']}/rotate-secret"), 403)
    rotated = admin.post("/api/v1/triggers/rotated hook/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["id"] == hook["id"] and new["hook_path"] == hook["hook_path"]
    assert new["secret"].startswith("whsec_") and new["secret"] != hook["secret"]
    assert new["secret"] not in admin.get(f"/api/v1/triggers/{hook['id']}").text
    url, body = f"{srv.base}{hook['hook_path']}", b'{"rotated": true}'
    old = httpx.post(url, content=body, headers=signed_headers(hook["secret"], "r-1", body))
    error_of(old, 401)
    accepted = httpx.post(url, content=body, headers=signed_headers(new["secret"], "r-2", body))
    assert accepted.status_code == 202, accepted.text
    timed = admin.post("/api/v1/triggers", json={"agent": agent, "every": "1h"}).json()
    assert "no secret" in error_of(
        admin.post(f"/api/v1/triggers/{timed['id']}/rotate-secret"), 422)["detail"]


def test_trigger_list_is_paginated(admin: httpx.Client, agent: str) -> None:
    ids = [admin.post("/api/v1/triggers", json={"agent": agent, "every": f"{i + 1}h",
                                                "name": f"page-{i}"}).json()["id"]
           for i in range(7)]
    first = admin.get("/api/v1/triggers", params={"agent": agent, "limit": 5}).json()
    second = admin.get("/api/v1/triggers", params={"agent": agent, "limit": 5,
                                                   "offset": 5}).json()
    assert first["total"] == second["total"] == 7
    seen = [t["id"] for t in first["triggers"] + second["triggers"]]
    assert sorted(seen) == sorted(ids) and len(first["triggers"]) == 5
    for tid in ids:
        admin.delete(f"/api/v1/triggers/{tid}")


@pytest.mark.parametrize("body, field", [
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "0 0 30 2 *"}, "cron"),
    ({"cron": "* * * * *", "tz": "Mars/Olympus"}, "tz"),
    ({"every": "0s"}, "every"),
    ({"at": "2001-01-01T00:00:00Z"}, "at"),
    ({}, "schedule"),
    ({"cron": "* * * * *", "every": "1m"}, "schedule"),
    ({"cron": "* * * * *", "overlap": "sometimes"}, "overlap"),
    ({"webhook": True, "cron": "* * * * *"}, "webhook"),
    ({"cron": "* * * * *", "bogus": 1}, "bogus"),
    ({"cron": "* * * * *", "paused": None}, "paused"),  # found by schemathesis: was a 500
])
def test_trigger_validation_is_422_with_the_clis_text(srv: ApiServer, admin: httpx.Client,
                                                      agent: str, body: dict[str, Any],
                                                      field: str) -> None:
    error = error_of(admin.post("/api/v1/triggers", json={"agent": agent, **body}), 422)
    assert error["field"] == field, error
    if field != "bogus":  # an unknown JSON field is the API's own (no CLI flag for it)
        with pytest.raises(ValidationError) as cli:
            Services(srv.store).build_trigger(
                TriggerInput(agent=agent, **body), Services(srv.store).now())
        assert error["detail"] == str(cli.value)


def test_trigger_patch_and_next_validation(admin: httpx.Client, agent: str) -> None:
    tid = admin.post("/api/v1/triggers", json={"agent": agent, "every": "5m"}).json()["id"]
    assert error_of(admin.patch(f"/api/v1/triggers/{tid}", json={"jitter": "-1s"}),
                    422)["field"] == "jitter"
    assert error_of(admin.get(f"/api/v1/triggers/{tid}/next", params={"n": 0}),
                    422)["field"] == "n"
    assert error_of(admin.get(f"/api/v1/triggers/{tid}/next", params={"n": "x"}),
                    422)["field"] == "n"
    assert error_of(admin.get("/api/v1/triggers", params={"limit": 9999}),
                    422)["field"] == "limit"
    error_of(admin.post("/api/v1/triggers", json={"agent": "ghost", "every": "1m"}), 404)
    error_of(admin.get("/api/v1/triggers/tr_%00nul"), 404)
    admin.delete(f"/api/v1/triggers/{tid}")


# -- runs -----------------------------------------------------------------------------------


def test_runs_list_filters_and_cursor_pagination(srv: ApiServer, admin: httpx.Client) -> None:
    admin.put("/api/v1/agents/pager", json=HELLO)
    fired = [admin.post("/api/v1/agents/pager/fire", json={"payload": {"i": i}}).json()["id"]
             for i in range(25)]
    for run_id in fired:
        srv.wait_run(run_id)
    pages: list[list[str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"agent": "pager", "limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = admin.get("/api/v1/runs", params=params).json()
        pages.append([r["id"] for r in page["runs"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    # Newest first by run id (UUIDv7: time ordered; two ids of the same millisecond may
    # be in either order, so compare with the ids sorted, not with the order of firing).
    assert [run_id for p in pages for run_id in p] == sorted(fired, reverse=True)

    only = admin.get("/api/v1/runs", params={"agent": "pager", "status": "succeeded",
                                             "limit": 1000}).json()
    assert len(only["runs"]) == 25 and only["next_cursor"] is None
    none = admin.get("/api/v1/runs", params={"agent": "pager", "status": "failed"}).json()
    assert none["runs"] == []
    first = admin.get(f"/api/v1/runs/{fired[0]}").json()
    later = admin.get("/api/v1/runs", params={"agent": "pager", "since": first["queued_at"],
                                              "limit": 1000}).json()["runs"]
    assert len(later) == 25
    earlier = admin.get("/api/v1/runs", params={"agent": "pager",
                                                "until": first["queued_at"]}).json()["runs"]
    assert earlier == []


@pytest.mark.parametrize("params, field", [
    ({"limit": 0}, "limit"),
    ({"limit": 1001}, "limit"),
    ({"status": "done"}, "status"),
    ({"cursor": "not-a-run-id"}, "before"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-01-01T00:00:00"}, "since"),
    ({"agent": "no such/agent"}, "agent"),
])
def test_runs_list_validation(admin: httpx.Client, params: dict[str, Any], field: str
                              ) -> None:
    assert error_of(admin.get("/api/v1/runs", params=params), 422)["field"] == field


def test_a_run_document_shows_stdout_stderr_progress_and_a_retry_link(
        srv: ApiServer, admin: httpx.Client) -> None:
    script = "echo report; echo 'warning: slow disk' >&2; exit ${EXIT:-0}"
    for name, code in (("streams-ok", "0"), ("streams-bad", "4")):
        admin.put(f"/api/v1/agents/{name}", json={
            "kind": "command", "max_attempts": 1,
            "config": {"argv": ["/bin/sh", "-c", script], "env": {"EXIT": code}}})
    ok = srv.wait_run(admin.post("/api/v1/agents/streams-ok/fire", json={}).json()["id"])
    assert (ok["output"], ok["stderr"], ok["error"]) == ("report\n", "warning: slow disk\n",
                                                          None)
    bad = srv.wait_run(admin.post("/api/v1/agents/streams-bad/fire", json={}).json()["id"],
                       ("failed",))
    assert (bad["output"], bad["stderr"]) == ("report\n", "warning: slow disk\n")
    assert bad["error"] == "exit code 4: warning: slow disk"
    listed = admin.get("/api/v1/runs", params={"agent": "streams-bad"}).json()["runs"][0]
    assert listed["stderr"] == bad["stderr"] and listed["stderr_truncated"] is False

    admin.put("/api/v1/agents/reporter", json={
        "kind": "python", "config": {"target": "agentcron.examples:system_report"}})
    reported = srv.wait_run(admin.post("/api/v1/agents/reporter/fire", json={}).json()["id"])
    assert reported["progress"] == "collecting"  # its ctx.heartbeat("collecting")

    # Retrying the succeeded run queues a new run; the original keeps its output.
    again = admin.post(f"/api/v1/runs/{ok['id']}/retry").json()
    assert again["id"] != ok["id"] and again["retry_of"] == ok["id"]
    assert srv.wait_run(again["id"])["output"] == "report\n"
    original = admin.get(f"/api/v1/runs/{ok['id']}").json()
    assert (original["status"], original["output"]) == ("succeeded", "report\n")
    assert any(again["id"] in (e["message"] or "") for e in original["events"])
    # A failed run is queued again as itself.
    assert admin.post(f"/api/v1/runs/{bad['id']}/retry").json()["id"] == bad["id"]


def test_run_show_cancel_and_retry(srv: ApiServer, admin: httpx.Client) -> None:
    admin.put("/api/v1/agents/slow", json=SLEEPY)
    running = admin.post("/api/v1/agents/slow/fire", json={"payload": {"seconds": 30}})
    queued = admin.post("/api/v1/agents/slow/fire", json={"payload": {"seconds": 30}})
    running_id, queued_id = running.json()["id"], queued.json()["id"]
    srv.wait_run(running_id, ("running",))

    cancelled = admin.post(f"/api/v1/runs/{queued_id}/cancel").json()
    assert cancelled == {"id": queued_id, "status": "cancelled", "was": "queued"}
    assert admin.post(f"/api/v1/runs/{running_id}/cancel").json()["was"] == "running"
    srv.wait_run(running_id, ("cancelled",))
    error_of(admin.post(f"/api/v1/runs/{queued_id}/cancel"), 409)

    detail = admin.get(f"/api/v1/runs/{running_id}").json()
    assert "cancelled" in [e["kind"] for e in detail["events"]]
    assert detail["agent"] == "slow" and detail["started_at"]

    retried = admin.post(f"/api/v1/runs/{queued_id}/retry").json()
    assert retried["status"] in ("queued", "running")  # the free slot may take it at once
    assert retried["attempt"] in (0, 1) and retried["finished_at"] is None
    error_of(admin.post(f"/api/v1/runs/{queued_id}/retry"), 409)
    admin.post(f"/api/v1/runs/{queued_id}/cancel")

    assert admin.get(f"/api/v1/runs/{running_id[:13]}").json()["id"] == running_id
    assert error_of(admin.get(f"/api/v1/runs/{running_id[:3]}"), 422)["field"] == "run"
    error_of(admin.get("/api/v1/runs/00000000-0000-7000-8000-000000000000"), 404)
    error_of(admin.get("/api/v1/runs/garbage"), 404)
    error_of(admin.post("/api/v1/runs/garbage/cancel"), 404)


# -- nodes, stats, metrics --------------------------------------------------------------------


def test_nodes_stats_and_metrics(srv: ApiServer, admin: httpx.Client) -> None:
    nodes = admin.get("/api/v1/nodes").json()
    assert [n["id"] for n in nodes] == ["api-node"]
    assert nodes[0]["alive"] is True and nodes[0]["heartbeat_at"].endswith("Z")

    admin.put("/api/v1/agents/counted", json=HELLO)
    run_id = admin.post("/api/v1/agents/counted/fire", json={}).json()["id"]
    srv.wait_run(run_id)
    stats = admin.get("/api/v1/stats", params={"days": 2}).json()
    assert stats["nodes_alive"] == 1 and len(stats["hours"]) == 24
    assert stats["last_24h"]["succeeded"] >= 1
    assert sum(h["counts"]["succeeded"] for h in stats["hours"]) == \
        stats["last_24h"]["succeeded"]
    usage = [u for u in stats["usage"] if u["agent"] == "counted"]
    assert usage and usage[0]["runs"] == 1 and usage[0]["input_tokens"] > 0
    assert error_of(admin.get("/api/v1/stats", params={"days": 0}), 422)["field"] == "days"
    assert stats["overdue"] == 0 and stats["behind_s"] is None  # one node keeps up

    text = admin.get("/metrics").text
    for name in ("agentcron_fires_total", "agentcron_fire_lag_seconds_bucket",
                 "agentcron_runs_finished_total", "agentcron_queue_depth",
                 "agentcron_nodes{state=\"alive\"} 1.0", "agentcron_runs_last_24h",
                 "agentcron_tokens_total{agent=\"counted\",direction=\"input\"}",
                 "agentcron_missed_fires_total", "agentcron_lost_runs_recovered",
                 'agentcron_fires_total{kind="manual"}', "agentcron_triggers_overdue 0.0",
                 "agentcron_firing_behind_seconds 0.0", "agentcron_fires_held_back_total"):
        assert name in text, name


# -- webhooks over HTTP -----------------------------------------------------------------------


def test_webhook_trigger_end_to_end(srv: ApiServer, admin: httpx.Client, agent: str) -> None:
    created = admin.post("/api/v1/triggers", json={"agent": agent, "webhook": True})
    assert created.status_code == 201
    hook = created.json()
    assert hook["kind"] == "webhook" and hook["secret"].startswith("whsec_")
    assert hook["next_fire_at"] is None and hook["hook_path"] == f"/hooks/{hook['id']}"
    assert "secret" not in admin.get(f"/api/v1/triggers/{hook['id']}").json()
    url, secret = f"{srv.base}{hook['hook_path']}", hook["secret"]

    body = json.dumps({"name": "webhook"}).encode()
    accepted = httpx.post(url, content=body, headers=signed_headers(secret, "msg-1", body))
    assert accepted.status_code == 202, accepted.text
    run = srv.wait_run(accepted.json()["run_id"])
    assert run["payload"] == {"name": "webhook"} and run["trigger_id"] == hook["id"]
    assert "webhook" in (run["output"] or "")

    replay = httpx.post(url, content=body, headers=signed_headers(secret, "msg-1", body))
    assert error_of(replay, 409)["detail"].startswith("webhook-id 'msg-1' was already")
    forged = signed_headers("whsec_" + "A" * 43 + "=", "msg-2", body)
    assert "signature" in error_of(httpx.post(url, content=body, headers=forged), 401)["detail"]
    stale = signed_headers(secret, "msg-3", body, int(time.time()) - 301)
    assert "too old" in error_of(httpx.post(url, content=body, headers=stale), 401)["detail"]
    tampered = signed_headers(secret, "msg-4", body)
    error_of(httpx.post(url, content=body + b" ", headers=tampered), 401)
    error_of(httpx.post(url, content=body), 401)
    text = b"not json"
    assert error_of(httpx.post(url, content=text, headers=signed_headers(secret, "msg-5", text)),
                    422)["field"] == "body"
    big = json.dumps({"blob": "x" * (256 * 1024)}).encode()
    error_of(httpx.post(url, content=big, headers=signed_headers(secret, "msg-6", big)), 413)
    other = f"{srv.base}/hooks/tr_000000000000"
    error_of(httpx.post(other, content=body, headers=signed_headers(secret, "m", body)), 404)

    admin.post(f"/api/v1/triggers/{hook['id']}/pause")
    paused = httpx.post(url, content=body, headers=signed_headers(secret, "msg-7", body))
    assert "paused" in error_of(paused, 409)["detail"]
    admin.post(f"/api/v1/triggers/{hook['id']}/resume")
    again = httpx.post(url, content=body, headers=signed_headers(secret, "msg-7", body))
    assert again.status_code == 202
    with srv.client("read") as read:
        text_metrics = read.get("/metrics").text
    assert 'agentcron_fires_total{kind="webhook"}' in text_metrics


def test_the_node_log_holds_no_token(srv: ApiServer, admin: httpx.Client) -> None:
    """Runs last in this module: after every request above, no token is in the log."""
    admin.get("/api/v1/agents")
    log = Path(srv.proc.log_path).read_text(errors="replace")
    for token in srv.tokens.values():
        assert token not in log
    assert not re.search(r"act_[A-Za-z0-9_\-]{43}", log)
