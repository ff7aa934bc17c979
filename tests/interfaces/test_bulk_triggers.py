"""Many triggers at once, on both backends: ``POST /api/v1/triggers/batch`` (every item
validated first, all or none, the agent's trigger limit, the write scope) and the agents
file's sync (created / updated / removed counted, unchanged ones not written, the limit
enforced before anything is written), each a constant number of statements per batch."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentcron.api.app import create_app
from agentcron.errors import ValidationError
from agentcron.services import Services, TriggerInput
from agentcron.services.access import Access
from agentcron.services.agents_file import load_agents_file
from agentcron.services.limits import MAX_TRIGGERS_ENV
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger

_tokens = itertools.count()


def post_batch(store: Store, body: Any, scope: str = "write") -> httpx.Response:
    _, token = Access(store).create_token(f"batch-{next(_tokens)}", scope)
    app = create_app(store, "batch-node")

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://api.test",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            return await client.post("/api/v1/triggers/batch", json=body)

    return asyncio.run(main())


def items(n: int, agent: str = "a", **extra: Any) -> list[dict[str, Any]]:
    return [{"agent": agent, "every": f"{10 + i}s", "name": f"t{i}", **extra}
            for i in range(n)]


def test_a_batch_creates_every_trigger_in_a_constant_number_of_statements(
        store: Store) -> None:
    add_agent(store, "a")
    counts = []
    for n, prefix in ((10, "x"), (300, "y")):
        body = {"triggers": [{**t, "name": f"{prefix}{t['name']}"} for t in items(n)]}
        with store.count_statements() as seen:
            response = post_batch(store, body)
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["created"] == n
        assert [t["name"] for t in created["triggers"]] == [t["name"] for t in body["triggers"]]
        assert all(t["next_fire_at"] for t in created["triggers"])
        writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE"))
                  and "triggers" in s]
        counts.append(len(writes))
    assert counts[0] == counts[1], counts  # 10 or 300: the same statements
    assert len(store.list_triggers("a")) == 310


def test_one_bad_item_writes_nothing_and_the_error_names_its_index_and_field(
        store: Store) -> None:
    add_agent(store, "a")
    body = {"triggers": items(5)}
    body["triggers"][3]["every"] = "soon"
    response = post_batch(store, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "triggers[3].every"
    body["triggers"][3] = {"agent": "a", "cron": "61 * * * *"}
    assert post_batch(store, body).json()["field"] == "triggers[3].cron"
    body["triggers"][3] = {"agent": "nobody", "every": "1m"}
    response = post_batch(store, body)
    assert response.status_code == 422 and response.json()["field"] == "triggers[3].agent"
    body["triggers"][3] = {"agent": "a", "every": "1m", "surprise": 1}  # the schema's check
    response = post_batch(store, body)
    assert response.status_code == 422 and "triggers" in response.json()["field"]
    assert store.list_triggers() == []


def test_a_name_taken_or_repeated_writes_nothing(store: Store) -> None:
    add_agent(store, "a")
    add_trigger(store, T0, agent="a", every="1m", name="t2")
    response = post_batch(store, {"triggers": items(4)})
    assert response.status_code == 409, response.text
    twice = [*items(2), {"agent": "a", "every": "1h", "name": "t0"}]
    assert post_batch(store, {"triggers": [{**t, "name": f"n{t['name']}"}
                                           for t in twice]}).status_code == 409
    assert [t.name for t in store.list_triggers()] == ["t2"]


def test_the_batch_size_and_the_agents_trigger_limit_are_checked_first(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    add_agent(store, "a")
    add_agent(store, "b")
    response = post_batch(store, {"triggers": items(1001)})
    assert response.status_code == 422 and response.json()["field"] == "triggers"
    assert post_batch(store, {"triggers": []}).status_code == 422
    monkeypatch.setenv(MAX_TRIGGERS_ENV, "5")
    add_trigger(store, T0, agent="b", every="1m")
    body = {"triggers": items(3, "a") + items(5, "b")}
    response = post_batch(store, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "triggers[3].agent"
    assert "would have 6 triggers" in response.json()["detail"]
    assert len(store.list_triggers()) == 1
    assert post_batch(store, {"triggers": items(3, "a") + items(4, "b")}).status_code == 201
    assert len(store.list_triggers()) == 8


def test_a_batch_needs_the_write_scope(store: Store) -> None:
    add_agent(store, "a")
    assert post_batch(store, {"triggers": items(2)}, scope="read").status_code == 403
    assert store.list_triggers() == []
    assert post_batch(store, {"triggers": items(2)}, scope="write").status_code == 201


def test_a_webhook_trigger_in_a_batch_gets_its_secret_once(store: Store) -> None:
    add_agent(store, "a")
    response = post_batch(store, {"triggers": [{"agent": "a", "webhook": True, "name": "h"},
                                               {"agent": "a", "every": "1m", "name": "e"}]})
    assert response.status_code == 201, response.text
    hook, plain = response.json()["triggers"]
    assert hook["secret"].startswith("whsec_") and hook["hook_path"] == f"/hooks/{hook['id']}"
    assert plain["secret"] is None


# -- the agents file ------------------------------------------------------------------------


def write_file(path: Path, agents: dict[str, int], every: str = "1m") -> Path:
    lines = []
    for agent, n in agents.items():
        lines.append(f'[agents.{agent}]\ncommand = "true"\n')
        lines += [f'[[agents.{agent}.triggers]]\nname = "t{i}"\nevery = "{every}"\n'
                  for i in range(n)]
    path.write_text("\n".join(lines))
    return path


def sync(store: Store, path: Path) -> tuple[dict[str, int], list[str]]:
    with store.count_statements() as seen:
        report = Services(store).sync_agents_file(load_agents_file(path), now=T0)
    return report, list(seen)


def test_a_sync_counts_created_updated_removed_and_leaves_unchanged_triggers_alone(
        store: Store, tmp_path: Path) -> None:
    path = tmp_path / "agents.toml"
    report, _ = sync(store, write_file(path, {"a": 30, "b": 20}))
    assert report == {"agents": 2, "created": 50, "updated": 0, "removed": 0}
    before = {(t.agent, t.name): t for t in store.list_triggers()}
    report, seen = sync(store, path)
    assert report == {"agents": 2, "created": 0, "updated": 0, "removed": 0}
    assert not [s for s in seen if "triggers" in s and s.lstrip().upper().startswith(
        ("INSERT", "UPDATE", "DELETE"))]
    text = path.read_text().replace('name = "t1"\nevery = "1m"', 'name = "t1"\nevery = "2m"')
    path.write_text(text.replace("[agents.b]", "[agents.c]").replace("agents.b.", "agents.c."))
    report, _ = sync(store, path)
    # a.t1 has a new schedule; b's 20 triggers moved to the new agent c.
    assert report == {"agents": 2, "created": 20, "updated": 1, "removed": 20}
    after = {(t.agent, t.name): t for t in store.list_triggers()}
    assert after[("a", "t0")].next_fire_at == before[("a", "t0")].next_fire_at
    assert after[("a", "t1")].every_s == 120
    assert not any(agent == "b" for agent, _ in after)
    assert sum(1 for agent, _ in after if agent == "c") == 20


def test_a_sync_writes_a_constant_number_of_statements_per_batch(
        store: Store, tmp_path: Path) -> None:
    def writes(seen: list[str]) -> int:
        return len([s for s in seen if s.lstrip().upper().startswith(
            ("INSERT", "UPDATE", "DELETE"))])

    small, _ = sync(store, write_file(tmp_path / "small.toml", {"a": 10}))
    _, seen_small = sync(store, write_file(tmp_path / "small.toml", {"a": 10}, every="2m"))
    _, seen_big = sync(store, write_file(tmp_path / "big.toml", {"a": 900}, every="3m"))
    assert small["created"] == 10
    # 10 updated vs 10 updated + 890 created: one more insert batch, not 890 statements.
    assert writes(seen_big) <= writes(seen_small) + 1, (writes(seen_small), writes(seen_big))
    assert len(store.list_triggers("a")) == 900
    _, seen_gone = sync(store, write_file(tmp_path / "gone.toml", {"a": 1}))
    assert writes(seen_gone) <= writes(seen_small) + 1
    assert len(store.list_triggers("a")) == 1


def test_a_sync_enforces_the_trigger_limit_before_writing(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MAX_TRIGGERS_ENV, "10")
    with pytest.raises(ValidationError) as refused:
        sync(store, write_file(tmp_path / "many.toml", {"a": 11}))
    assert refused.value.field == "agents.a.triggers"
    assert store.list_agents() == [] and store.list_triggers() == []
    # Within the file's limit, but the agent already has triggers made by hand.
    sync(store, write_file(tmp_path / "few.toml", {"a": 1}))
    for i in range(4):
        add_trigger(store, T0, agent="a", every=f"{i + 2}m")
    with pytest.raises(ValidationError) as refused:
        sync(store, write_file(tmp_path / "more.toml", {"a": 7}))
    assert refused.value.field == "agents.a.triggers"
    assert "would have 11 triggers" in refused.value.message
    assert len(store.list_triggers("a")) == 5
    report, _ = sync(store, write_file(tmp_path / "fits.toml", {"a": 6}))
    assert report["created"] == 5 and len(store.list_triggers("a")) == 10


def test_the_triggers_a_batch_returns_are_the_ones_stored(store: Store) -> None:
    add_agent(store, "a")
    specs = [
        TriggerInput(agent="a", every="90s", name="every", payload={"k": [1, 2.5, None]},
                     jitter="2s", catchup="1h", catchup_mode="all", overlap="allow"),
        TriggerInput(agent="a", cron="0 9 * * 1-5", tz="Europe/Berlin", name="cron",
                     start="2030-01-01T00:00:00Z", end="2031-01-01T00:00:00Z", paused=True),
        TriggerInput(agent="a", at="2030-06-01T12:00:00+02:00", name="once", payload="text"),
        TriggerInput(agent="a", webhook=True, name="hook"),
    ]
    created = Services(store).create_triggers(specs, now=T0)
    for trigger, _secret in created:
        assert trigger == store.get_trigger(trigger.id)
    assert created[3][1] is not None and created[0][1] is None
