"""Routing through every front door: ``agents add --tag``, ``tags = [...]`` in the agents
file, ``tags`` in the API, ``Agentcron(tags=...)``; a real ``serve`` given
``AGENTCRON_TAGS`` runs the agents with its tag, leaves the others queued, and lists its
routing in ``/api/v1/nodes``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agentcron.engine.settings import settings_from_env
from agentcron.errors import ValidationError
from agentcron.rules.routing import Routing
from agentcron.services.agents_file import load_agents_file
from agentcron.store import Store
from tests.conftest import Cli
from tests.support.api_server import ApiServer, api_server

HELLO = {"kind": "python", "config": {"target": "agentcron.examples:hello"}}


def test_agents_add_takes_repeated_tags(ok: Callable[..., str], cli: Cli) -> None:
    shown = json.loads(ok("agents", "add", "r", "--python", "agentcron.examples:noop",
                          "--tag", "gpu", "--tag", "cuda", "--json"))
    assert shown["tags"] == ["gpu", "cuda"]
    assert "gpu, cuda" in ok("agents", "show", "r")
    bad = cli("agents", "add", "s", "--python", "agentcron.examples:noop", "--tag", "no way")
    assert bad.exit_code != 0 and "tags" in bad.stderr and "not a valid tag" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_agents_file_takes_tags(tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    path.write_text('[agents.render]\npython = "agentcron.examples:noop"\n'
                    'tags = ["gpu"]\n')
    [entry] = load_agents_file(path).agents.values()
    assert tuple(entry.tags) == ("gpu",)
    path.write_text('[agents.render]\npython = "agentcron.examples:noop"\ntags = "gpu"\n')
    with pytest.raises(ValidationError):
        load_agents_file(path)


def test_routing_settings_come_from_flags_and_the_environment() -> None:
    settings = settings_from_env({"AGENTCRON_TAGS": "gpu, cuda", "AGENTCRON_AGENTS": "a"})
    assert settings.routing == Routing.of(agents=["a"], tags=["gpu", "cuda"])
    assert settings.with_overrides(tags="x").routing == Routing.of(agents=["a"], tags=["x"])
    with pytest.raises(ValidationError) as bad:
        settings.with_overrides(tags="ok,not ok").validate()
    assert bad.value.field == "tags"


@pytest.fixture(scope="module")
def gpu_node(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(pg_url, tmp_path_factory.mktemp("routing"), node_id="gpu-box",
                    env={"AGENTCRON_TAGS": "gpu"}) as server:
        yield server


@pytest.mark.slow
@pytest.mark.postgres
def test_a_tagged_serve_runs_its_agents_and_leaves_others_queued(gpu_node: ApiServer
                                                                 ) -> None:
    with gpu_node.client("admin") as api:
        put = api.put("/api/v1/agents/render", json={**HELLO, "tags": ["gpu"]})
        assert put.status_code in (200, 201), put.text
        assert put.json()["tags"] == ["gpu"]
        assert api.put("/api/v1/agents/plain", json=HELLO).json()["tags"] == []
        bad = api.put("/api/v1/agents/x", json={**HELLO, "tags": ["a b"]})
        assert bad.status_code == 422 and bad.json()["field"] == "tags"

        tagged = api.post("/api/v1/agents/render/fire", json={}).json()["id"]
        untagged = api.post("/api/v1/agents/plain/fire", json={}).json()["id"]
        assert gpu_node.wait_run(tagged)["node_id"] == "gpu-box"
        # The node runs only agents with its tag: the untagged run waits for another node.
        store: Store = gpu_node.store
        assert store.get_run(untagged).status.value == "queued"

        [node] = [n for n in api.get("/api/v1/nodes").json() if n["id"] == "gpu-box"]
        assert (node["tags"], node["agents"], node["runs"]) == (["gpu"], [], "tags gpu")


def test_nodes_list_shows_what_each_node_runs(ok: Callable[..., str], db_url: str) -> None:
    from agentcron.rules.routing import Routing
    from agentcron.store import NodeInfo

    store = Store(db_url)
    try:
        store.upgrade()
        store.register_node(NodeInfo("gpu-box", "h1", 1, "0", 60.0, Routing.of(tags=["gpu"])))
        store.register_node(NodeInfo("plain-box", "h2", 2, "0", 60.0))
    finally:
        store.close()
    docs = {d["id"]: d for d in json.loads(ok("nodes", "list", "--json"))}
    assert (docs["gpu-box"]["tags"], docs["gpu-box"]["runs"]) == (["gpu"], "tags gpu")
    assert docs["plain-box"]["runs"] == "untagged agents"
    table = ok("nodes", "list")
    assert "tags gpu" in table and "untagged agents" in table
