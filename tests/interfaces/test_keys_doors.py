"""Concurrency keys through every front door: ``agents add --concurrency-key --max-per-key
--key-weight``, the agents file, the API body (PUT back as shown), the Python API; bad
input refused naming the field; ``runs list --key``, ``GET /api/v1/runs?key=`` and the
dashboard (an agent's key and its fullest keys, runs filtered by key); and a
real ``serve`` running a keyed agent never has more than ``max_per_key`` of a key running."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentcron.errors import ValidationError
from agentcron.models import KeyPolicy, RunStatus
from agentcron.python_api import Agentcron
from agentcron.rules.routing import Routing
from agentcron.services import AgentInput, Services
from agentcron.services.agents_file import load_agents_file
from agentcron.store import NodeInfo, RunFilter, Store
from tests.conftest import Cli
from tests.support.api_server import ApiServer, api_server
from tests.support.dashboard import session_client, sign_in
from tests.support.helpers import wait_until

SLEEPY = {"kind": "python", "config": {"target": "tests.support.agents:sleepy"},
          "timeout": "60s"}


def test_cli_sets_shows_and_filters_by_key(ok: Callable[..., str], cli: Cli) -> None:
    shown = json.loads(ok("agents", "add", "k", "--python", "agentcron.examples:noop",
                          "--concurrency-key", "{{ tenant }}", "--max-per-key", "2",
                          "--key-weight", "gold=3", "--json"))
    assert (shown["concurrency_key"], shown["max_per_key"], shown["key_weights"]) == (
        "{{ tenant }}", 2, {"gold": 3})
    shown_text = ok("agents", "show", "k")
    assert "at most 2 running per key" in shown_text and "none running" in shown_text
    gold = ok("fire", "k", "--payload", '{"tenant": "gold"}').strip()
    ok("fire", "k", "--payload", '{"tenant": "free"}')
    listed = json.loads(ok("runs", "list", "--key", "gold", "--json"))
    assert [r["id"] for r in listed] == [gold] and listed[0]["concurrency_key"] == "gold"
    assert "KEY" in ok("runs", "list")
    assert json.loads(ok("runs", "show", gold, "--json"))["concurrency_key"] == "gold"
    for args, field in ((("--concurrency-key", "tenant"), "concurrency-key"),
                        (("--max-per-key", "2"), "max-per-key"),
                        (("--concurrency-key", "{{ t }}", "--key-weight", "x"), "key-weight"),
                        (("--concurrency-key", "{{ t }}", "--key-weight", "x=0"),
                         "key-weights.x")):
        bad = cli("agents", "add", "bad", "--python", "agentcron.examples:noop", *args)
        assert bad.exit_code != 0 and field in bad.stderr, (args, bad.stderr)
        assert "Traceback" not in bad.stderr


def test_the_agents_file_takes_a_key(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.inbox]\npython = "agentcron.examples:noop"\n'
                    'concurrency_key = "{{ tenant }}"\nmax_per_key = 2\n'
                    '[agents.inbox.key_weights]\nacme = 4\n')
    [entry] = load_agents_file(path).agents.values()
    assert (entry.concurrency_key, entry.max_per_key, entry.key_weights) == (
        "{{ tenant }}", 2, {"acme": 4})
    path.write_text('[agents.inbox]\npython = "agentcron.examples:noop"\n'
                    'max_per_key = "two"\n')
    with pytest.raises(ValidationError):
        load_agents_file(path)


def test_the_python_api_takes_a_key(tmp_path: Path) -> None:
    app = Agentcron(f"sqlite:///{tmp_path / 'k.db'}")

    @app.agent(concurrency_key="{{ tenant }}", max_per_key=3)
    def summarise() -> None:
        """Summarise an inbox."""

    [spec] = app._agents
    assert (spec.concurrency_key, spec.max_per_key) == ("{{ tenant }}", 3)


@pytest.fixture(scope="module")
def srv(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(pg_url, tmp_path_factory.mktemp("keys")) as server:
        yield server


@pytest.mark.slow
@pytest.mark.postgres
def test_api_and_a_real_node_hold_the_key(srv: ApiServer, pg_url: str) -> None:
    with srv.client("admin") as api:
        body = {**SLEEPY, "max_concurrency": 4, "concurrency_key": "{{ tenant }}",
                "max_per_key": 1}
        put = api.put("/api/v1/agents/inbox", json=body)
        assert put.status_code in (200, 201), put.text
        shown = put.json()
        assert shown["concurrency_key"] == "{{ tenant }}" and shown["max_per_key"] == 1
        again = api.put("/api/v1/agents/inbox", json={
            k: v for k, v in shown.items()
            if k not in ("name", "source", "created_at", "timeout_s", "retry_backoff_s",
                         "zombie_timeout_s")})
        assert again.status_code == 200 and again.json()["max_per_key"] == 1, again.text
        bad = api.put("/api/v1/agents/bad", json={**SLEEPY, "concurrency_key": "{{ x | e }}"})
        assert bad.status_code == 422 and bad.json()["field"] == "concurrency-key", bad.text

        store = Store(pg_url)
        peak = {"A": 0}
        stop = threading.Event()

        def watch() -> None:  # the real node's running runs of key A, sampled throughout
            while not stop.is_set():
                running = store.list_runs(RunFilter(agent="inbox", key="A",
                                                    status=RunStatus.RUNNING), limit=100)
                peak["A"] = max(peak["A"], len(running))

        ids = [api.post("/api/v1/agents/inbox/fire",
                        json={"payload": {"tenant": "A", "seconds": 0.3}}).json()["id"]
               for _ in range(4)]
        ids.append(api.post("/api/v1/agents/inbox/fire",
                            json={"payload": {"tenant": "B", "seconds": 0.3}}).json()["id"])
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            # While A's runs go one at a time, its key shows full (1 of 1).
            wait_until(lambda: {"key": "A", "running": 1, "max": 1, "full": True} in
                       api.get("/api/v1/agents/inbox/keys").json()["keys"], timeout=20,
                       message="key A never showed full")
            for run_id in ids:
                assert srv.wait_run(run_id)["status"] == "succeeded"
        finally:
            stop.set()
            watcher.join()
            store.close()
        assert peak["A"] == 1
        usage = api.get("/api/v1/agents/inbox/keys").json()
        assert usage["max_per_key"] == 1 and usage["keys"] == []  # all done: none running
        keyed = api.get("/api/v1/runs", params={"key": "B"}).json()["runs"]
        assert [r["id"] for r in keyed] == [ids[-1]]
        assert keyed[0]["concurrency_key"] == "B"


def test_key_policy_is_a_plain_value() -> None:
    assert KeyPolicy("{{ t }}", 2) == KeyPolicy("{{ t }}", 2, {})


def test_the_readme_example_keys_each_tenants_runs(tmp_path: Path) -> None:
    """The "Many tenants" agents file, as the README has it, synced and fired."""
    from datetime import timedelta

    from agentcron.services import Services
    from tests.support.procs import REPO

    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- many-tenants:file agents.toml -->\n+```toml\n(.*?)```", readme,
                      re.S)
    assert block is not None
    path = tmp_path / "agents.toml"
    path.write_text(block.group(1))
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        store.upgrade()
        Services(store).sync_agents_file(load_agents_file(path))
        spec = store.get_agent("inbox-summary")
        assert spec.keys == KeyPolicy("{{ tenant }}", 2, {"acme": 3})
        assert spec.pool == "provider"
        [pool] = store.list_pools()
        assert (pool.name, pool.requests_per_minute) == ("provider", 500)
        due, _ = store.next_due_at()
        assert due is not None
        store.fire_due(due + timedelta(seconds=1))
        keys = sorted(r.concurrency_key for r in store.list_runs(RunFilter(), limit=10))
        assert keys == ["acme", "globex"]
    finally:
        store.close()


def test_the_dashboard_shows_keys_and_filters_runs_by_key(store: Store) -> None:
    services = Services(store)
    # Tagged: the module's real node (``srv``, on the same database) must not take them.
    services.agents.save(services.agents.build(AgentInput(
        name="inbox", kind="python", config={"target": "agentcron.examples:noop"},
        max_concurrency=5, concurrency_key="{{ tenant }}", max_per_key=1,
        tags=["dashboard-test"])))
    now = services.now()
    acme = [store.fire_now("inbox", {"tenant": "acme"}, now) for _ in range(2)]
    globex = store.fire_now("inbox", {"tenant": "globex"}, now)
    # A node row with a fresh heartbeat: the real node's sweeper recovers at once the
    # runs of a node that has none ("its node row is gone"), which raced the page below.
    store.register_node(NodeInfo("n", "h", 1, "t", 60), now)
    claimed = store.claim_runs("n", 5, now, Routing.of(tags=["dashboard-test"]))
    assert len(claimed) == 2  # one of acme's, globex's

    async def main() -> tuple[str, str]:
        client, token = session_client(store)
        async with client:
            await sign_in(client, token)
            return ((await client.get("/agents")).text,
                    (await client.get("/runs?agent=inbox&key=acme")).text)

    agents, listing = asyncio.run(main())
    assert "key <code>{{ tenant }}</code>, at most 1 running per key" in agents
    for key in ("acme", "globex"):
        row = re.search(rf'data-key="{key}">.*?</tr>', agents, re.S)
        assert row is not None and "1 of 1" in row.group(0) and "reached" in row.group(0)
    assert all(f'data-run="{run}"' in listing for run in acme)
    assert f'data-run="{globex}"' not in listing
    assert 'name="key" value="acme"' in listing
