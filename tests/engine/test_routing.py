"""Two real nodes on one database, one offering the tag ``gpu``: runs of the tagged agent
are executed only by the tagged node, runs of the untagged agent only by the other (a node
with tags runs nothing else). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from agentcron.engine.node import Node
from agentcron.executors import Executors
from agentcron.models import RunStatus
from agentcron.services import Services
from agentcron.store import Store
from tests.support.helpers import add_agent, await_until
from tests.support.nodes import agent_runs, node_settings

RUNS = 6


def test_runs_of_a_tagged_agent_run_only_on_the_tagged_node(store: Store) -> None:
    add_agent(store, "render", max_concurrency=4, tags=["gpu"])
    add_agent(store, "plain", max_concurrency=4)
    services = Services(store)
    shown: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}

    async def main() -> None:
        gpu = Node(store, node_settings(store, node_id="gpu-box", tags="gpu"), Executors())
        other = Node(store, node_settings(store, node_id="plain-box"), Executors())
        await gpu.start()
        await other.start()
        try:
            for _ in range(RUNS):
                await asyncio.to_thread(services.fire, "render")
                await asyncio.to_thread(services.fire, "plain")

            def all_done() -> bool:
                runs = agent_runs(store, "render") + agent_runs(store, "plain")
                return len(runs) == 2 * RUNS and all(
                    r.status is RunStatus.SUCCEEDED for r in runs)

            await await_until(all_done, message="every run succeeded")
            listed = await asyncio.to_thread(services.nodes)
            shown.update({n.id: (n.tags, n.agents) for n, _ in listed})
        finally:
            await gpu.drain()
            await other.drain()

    asyncio.run(main())
    assert {r.node_id for r in agent_runs(store, "render")} == {"gpu-box"}
    assert {r.node_id for r in agent_runs(store, "plain")} == {"plain-box"}
    assert shown == {"gpu-box": (("gpu",), ()), "plain-box": ((), ())}
