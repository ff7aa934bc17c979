"""The remote worker protocol on both backends, through the real app (ASGI, in process):
a claim / beat / complete round trip, stale leases refused with nothing changed, the
worker scope's limits, retries as the agent's policy says, and the long poll answering as
soon as a run becomes ready."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest

from agentcron.api.app import create_app
from agentcron.models import RunStatus
from agentcron.services import Services
from agentcron.services.access import Access
from agentcron.services.agents import AgentInput
from agentcron.store import Store
from agentcron.store.workers import WorkerCall
from tests.support.helpers import add_agent, await_until

_names = itertools.count()
Client = Callable[[str], httpx.AsyncClient]


def add_remote(store: Store, name: str, **settings: Any) -> None:
    agents = Services(store).agents
    agents.save(agents.build(AgentInput(name=name, kind="remote", config={}, **settings),
                             "cli"))


def token(store: Store, scope: str, agents: list[str] | None = None) -> str:
    return Access(store).create_token(f"t{next(_names)}", scope, agents=agents)[1]


def with_app(store: Store, test: Callable[[Client], Awaitable[None]]) -> None:
    app = create_app(store, "api-node")

    def client(value: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://api.test", timeout=120,
                                 headers={"Authorization": f"Bearer {value}"})

    asyncio.run(test(client))


async def claim(api: httpx.AsyncClient, agents: list[str], worker: str = "w1",
                wait: str = "0s", most: int = 1) -> list[dict[str, Any]]:
    answer = await api.post("/api/v1/workers/claim",
                            json={"worker_id": worker, "agents": agents, "max": most,
                                  "wait": wait})
    assert answer.status_code == 200, answer.text
    runs: list[dict[str, Any]] = answer.json()["runs"]
    return runs


def test_a_worker_claims_beats_and_completes_a_run(store: Store) -> None:
    add_remote(store, "r", timeout="1m")
    secret = token(store, "worker", ["r"])
    run_id = store.fire_now("r", {"n": 1})

    async def test(client: Client) -> None:
        async with client(secret) as api:
            [run] = await claim(api, ["r"])
            assert run["id"] == run_id and run["agent"] == "r" and run["attempt"] == 1
            assert run["payload"] == {"n": 1} and run["deadline_at"] and run["lease"] >= 1
            assert set(run) == {"id", "lease", "attempt", "agent", "trigger_id",
                                "scheduled_for", "payload", "deadline_at", "zombie_timeout_s"}
            # The agent sets none: the serving node's (the app's default here).
            assert run["zombie_timeout_s"] == 60.0
            beat = await api.post("/api/v1/workers/w1/heartbeat",
                                  json={"runs": [{"id": run_id, "lease": run["lease"]}]})
            assert beat.status_code == 200 and beat.json() == {"revoked": []}
            done = await api.post(f"/api/v1/runs/{run_id}/complete", json={
                "lease": run["lease"], "status": "succeeded", "output": "hi",
                "usage": {"input_tokens": 3, "output_tokens": 4, "cost_usd": 0.5,
                          "model": "m"}})
            assert done.status_code == 200, done.text
            assert done.json() == {"id": run_id, "status": "succeeded"}

    with_app(store, test)
    stored = store.get_run(run_id)
    assert stored.status is RunStatus.SUCCEEDED and stored.output == "hi"
    assert stored.node_id == "worker:w1"
    assert (stored.input_tokens, stored.output_tokens, stored.cost_usd) == (3, 4, 0.5)
    [worker] = store.list_workers()
    assert worker.id == "w1" and worker.agents == ["r"] and worker.running == 0


def test_nodes_never_claim_a_remote_run(store: Store) -> None:
    add_remote(store, "r")
    add_agent(store, "local")
    store.fire_now("r")
    local = store.fire_now("local")
    claimed = store.claim_runs("node-1", 10)
    assert [c.run_id for c in claimed] == [local]
    assert store.claim_runs("node-1", 10) == []


def test_a_stale_lease_is_409_and_changes_nothing(store: Store) -> None:
    add_remote(store, "r")
    secret = token(store, "worker", ["r"])
    run_id = store.fire_now("r")

    async def test(client: Client) -> None:
        async with client(secret) as api:
            [run] = await claim(api, ["r"])
            lease = run["lease"]
            for path, body in (("complete", {"lease": lease + 1, "status": "succeeded"}),
                               ("release", {"lease": lease + 1})):
                stale = await api.post(f"/api/v1/runs/{run_id}/{path}", json=body)
                assert stale.status_code == 409, stale.text
                assert "stale lease" in stale.json()["detail"]
            assert store.get_run(run_id).status is RunStatus.RUNNING
            ok = await api.post(f"/api/v1/runs/{run_id}/complete",
                                json={"lease": lease, "status": "succeeded", "output": "1"})
            assert ok.status_code == 200
            again = await api.post(f"/api/v1/runs/{run_id}/complete",
                                   json={"lease": lease, "status": "failed", "error": "x"})
            assert again.status_code == 409
            late = await api.post(f"/api/v1/runs/{run_id}/release", json={"lease": lease})
            assert late.status_code == 409

    with_app(store, test)
    stored = store.get_run(run_id)
    assert stored.status is RunStatus.SUCCEEDED and stored.output == "1"
    assert stored.error is None


def test_release_hands_the_run_back_with_its_attempt(store: Store) -> None:
    add_remote(store, "r")
    secret = token(store, "worker", ["r"])
    run_id = store.fire_now("r")

    async def test(client: Client) -> None:
        async with client(secret) as api:
            [run] = await claim(api, ["r"])
            back = await api.post(f"/api/v1/runs/{run_id}/release",
                                  json={"lease": run["lease"]})
            assert back.json() == {"id": run_id, "status": "queued"}
            [again] = await claim(api, ["r"], worker="w2")
            assert again["id"] == run_id and again["attempt"] == 1
            assert again["lease"] == run["lease"] + 1

    with_app(store, test)


def test_a_failure_with_retry_follows_the_agents_policy(store: Store) -> None:
    add_remote(store, "r", max_attempts=2, retry_backoff="0.01s")
    secret = token(store, "worker", ["r"])
    run_id = store.fire_now("r")

    async def test(client: Client) -> None:
        async with client(secret) as api:
            [first] = await claim(api, ["r"])
            retried = await api.post(f"/api/v1/runs/{run_id}/complete", json={
                "lease": first["lease"], "status": "failed", "error": "flaky", "retry": True})
            assert retried.json()["status"] == "queued"
            [second] = await claim(api, ["r"], wait="30s")
            assert second["attempt"] == 2
            final = await api.post(f"/api/v1/runs/{run_id}/complete", json={
                "lease": second["lease"], "status": "failed", "error": "again",
                "retry": True})
            assert final.json()["status"] == "failed"  # no attempts left

    with_app(store, test)
    assert store.get_run(run_id).status is RunStatus.FAILED


def test_the_worker_scope_is_limited_to_its_agents_and_its_routes(store: Store) -> None:
    add_remote(store, "a")
    add_remote(store, "b")
    add_agent(store, "local")
    worker_a = token(store, "worker", ["a"])
    worker_b = token(store, "worker", ["b"])
    admin = token(store, "admin")
    run_b = store.fire_now("b")

    async def test(client: Client) -> None:
        async with client(worker_a) as api:
            for method, path in (("GET", "/api/v1/runs"), ("GET", "/api/v1/agents"),
                                 ("GET", "/api/v1/workers"), ("POST", "/api/v1/agents/a/fire"),
                                 ("GET", "/metrics")):
                refused = await api.request(method, path)
                assert refused.status_code == 403, (path, refused.text)
            other = await api.post("/api/v1/workers/claim",
                                   json={"worker_id": "w", "agents": ["a", "b"]})
            assert other.status_code == 403 and "'b'" in other.json()["detail"]
            local = await api.post("/api/v1/workers/claim",
                                   json={"worker_id": "w", "agents": ["local"]})
            assert local.status_code == 403
        async with client(worker_b) as api:
            [run] = await claim(api, ["b"], worker="wb")
        async with client(worker_a) as api:
            stolen = await api.post(f"/api/v1/runs/{run_b}/complete",
                                    json={"lease": run["lease"], "status": "succeeded"})
            assert stolen.status_code == 403
            taken = await api.post("/api/v1/workers/claim",
                                   json={"worker_id": "wb", "agents": ["a"]})
            assert taken.status_code == 409  # another token's worker id
        async with client(admin) as api:
            refused = await api.post("/api/v1/workers/claim",
                                     json={"worker_id": "w", "agents": ["a"]})
            assert refused.status_code == 403
            listed = await api.get("/api/v1/workers")
            # Only a worker that got past the checks has a row.
            assert [(w["id"], w["state"], w["running"]) for w in listed.json()] == [
                ("wb", "active", 1)]

    with_app(store, test)
    assert store.get_run(run_b).status is RunStatus.RUNNING


def test_a_worker_token_needs_agents_and_only_it_takes_them(store: Store) -> None:
    from agentcron.errors import ValidationError

    access = Access(store)
    with pytest.raises(ValidationError, match="agents"):
        access.create_token("w", "worker")
    with pytest.raises(ValidationError, match="agents"):
        access.create_token("r", "read", agents=["a"])
    saved, _ = access.create_token("w", "worker", agents=["b", "a", "a"])
    assert saved.agents == ["a", "b"]


def test_a_waiting_claim_answers_as_soon_as_a_run_is_fired(store: Store) -> None:
    add_remote(store, "r")
    secret = token(store, "worker", ["r"])

    async def test(client: Client) -> None:
        async with client(secret) as api:
            began = time.monotonic()
            waiting = asyncio.create_task(claim(api, ["r"], wait="60s"))
            # Once its first attempt has found nothing (it wrote the worker's row), the
            # claim waits; the run fired then must end the wait long before its 60 s.
            await await_until(lambda: bool(store.list_workers()), 30, "the first attempt")
            run_id = await asyncio.to_thread(store.fire_now, "r")
            [run] = await waiting
            assert run["id"] == run_id
            assert time.monotonic() - began < 30  # the wait was 60 s

    with_app(store, test)


def test_a_claim_with_nothing_ready_answers_empty_after_its_wait(store: Store) -> None:
    add_remote(store, "r")
    secret = token(store, "worker", ["r"])

    async def test(client: Client) -> None:
        async with client(secret) as api:
            assert await claim(api, ["r"], wait="0.3s") == []

    with_app(store, test)


def test_the_cli_adds_remote_agents_worker_tokens_and_lists_workers(cli: Any, db_url: str,
                                                                    tmp_path: Any) -> None:
    import json

    def ok(*args: str) -> str:
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return str(result.stdout)

    ok("db", "upgrade")
    ok("agents", "add", "gpu", "--remote", "--max-concurrency", "2", "--timeout", "5m",
       "--max-attempts", "4", "--zombie-timeout", "30s")
    [agent] = json.loads(ok("agents", "list", "--json"))
    assert (agent["kind"], agent["max_concurrency"], agent["zombie_timeout_s"]) == \
        ("remote", 2, 30.0)
    made = json.loads(ok("tokens", "create", "box", "--scope", "worker", "--agents", "gpu",
                         "--json"))
    assert made["scope"] == "worker" and made["agents"] == ["gpu"]
    refused = cli("tokens", "create", "box2", "--scope", "worker")
    assert refused.exit_code == 2 and "agents" in refused.stderr
    assert json.loads(ok("workers", "list", "--json")) == []
    store = Store(db_url)
    try:
        store.fire_now("gpu")
        store.worker_claim(WorkerCall("box-1", "box", version="1.2"), ["gpu"], 1)
    finally:
        store.close()
    [listed] = json.loads(ok("workers", "list", "--json"))
    assert (listed["id"], listed["agents"], listed["state"], listed["running"],
            listed["version"]) == ("box-1", ["gpu"], "active", 1, "1.2")
    assert "box-1" in ok("workers", "list")
    agents_file = tmp_path / "agents.toml"
    agents_file.write_text('[agents.far]\nremote = true\nmax_concurrency = 3\n')
    ok("agents", "check", str(agents_file))
    from agentcron.services.agents_file import load_agents_file

    store = Store(db_url)
    try:
        Services(store).sync_agents_file(load_agents_file(agents_file))
        far = store.get_agent("far")
        assert (far.kind.value, far.max_concurrency) == ("remote", 3)
    finally:
        store.close()


def test_a_worker_token_cannot_sign_in_to_the_dashboard_and_a_reader_sees_workers(
        store: Store) -> None:
    from tests.support.dashboard import BASE, session_client, sign_in

    add_remote(store, "r")
    secret = token(store, "worker", ["r"])
    store.fire_now("r")
    store.worker_claim(WorkerCall("w9", "someone"), ["r"], 1)

    async def main() -> None:
        client, reader = session_client(store, "read")
        async with client:
            refused = await client.post("/login", data={"token": secret},
                                        headers={"Origin": BASE})
            assert refused.status_code == 403 and "worker" in refused.text
            await sign_in(client, reader)
            page = await client.get("/workers")
            assert page.status_code == 200
            assert 'data-worker="w9"' in page.text and ">active<" in page.text

    asyncio.run(main())


def test_waiting_claims_hold_no_connection_and_all_answer_when_runs_are_fired(
        store: Store) -> None:
    """More claims wait at once than the store has connections and the API has threads:
    the API keeps answering meanwhile, and each claim gets its run when they are fired."""
    add_remote(store, "r", max_concurrency=50)
    secret = token(store, "worker", ["r"])
    reader = token(store, "read")
    waiting_n = 20

    async def test(client: Client) -> None:
        async with client(secret) as api, client(reader) as read:
            waiting = [asyncio.create_task(claim(api, ["r"], worker=f"w{i}", wait="60s"))
                       for i in range(waiting_n)]
            for _ in range(3):  # answered while the claims wait
                listed = await read.get("/api/v1/runs")
                assert listed.status_code == 200
            assert not any(task.done() for task in waiting)
            fired = [await asyncio.to_thread(store.fire_now, "r") for _ in range(waiting_n)]
            got = await asyncio.wait_for(asyncio.gather(*waiting), timeout=50)
            assert sorted(run["id"] for runs in got for run in runs) == sorted(fired)

    with_app(store, test)


def test_metrics_count_claims_and_show_workers_by_state(store: Store) -> None:
    add_remote(store, "r", zombie_timeout="10s")
    secret = token(store, "worker", ["r"])
    reader = token(store, "read")
    store.fire_now("r")
    # A worker silent since long ago: lost.
    old = store.now() - timedelta(minutes=5)
    store.worker_claim(WorkerCall("old", "someone"), ["r"], 0, old)

    async def test(client: Client) -> None:
        async with client(secret) as api, client(reader) as read:
            assert len(await claim(api, ["r"])) == 1
            assert await claim(api, ["r"]) == []
            text = (await read.get("/metrics")).text
            assert 'agentcron_worker_claims_total{result="runs"} 1.0' in text
            assert 'agentcron_worker_claims_total{result="empty"} 1.0' in text
            assert "agentcron_worker_runs_claimed_total 1.0" in text
            assert 'agentcron_workers{state="lost"} 1.0' in text
            assert 'agentcron_workers{state="active"} 1.0' in text

    with_app(store, test)


@pytest.mark.postgres
def test_a_run_fired_by_another_process_wakes_the_claim_through_notify(
        pg_store: Store) -> None:
    """The claim's own store never writes the run: only PostgreSQL's notification, through
    the app's one listener, can wake it (before its 60 s wait, and before its 5 s poll
    would find the run: the wake-up is counted as a signalled one)."""
    store = pg_store
    add_remote(store, "r")
    secret = token(store, "worker", ["r"])
    app = create_app(store, "api-node")
    other = Store(store.url)

    async def test() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api.test", timeout=120,
                                     headers={"Authorization": f"Bearer {secret}"}) as api:
            waiting = asyncio.create_task(claim(api, ["r"], wait="60s"))
            # The claim's first attempt (which writes the worker's row) found nothing; it
            # took its ticket before that attempt, so any signal from now on wakes it. If
            # the listener connects only after the fire's notification, its "reconnected"
            # signal on connecting does.
            await await_until(lambda: bool(other.list_workers()), 30, "the first attempt")
            run_id = await asyncio.to_thread(other.fire_now, "r")
            [run] = await waiting
            assert run["id"] == run_id

    try:
        asyncio.run(test())
    finally:
        other.close()
    wakeups = app.state.worker_metrics.wakeup.collect()[0]
    count = next(s.value for s in wakeups.samples if s.name.endswith("_count"))
    assert count == 1


def test_a_slot_freed_by_a_complete_goes_to_a_waiting_claim(store: Store) -> None:
    add_remote(store, "r", max_concurrency=1)
    secret = token(store, "worker", ["r"])
    first_id = store.fire_now("r")
    second_id = store.fire_now("r")

    async def test(client: Client) -> None:
        async with client(secret) as api:
            [first] = await claim(api, ["r"], worker="a")
            assert first["id"] == first_id
            waiting = asyncio.create_task(claim(api, ["r"], worker="b", wait="60s"))
            await await_until(lambda: len(store.list_workers()) == 2, 30, "b's first try")
            assert not waiting.done()  # the limit holds: b waits
            done = await api.post(f"/api/v1/runs/{first_id}/complete",
                                  json={"lease": first["lease"], "status": "succeeded"})
            assert done.status_code == 200
            [second] = await asyncio.wait_for(waiting, timeout=50)
            assert second["id"] == second_id

    with_app(store, test)


# -- outcomes in batches -----------------------------------------------------------------------


def test_a_batched_complete_writes_each_outcome_and_answers_stale_ones(store: Store) -> None:
    add_remote(store, "r", max_attempts=2, retry_backoff="1m", max_concurrency=3)
    secret = token(store, "worker", ["r"])
    ids = [store.fire_now("r", {"n": n}) for n in range(3)]

    async def test(client: Client) -> None:
        async with client(secret) as api:
            runs = {r["id"]: r for r in await claim(api, ["r"], most=3)}
            assert set(runs) == set(ids)
            done, retried, stale = ids
            answer = await api.post("/api/v1/workers/w1/complete", json={"outcomes": [
                {"id": done, "lease": runs[done]["lease"], "status": "succeeded",
                 "output": "ok", "usage": {"input_tokens": 2, "cost_usd": 0.25}},
                {"id": retried, "lease": runs[retried]["lease"], "status": "failed",
                 "error": "flaky", "retry": True},
                {"id": stale, "lease": runs[stale]["lease"] + 1, "status": "succeeded"}]})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"results": [
                {"id": done, "status": "succeeded"}, {"id": retried, "status": "queued"},
                {"id": stale, "status": "stale"}]}
            # Another worker of the same token does not hold the run: stale, nothing written.
            other = await api.post("/api/v1/workers/w2/complete", json={"outcomes": [
                {"id": stale, "lease": runs[stale]["lease"], "status": "succeeded"}]})
            assert other.json() == {"results": [{"id": stale, "status": "stale"}]}

    with_app(store, test)
    done_run, retried_run, stale_run = (store.get_run(r) for r in ids)
    assert done_run.status is RunStatus.SUCCEEDED and done_run.output == "ok"
    assert (done_run.input_tokens, done_run.cost_usd) == (2, 0.25)
    assert retried_run.status is RunStatus.QUEUED and retried_run.attempt == 1
    assert retried_run.error == "flaky"
    assert stale_run.status is RunStatus.RUNNING and stale_run.output is None


def test_a_batched_complete_with_one_bad_outcome_writes_nothing(store: Store) -> None:
    add_remote(store, "r", max_concurrency=2)
    add_remote(store, "s")
    secret = token(store, "worker", ["r"])
    other_secret = token(store, "worker", ["s"])
    first, second = store.fire_now("r"), store.fire_now("r")
    theirs = store.fire_now("s")

    async def test(client: Client) -> None:
        async with client(secret) as api, client(other_secret) as other:
            runs = {r["id"]: r for r in await claim(api, ["r"], most=2)}
            [their_run] = await claim(other, ["s"], worker="w9")
            ok = {"id": first, "lease": runs[first]["lease"], "status": "succeeded"}
            path = "/api/v1/workers/w1/complete"
            bad = await api.post(path, json={"outcomes": [
                ok, {"id": second, "lease": runs[second]["lease"], "status": "done"}]})
            assert bad.status_code == 422, bad.text
            assert bad.json()["field"] == "outcomes[1].status"
            unknown = await api.post(path, json={"outcomes": [
                ok, {"id": "no-such-run", "lease": 1, "status": "succeeded"}]})
            assert unknown.status_code == 404, unknown.text
            foreign = await api.post(path, json={"outcomes": [
                ok, {"id": theirs, "lease": their_run["lease"], "status": "succeeded"}]})
            assert foreign.status_code == 403, foreign.text
            twice = await api.post(path, json={"outcomes": [ok, ok]})
            assert twice.status_code == 422 and twice.json()["field"] == "outcomes"
            empty = await api.post(path, json={"outcomes": []})
            assert empty.status_code == 422, empty.text
            async with client(token(store, "read")) as reader:
                refused = await reader.post(path, json={"outcomes": [ok]})
                assert refused.status_code == 403, refused.text

    with_app(store, test)
    assert [store.get_run(r).status for r in (first, second, theirs)] == [RunStatus.RUNNING] * 3


def test_a_claim_carries_the_outcomes_of_the_runs_that_ended(store: Store) -> None:
    add_remote(store, "r", max_concurrency=2)
    secret = token(store, "worker", ["r"])
    ids = [store.fire_now("r", n) for n in range(4)]

    async def test(client: Client) -> None:
        async with client(secret) as api:
            first = await claim(api, ["r"], most=2)
            # At its limit: nothing more until the outcomes the next claim carries free
            # the slots, and that claim then hands the freed slots out.
            assert await claim(api, ["r"], most=2) == []
            answer = await api.post("/api/v1/workers/claim", json={
                "worker_id": "w1", "agents": ["r"], "max": 2, "wait": "0s",
                "outcomes": [{"id": r["id"], "lease": r["lease"], "status": "succeeded",
                              "output": "done"} for r in first]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["results"] == [{"id": r["id"], "status": "succeeded"} for r in first]
            assert {r["id"] for r in body["runs"]} == set(ids) - {r["id"] for r in first}
            bad = await api.post("/api/v1/workers/claim", json={
                "worker_id": "w1", "agents": ["r"], "max": 2, "wait": "0s",
                "outcomes": [{"id": body["runs"][0]["id"], "lease": "x",
                              "status": "succeeded"}]})
            assert bad.status_code == 422, bad.text
            plain = await api.post("/api/v1/workers/claim", json={
                "worker_id": "w1", "agents": ["r"], "wait": "0s"})
            assert plain.json() == {"runs": [], "results": []}

    with_app(store, test)
    outputs = [(store.get_run(r).status, store.get_run(r).output) for r in ids]
    assert outputs.count((RunStatus.SUCCEEDED, "done")) == 2
    assert outputs.count((RunStatus.RUNNING, None)) == 2


def test_the_openapi_document_gives_the_batched_outcomes_exact_schemas(store: Store) -> None:
    spec = create_app(store, "api-node").openapi()
    schemas = spec["components"]["schemas"]
    post = spec["paths"]["/api/v1/workers/{worker_id}/complete"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/CompleteManyBody")
    outcomes = schemas["CompleteManyBody"]["properties"]["outcomes"]
    assert (outcomes["minItems"], outcomes["maxItems"]) == (1, 1000)
    outcome = schemas["OutcomeBody"]
    assert set(outcome["required"]) == {"id", "lease", "status"}
    assert outcome["additionalProperties"] is False
    assert set(outcome["properties"]) == {"id", "lease", "status", "output", "error",
                                          "retry", "usage", "schedule"}
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert answer.endswith("/CompleteManyOut")
    assert set(schemas["OutcomeOut"]["required"]) == {"id", "status"}
    assert schemas["ClaimBody"]["properties"]["outcomes"]["items"]["$ref"].endswith(
        "/OutcomeBody")
    assert "results" in schemas["ClaimOut"]["properties"]
