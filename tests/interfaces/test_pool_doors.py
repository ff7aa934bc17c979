"""Rate-limit pools through every front door (the CLI, the agents file, the API) and end
to end: two real ``agentcron serve`` nodes and an llm test server that answers 429 above a
set rate; with a pool at that rate no run gets a 429, while an agent outside the pool,
fired the same way, does (so the test can fail)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agentcron.errors import ValidationError
from agentcron.models import RunStatus
from agentcron.services import AgentInput, Services
from agentcron.services.agents_file import load_agents_file
from agentcron.services.pools import PoolInput
from agentcron.store import Store
from tests.conftest import Cli
from tests.support.api_server import api_server
from tests.support.budgets import runs_of_agent, statuses
from tests.support.dashboard import session_client, sign_in
from tests.support.helpers import stored_agent, wait_until
from tests.support.llm_server import LlmServer
from tests.support.procs import ServeProcess

HELLO = {"kind": "python", "config": {"target": "agentcron.examples:hello"}}


def test_pools_set_list_delete_and_agents_that_name_them(ok: Callable[..., str], cli: Cli
                                                          ) -> None:
    shown = json.loads(ok("pools", "set", "openai", "--rpm", "500", "--tpm", "200000",
                          "--json"))
    assert (shown["requests_per_minute"], shown["tokens_per_minute"]) == (500, 200000)
    agent = json.loads(ok("agents", "add", "bot", "--python", "agentcron.examples:noop",
                          "--pool", "openai", "--rate", "60/m", "--json"))
    assert (agent["pool"], agent["rate"]) == ("openai", "60/m")
    assert "pool openai, 60/m of its own" in ok("agents", "show", "bot")
    [listed] = json.loads(ok("pools", "list", "--json"))
    assert listed["agents"] == ["bot"] and listed["requests_in_window"] == 0
    table = ok("pools", "list")
    assert "openai" in table and "0/500" in table and "bot" in table
    assert "pool openai deleted" in ok("pools", "delete", "openai")
    assert ok("pools", "list").strip() == "no pools"


@pytest.mark.parametrize(("args", "field"), [
    (["pools", "set", "openai"], "requests_per_minute"),
    (["pools", "set", "openai", "--rpm", "0"], "requests_per_minute"),
    (["pools", "set", "no way", "--rpm", "5"], "name"),
    (["agents", "add", "x", "--python", "agentcron.examples:noop", "--rate", "60"], "rate"),
    (["agents", "add", "x", "--python", "agentcron.examples:noop", "--rate", "0/m"], "rate"),
    (["agents", "add", "x", "--python", "agentcron.examples:noop", "--pool", "a b"], "pool"),
])
def test_bad_pools_and_rates_are_refused_naming_the_field(cli: Cli, args: list[str],
                                                          field: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert f"{field}:" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_pool_is_refused_when_deleted(cli: Cli) -> None:
    result = cli("pools", "delete", "nope")
    assert result.exit_code != 0 and "pool 'nope' not found" in result.stderr


def test_the_agents_file_declares_pools_and_owns_them(tmp_path: Path, sqlite_store: Store
                                                      ) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[pools.openai]\nrequests_per_minute = 500\ntokens_per_minute = 200000\n'
                    '[agents.summarise]\npython = "agentcron.examples:noop"\n'
                    'pool = "openai"\nrate = "10/s"\n')
    services = Services(sqlite_store)
    services.declared.sync_agents_file(load_agents_file(path), check_imports=False)
    [pool] = sqlite_store.list_pools()
    assert (pool.name, pool.requests_per_minute, pool.source) == ("openai", 500, "file")
    agent = sqlite_store.get_agent("summarise")
    assert (agent.pool, agent.rate) == ("openai", "10/s")
    # Gone from the file: gone from the database; a pool made by hand stays.
    services.pools.save(services.pools.build(PoolInput("manual", 5)))
    path.write_text('[agents.summarise]\npython = "agentcron.examples:noop"\n')
    services.declared.sync_agents_file(load_agents_file(path), check_imports=False)
    assert [p.name for p in sqlite_store.list_pools()] == ["manual"]
    path.write_text('[pools.openai]\nrequests_per_minute = -1\n')
    with pytest.raises(ValidationError) as bad:
        services.declared.sync_agents_file(load_agents_file(path), check_imports=False)
    assert "pools.openai" in str(bad.value) and "requests_per_minute" in str(bad.value)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_api_sets_lists_and_deletes_pools(pg_url: str, tmp_path: Path) -> None:
    with api_server(pg_url, tmp_path) as server, server.client("admin") as api:
        put = api.put("/api/v1/pools/openai", json={"requests_per_minute": 2})
        assert put.status_code == 200, put.text
        assert api.put("/api/v1/agents/a", json={**HELLO, "pool": "openai"}).json()["pool"] \
            == "openai"
        bad = api.put("/api/v1/pools/openai", json={"requests_per_minute": "lots"})
        assert bad.status_code == 422
        bad = api.put("/api/v1/pools/openai", json={})
        assert bad.status_code == 422 and bad.json()["field"] == "requests_per_minute"
        bad = api.put("/api/v1/agents/b", json={**HELLO, "rate": "fast"})
        assert bad.status_code == 422 and bad.json()["field"] == "rate"
        runs = [api.post("/api/v1/agents/a/fire", json={}).json()["id"] for _ in range(3)]
        wait_until(lambda: sum(server.store.get_run(r).status is RunStatus.SUCCEEDED
                               for r in runs) == 2, 30, "two runs to succeed")
        held = next(r for r in runs if server.store.get_run(r).status is RunStatus.QUEUED)
        # The reason is written by the first claim that finds the pool full, which may
        # come a poll after the second run's success.
        doc = wait_until(lambda: (d := api.get(f"/api/v1/runs/{held}").json())
                         ["waiting_reason"] and d, 10, "the held run to say why it waits")
        assert doc["waiting_reason"] == "pool openai at 2/2 requests/min"
        assert doc["status"] == "queued"
        [listed] = api.get("/api/v1/pools").json()
        assert (listed["requests_in_window"], listed["agents"]) == (2, ["a"])
        metrics = api.get("/metrics").text
        assert 'agentcron_pool_requests_in_window{pool="openai"} 2.0' in metrics
        assert api.delete("/api/v1/pools/openai").status_code == 204
        assert api.delete("/api/v1/pools/openai").status_code == 404


@pytest.mark.slow
@pytest.mark.postgres
def test_with_a_pool_at_the_providers_rate_no_run_gets_a_429(pg_store: Store, tmp_path: Path
                                                           ) -> None:
    store = pg_store
    llm = LlmServer.start()
    # The provider lets 3 requests through in any 58 s; the pool allows 3 starts in any
    # 60 s (the margin: a run's request reaches the server a little after its claim).
    pooled, plain = "echo;rpm=3;window=58", "echo;rpm=3;window=58;x=plain"
    config = tmp_path / "agents.toml"
    agent = ('llm = "{model}"\nbase_url = "' + llm.base_url + '"\nprompt = "hi {{{{ n }}}}"\n'
             'max_attempts = 1\nmax_concurrency = 10\n')
    config.write_text(
        '[pools.provider]\nrequests_per_minute = 3\n\n'
        '[agents.pooled]\n' + agent.format(model=pooled) + 'pool = "provider"\n\n'
        '[agents.plain]\n' + agent.format(model=plain))
    nodes = [ServeProcess(store.url, f"node-{i}", tmp_path, poll_interval="0.1s",
                          extra=["--config", str(config)]) for i in range(2)]
    try:
        for node in nodes:
            node.wait_for_log("node_started")
        burst = [store.fire_now("pooled", {"n": i}) for i in range(6)]
        unpooled = [store.fire_now("plain", {"n": i}) for i in range(6)]
        wait_until(lambda: all(s.terminal for s in statuses(store, unpooled)), 30,
                   "the unpooled burst to finish")
        wait_until(lambda: statuses(store, burst).count(RunStatus.SUCCEEDED) == 3, 30,
                   "the pool's first minute to start three")
        waiting = [store.get_run(r) for r in burst
                   if store.get_run(r).status is RunStatus.QUEUED]
        assert len(waiting) == 3
        assert all(r.waiting_reason == "pool provider at 3/3 requests/min" for r in waiting)
        wait_until(lambda: all(s.terminal for s in statuses(store, burst)), 120,
                   "the pooled burst to finish, a minute later")
        for node in nodes:
            assert node.stop() == 0, node.log()[-2000:]
    finally:
        for node in nodes:
            node.cleanup()
        requests = llm.requests()
        llm.stop()
    assert statuses(store, burst) == [RunStatus.SUCCEEDED] * 6
    assert not [r for r in requests if r["body"]["model"] == pooled and r["limited"]]
    # The control: the same burst without the pool is answered 429 above the rate.
    assert sum(1 for r in requests if r["body"]["model"] == plain and r["limited"]) == 3
    assert statuses(store, unpooled).count(RunStatus.FAILED) == 3
    starts = sorted(r.started_at for r in runs_of_agent(store, "pooled") if r.started_at)
    assert (starts[3] - starts[0]).total_seconds() >= 60


def test_the_dashboard_shows_pools_and_why_runs_wait(store: Store) -> None:
    services = Services(store)
    services.pools.save(services.pools.build(PoolInput("openai", 1, 1000)))
    services.agents.save(services.agents.build(AgentInput(
        name="bot", kind="python", config={"target": "agentcron.examples:noop"},
        pool="openai", max_concurrency=5)))
    now = services.now()
    runs = [store.fire_now("bot", None, now) for _ in range(2)]
    assert len(store.claim_runs("n", 5, now)) == 1
    [held] = [r for r in runs if store.get_run(r).status is RunStatus.QUEUED]

    async def main() -> tuple[str, str, str]:
        client, token = session_client(store)
        async with client:
            await sign_in(client, token)
            return ((await client.get("/agents")).text, (await client.get("/runs")).text,
                    (await client.get(f"/runs/{held}")).text)

    agents, listing, detail = asyncio.run(main())
    assert 'data-pool="openai"' in agents and "1 of 1" in agents and "pool openai" in agents
    assert "waiting: pool openai at 1/1 requests/min" in listing
    assert "pool openai at 1/1 requests/min" in detail


def test_the_python_api_takes_a_pool_and_a_rate(tmp_path: Path) -> None:
    from agentcron import Agentcron

    app = Agentcron(db=f"sqlite:///{tmp_path}/py.db")
    app.agent("summarise", pool="openai", rate="5/s")(_summarise)
    app.sync()
    agent = stored_agent(f"sqlite:///{tmp_path}/py.db", "summarise")
    assert (agent.pool, agent.rate) == ("openai", "5/s")


def _summarise() -> None:
    return None


def test_apply_dry_run_plans_the_files_pools(tmp_path: Path, sqlite_store: Store) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[pools.openai]\nrequests_per_minute = 500\n')
    services = Services(sqlite_store)
    plan = services.declared.plan_agents_file(load_agents_file(path))
    assert [(c.kind, c.name, c.action) for c in plan] == [("pool", "openai", "create")]
    services.declared.sync_agents_file(load_agents_file(path), check_imports=False)
    path.write_text('[pools.openai]\nrequests_per_minute = 600\n')
    [change] = services.declared.plan_agents_file(load_agents_file(path))
    assert (change.action, change.detail) == ("update", "requests_per_minute")
    path.write_text('')
    [change] = services.declared.plan_agents_file(load_agents_file(path))
    assert change.action == "remove"
    assert sqlite_store.list_pools()[0].requests_per_minute == 500  # nothing written
