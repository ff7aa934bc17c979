"""The dashboard in-process (no browser): "Fire now" with a payload, checked like every other
payload, and a note that links to the run it queued; the Agents page's target and budget
state; nodes dead for long left out of the overview. Both backends where a store is used
directly."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx

from agentcron.models import Usage
from agentcron.services import AgentInput, Services, TriggerInput
from agentcron.store import RunFilter, Store
from agentcron.store.liveness import NodeInfo
from tests.support.budgets import agent_with_budget
from tests.support.dashboard import BASE, session_client, sign_in
from tests.support.helpers import add_agent


def _query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def test_fire_now_takes_a_payload_and_links_to_its_run(store: Store) -> None:
    add_agent(store, "a")
    trigger = Services(store).add_trigger(TriggerInput(agent="a", every="1h",
                                                       payload={"from": "trigger"}))

    async def main() -> None:
        client, token = session_client(store)
        async with client:
            _, csrf = await sign_in(client, token)
            form = {"csrf": csrf, "next": "/agents", "payload": '{"name": "Ada"}'}
            fired = _query(await client.post("/agents/a/fire", data=form,
                                             headers={"Origin": BASE}))
            run_id = fired["note_run"]
            assert fired["note"] == f"run {run_id} of a queued"
            assert store.get_run(run_id).payload == {"name": "Ada"}
            page = await client.get(f"/agents?{httpx.QueryParams(fired)}")
            assert f'href="/runs/{run_id}"' in page.text

            empty = _query(await client.post("/agents/a/fire", data={**form, "payload": " "},
                                             headers={"Origin": BASE}))
            assert store.get_run(empty["note_run"]).payload is None

            before = len(store.list_runs(RunFilter(agent="a")))
            for bad, says in (('{"name": ', "payload"), ("[" * 100 + "]" * 100, "nested"),
                              ("NaN", "payload")):
                refused = _query(await client.post("/agents/a/fire",
                                                   data={**form, "payload": bad},
                                                   headers={"Origin": BASE}))
                assert refused["note"].startswith("error: payload"), refused
                assert says in refused["note"]
                assert "note_run" not in refused
            assert len(store.list_runs(RunFilter(agent="a"))) == before

            base = {"csrf": csrf, "next": "/triggers"}
            default = _query(await client.post(f"/triggers/{trigger.id}/fire", data=base,
                                               headers={"Origin": BASE}))
            assert store.get_run(default["note_run"]).payload == {"from": "trigger"}
            given = _query(await client.post(f"/triggers/{trigger.id}/fire",
                                             data={**base, "payload": '{"from": "form"}'},
                                             headers={"Origin": BASE}))
            assert store.get_run(given["note_run"]).payload == {"from": "form"}

            # The next action's note replaces this one, and its link goes with it.
            back = f"/triggers?agent=a&{httpx.QueryParams(given)}"
            paused = _query(await client.post(f"/triggers/{trigger.id}/pause",
                                              data={**base, "next": back},
                                              headers={"Origin": BASE}))
            assert paused == {"agent": "a", "note": f"trigger {trigger.id} paused"}

            # A note_run that is not a run id is not made into a link.
            odd = await client.get("/agents?note=hi&note_run=javascript:alert(1)")
            assert "javascript:" not in odd.text and "view run" not in odd.text

    asyncio.run(main())


def test_the_agents_page_shows_each_agents_target_and_budget_state(store: Store) -> None:
    now = store.now()
    agents = Services(store).agents
    for name, kind, config in (
            ("py", "python", {"target": "mytasks:summarize"}),
            ("sh", "command", {"command": "echo 'hi there'"}),
            ("web", "http", {"url": "https://user:hunter2@agents.example/run"}),
            ("chat", "llm", {"model": "gpt-4o-mini", "base_url": "https://api.example/v1",
                             "prompt": "hi"})):
        agents.save(agents.build(AgentInput(name=name, kind=kind, config=config)))
    agent_with_budget(store, "spender", {"tokens_per_day": 100}, now=now,
                      history=[(now - timedelta(minutes=5), Usage(100, 50))])
    agent_with_budget(store, "thrifty", {"tokens_per_day": 1000, "usd_per_month": 5},
                      on_budget="pause", now=now,
                      history=[(now - timedelta(minutes=5), Usage(10, 20, 0.25))])

    async def main() -> None:
        client, token = session_client(store, "read")
        async with client:
            await sign_in(client, token)
            page = (await client.get("/agents")).text

        def row(name: str) -> str:
            found = re.search(rf'<tr data-agent="{name}">(.*?)</tr>', page, re.S)
            assert found, name
            return found.group(1)

        assert "mytasks:summarize" in row("py")
        assert "echo &#39;hi there&#39;" in row("sh")
        assert "https://********@agents.example/run" in row("web")
        assert "hunter2" not in page
        assert "gpt-4o-mini @ https://api.example/v1" in row("chat")
        assert "none" in row("py")
        assert "over budget</span>" in row("spender")
        assert "150 of 100 tokens per day" in row("spender")
        assert "within budget" in row("thrifty")
        assert "30 of 1,000 tokens per day" in row("thrifty")
        assert "$0.2500 of $5.0000 USD per month (UTC)" in row("thrifty")
        assert "over budget: pause" in row("thrifty")

    asyncio.run(main())


def test_the_overview_leaves_out_nodes_dead_for_over_an_hour(store: Store) -> None:
    now = store.now()
    store.register_node(NodeInfo("fresh-node", "host", 1, "test", 60.0), now)
    store.register_node(NodeInfo("silent-node", "host", 2, "test", 60.0),
                        now - timedelta(minutes=30))
    store.register_node(NodeInfo("long-gone-node", "host", 3, "test", 60.0),
                        now - timedelta(hours=2))

    async def main() -> None:
        client, token = session_client(store, "read")
        async with client:
            await sign_in(client, token)
            page = (await client.get("/")).text
            nodes = (await client.get("/api/v1/nodes",
                                      headers={"Authorization": f"Bearer {token}"})).json()
        assert "fresh-node" in page and "silent-node" in page
        assert "long-gone-node" not in page
        assert re.search(r'id="nodes-alive">1<.*?of 2<', page, re.S)
        assert {n["id"]: n["alive"] for n in nodes} == {"fresh-node": True,
                                                        "silent-node": False}

    asyncio.run(main())
