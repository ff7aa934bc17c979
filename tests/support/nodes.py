"""Running a real node in a test: settings with short intervals, python agents by import
path, the runs of an agent, and a node started for one async scenario and drained after."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from agentcron.engine.node import Node
from agentcron.engine.settings import NodeSettings
from agentcron.executors import Executors
from agentcron.models import Run
from agentcron.services import Services
from agentcron.store import RunFilter, Store


def node_settings(store: Store, **overrides: Any) -> NodeSettings:
    base = NodeSettings(database_url=store.url, heartbeat_interval_s=0.2,
                        poll_interval_s=0.05, zombie_timeout_s=2.0, drain_timeout_s=2.0,
                        api=False, sweep_interval_s=0.2)
    return base.with_overrides(**overrides)


def python_agent(store: Store, name: str, target: str, **kwargs: Any) -> None:
    services = Services(store)
    services.add_agent(services.build_agent(name, "python", {"target": target}, **kwargs))


def agent_runs(store: Store, agent: str) -> list[Run]:
    return store.list_runs(RunFilter(agent=agent), limit=1000)


def run_node(store: Store, scenario: Callable[[Node], Any], **settings: Any) -> None:
    async def main() -> None:
        node = Node(store, node_settings(store, **settings), Executors())
        await node.start()
        try:
            await scenario(node)
        finally:
            if not node.drained.is_set():
                await node.drain()

    asyncio.run(main())
