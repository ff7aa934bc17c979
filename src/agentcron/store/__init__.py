"""The database boundary. All SQL in agentcron lives in this package; every change of a
run's status is built in ``transitions`` (its docstring tables them all)."""

from agentcron.store.claiming import FinishResult
from agentcron.store.fire_plan import BrokenTrigger, MissedFires
from agentcron.store.firing import FireResult
from agentcron.store.history import RunFilter
from agentcron.store.liveness import HeartbeatResult, NodeInfo, SweepResult
from agentcron.store.pausing import Selection
from agentcron.store.store import Store

__all__ = [
    "BrokenTrigger",
    "FinishResult",
    "FireResult",
    "HeartbeatResult",
    "MissedFires",
    "NodeInfo",
    "RunFilter",
    "Selection",
    "Store",
    "SweepResult",
]
