"""A node with no free slot leaves due triggers due instead of queuing runs it cannot start
(``Store.fire_due``'s hold-back): an overloaded node keeps every run on the fire-and-claim
path (written twice, not three times) and fires the held triggers, oldest first, as soon as
its runs free slots, not at its next poll."""

from __future__ import annotations

from datetime import timedelta

from agentcron.engine.node import Node
from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.support.helpers import await_until
from tests.support.nodes import agent_runs, python_agent, run_node


def test_a_full_node_fires_held_triggers_as_its_slots_free(store: Store) -> None:
    # The agent's limit is far above the node's two slots, so only the node decides (each
    # concurrency shard holds 12 or 13: a fire-time claim never finds its shard full).
    python_agent(store, "busy", "tests.support.agents:async_sleepy", max_concurrency=100)
    services = Services(store)
    at = services.now() + timedelta(seconds=1)
    for _ in range(6):
        services.add_trigger(TriggerInput(agent="busy", at=at.isoformat(),
                                          payload={"seconds": 0.3}))

    async def scenario(node: Node) -> None:
        runs = await await_until(
            lambda: (done if len(done := [r for r in agent_runs(store, "busy")
                                          if r.status is RunStatus.SUCCEEDED]) == 6 else None),
            timeout=20, message="all six runs to succeed, two at a time")
        # Fired and claimed in one write each time a slot was free: none ever waited queued.
        assert all(r.started_at == r.queued_at for r in runs), [
            (r.queued_at, r.started_at) for r in runs]
        # Two slots: the runs started in (at least) three rounds.
        assert len({r.started_at for r in runs}) >= 3
        # Each at its own scheduled time, however late it was fired.
        assert len({r.scheduled_for for r in runs}) == 1

    # A poll of a minute: only the end of a run can wake the ticker in time.
    # The default batch (500) is far above the two slots: the slots still wake it.
    run_node(store, scenario, max_inflight=2, poll_interval_s=60.0)
