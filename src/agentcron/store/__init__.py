"""The database boundary. All SQL in agentcron lives in this package; every change of a
run's status is built in ``transitions`` (its docstring tables them all)."""

from agentcron.store.claiming import FinishResult
from agentcron.store.firing import FireResult, MissedFires
from agentcron.store.history import RunFilter
from agentcron.store.liveness import HeartbeatResult, NodeInfo, SweepResult
from agentcron.store.store import Store

__all__ = [
    "FinishResult",
    "FireResult",
    "HeartbeatResult",
    "MissedFires",
    "NodeInfo",
    "RunFilter",
    "Store",
    "SweepResult",
]
