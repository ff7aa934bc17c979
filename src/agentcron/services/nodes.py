"""Nodes in the service layer: which registered nodes are alive."""

from __future__ import annotations

from datetime import datetime

from agentcron.models import Node
from agentcron.services.validate import now_or_store
from agentcron.store import Store


class NodeService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self, now: datetime | None = None) -> list[tuple[Node, bool]]:
        """Every registered node and whether it is alive (beat within its zombie timeout)."""
        now = now_or_store(self.store, now)
        return [(n, (now - n.heartbeat_at).total_seconds() <= n.zombie_timeout_s)
                for n in self.store.list_nodes()]
