"""Follow-ups in the worker protocol, through the real app (ASGI, in process), on both
backends: every complete form carries ``schedule``; its shape is checked by the schema
(bounded, objects only); a request the validator refuses never refuses the outcome.

``test_every_complete_form_creates_its_follow_ups`` needs ``Store.finish`` to write
``Outcome.follow_ups`` (issue 13, part A) and fails until that is merged."""

from __future__ import annotations

from typing import Any

from agentcron.api.app import create_app
from agentcron.models import RunStatus
from agentcron.rules.scheduling import MAX_FOLLOW_UPS
from agentcron.store import Store
from tests.interfaces.test_workers import Client, add_remote, claim, token, with_app


def _made_by_runs(store: Store) -> dict[str, Any]:
    return {t.name: t for t in store.list_triggers("r") if t.source == "run"}


def test_every_complete_form_creates_its_follow_ups(store: Store) -> None:
    add_remote(store, "r", max_concurrency=3)
    secret = token(store, "worker", ["r"])
    ids = [store.fire_now("r", n) for n in range(3)]

    def later(name: str) -> list[dict[str, Any]]:
        return [{"in": "2h", "name": name, "payload": {"from": name}}]

    async def test(client: Client) -> None:
        async with client(secret) as api:
            runs = {r["id"]: r for r in await claim(api, ["r"], most=3)}
            single, batched, carried = ids
            one = await api.post(f"/api/v1/runs/{single}/complete", json={
                "lease": runs[single]["lease"], "status": "succeeded",
                "schedule": later("single")})
            assert one.status_code == 200, one.text
            many = await api.post("/api/v1/workers/w1/complete", json={"outcomes": [
                {"id": batched, "lease": runs[batched]["lease"], "status": "succeeded",
                 "schedule": later("batched")}]})
            assert many.status_code == 200, many.text
            claimed = await api.post("/api/v1/workers/claim", json={
                "worker_id": "w1", "agents": ["r"], "wait": "0s", "outcomes": [
                    {"id": carried, "lease": runs[carried]["lease"], "status": "succeeded",
                     "schedule": later("carried")}]})
            assert claimed.status_code == 200, claimed.text

    with_app(store, test)
    made = _made_by_runs(store)
    assert set(made) == {"single", "batched", "carried"}
    for name, run_id in zip(("single", "batched", "carried"), ids, strict=True):
        assert made[name].payload == {"from": name}
        assert getattr(made[name], "created_by", None) == f"run:{run_id}"


def test_a_refused_follow_up_never_refuses_the_outcome(store: Store) -> None:
    add_remote(store, "r", max_concurrency=2, max_attempts=1)
    secret = token(store, "worker", ["r"])
    ok, failed = store.fire_now("r"), store.fire_now("r")

    async def test(client: Client) -> None:
        async with client(secret) as api:
            runs = {r["id"]: r for r in await claim(api, ["r"], most=2)}
            answer = await api.post("/api/v1/workers/w1/complete", json={"outcomes": [
                {"id": ok, "lease": runs[ok]["lease"], "status": "succeeded",
                 "output": "fine", "schedule": [{"cron": "every tuesday"},
                                                {"agent": "ghost", "in": "1h"}]},
                {"id": failed, "lease": runs[failed]["lease"], "status": "failed",
                 "error": "no", "schedule": [{"in": "1h"}]}]})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"results": [{"id": ok, "status": "succeeded"},
                                                 {"id": failed, "status": "failed"}]}

    with_app(store, test)
    assert store.get_run(ok).status is RunStatus.SUCCEEDED
    assert store.get_run(ok).output == "fine"
    assert store.get_run(failed).status is RunStatus.FAILED
    assert _made_by_runs(store) == {}


def test_the_schedule_list_is_bounded_and_holds_objects(store: Store) -> None:
    add_remote(store, "r")
    secret = token(store, "worker", ["r"])
    run_id = store.fire_now("r")

    async def test(client: Client) -> None:
        async with client(secret) as api:
            [run] = await claim(api, ["r"])
            path = f"/api/v1/runs/{run_id}/complete"
            many = await api.post(path, json={
                "lease": run["lease"], "status": "succeeded",
                "schedule": [{"in": "1h"}] * (MAX_FOLLOW_UPS + 1)})
            assert many.status_code == 422, many.text
            assert many.json()["field"] == "schedule"
            text = await api.post(path, json={"lease": run["lease"], "status": "succeeded",
                                              "schedule": ["in an hour"]})
            assert text.status_code == 422, text.text
            assert text.json()["field"].startswith("schedule")

    with_app(store, test)
    assert store.get_run(run_id).status is RunStatus.RUNNING  # nothing was written


def test_the_openapi_document_shows_the_schedule_of_an_outcome(store: Store) -> None:
    schemas = create_app(store, "api-node").openapi()["components"]["schemas"]
    for body in ("CompleteBody", "OutcomeBody"):
        schedule = schemas[body]["properties"]["schedule"]
        assert schedule["type"] == "array" and schedule["maxItems"] == MAX_FOLLOW_UPS
        assert schedule["items"]["type"] == "object"
        assert "follow_up_refused" in schedule["description"]
