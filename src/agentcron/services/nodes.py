"""Nodes in the service layer: which registered nodes are alive, and which are listed.

A node is alive while it beats within its zombie timeout. A dead node stays listed (as
dead) for ``DEAD_NODE_SHOWN`` after it became dead, then listings and the overview leave it
out; its row is deleted by the sweeper later (``store.liveness.NODE_ROW_RETENTION_FACTOR``
zombie timeouts after its last beat, at most ``NODE_ROW_RETENTION_MAX``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from agentcron.models import Node
from agentcron.services.validate import now_or_store
from agentcron.store import Store

#: How long a dead node is still listed (as dead) after it became dead.
DEAD_NODE_SHOWN = timedelta(hours=1)


class NodeService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self, now: datetime | None = None) -> list[tuple[Node, bool]]:
        """The registered nodes, each with whether it is alive (beat within its zombie
        timeout); a node dead for longer than ``DEAD_NODE_SHOWN`` is left out."""
        now = now_or_store(self.store, now)
        listed: list[tuple[Node, bool]] = []
        for node in self.store.list_nodes():
            silent = (now - node.heartbeat_at).total_seconds()
            if silent > node.zombie_timeout_s + DEAD_NODE_SHOWN.total_seconds():
                continue
            listed.append((node, silent <= node.zombie_timeout_s))
        return listed
