"""Routing in the store's claim paths: a node claims only the agents its routing lets it
run; the others' runs stay queued. Both backends."""

from __future__ import annotations

from datetime import timedelta

from agentcron.models import RunStatus
from agentcron.rules.routing import Routing
from agentcron.store import NodeInfo, Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger

NOW = T0 + timedelta(seconds=1)
GPU = Routing.of(tags=["gpu"])


def _two_agents(store: Store, runs_each: int = 2) -> None:
    add_agent(store, "plain", now=T0, max_concurrency=10)
    add_agent(store, "render", now=T0, max_concurrency=10, tags=["gpu", "cuda"])
    for agent in ("plain", "render"):
        for _ in range(runs_each):
            add_trigger(store, T0, agent=agent, every="1s", overlap="allow")
    store.fire_due(NOW)


def _agents(claimed: list) -> set[str]:  # type: ignore[type-arg]
    return {run.agent.name for run in claimed}


def test_a_node_told_nothing_claims_only_untagged_agents(store: Store) -> None:
    _two_agents(store)
    claimed = store.claim_runs("open", 10, NOW)
    assert len(claimed) == 2 and _agents(claimed) == {"plain"}
    assert store.claim_runs("open", 10, NOW) == []  # the tagged agent's runs are not its


def test_a_tagged_node_claims_only_agents_sharing_a_tag(store: Store) -> None:
    _two_agents(store)
    assert store.claim_runs("tpu", 10, NOW, Routing.of(tags=["tpu"])) == []
    claimed = store.claim_runs("gpu", 10, NOW, GPU)
    assert len(claimed) == 2 and _agents(claimed) == {"render"}
    # The untagged agent's runs are left queued for the nodes that run them.
    queued = [r for r in store.list_runs(limit=100) if r.status is RunStatus.QUEUED]
    assert {r.agent for r in queued} == {"plain"} and len(queued) == 2


def test_a_node_given_agent_names_claims_those_whatever_their_tags(store: Store) -> None:
    _two_agents(store)
    add_agent(store, "other", now=T0, max_concurrency=10)
    add_trigger(store, T0, agent="other", every="1s", overlap="allow")
    store.fire_due(NOW)
    claimed = store.claim_runs("named", 10, NOW, Routing.of(agents=["render", "other"]))
    assert len(claimed) == 3 and _agents(claimed) == {"render", "other"}
    both = store.claim_runs("both", 10, NOW, Routing.of(agents=["plain"], tags=["cuda"]))
    assert len(both) == 2 and _agents(both) == {"plain"}


def test_firing_claims_for_the_firing_node_only_what_it_runs(store: Store) -> None:
    add_agent(store, "plain", now=T0, max_concurrency=10)
    add_agent(store, "render", now=T0, max_concurrency=10, tags=["gpu"])
    add_trigger(store, T0, agent="plain", every="1s", overlap="allow")
    add_trigger(store, T0, agent="render", every="1s", overlap="allow")

    fired = store.fire_due(NOW, 100, ("gpu", 10), routing=GPU)

    assert fired.queued == 2 and _agents(fired.claimed) == {"render"}
    by_agent = {r.agent: r for r in store.list_runs(limit=100)}
    assert by_agent["render"].status is RunStatus.RUNNING
    assert by_agent["render"].node_id == "gpu"
    assert by_agent["plain"].status is RunStatus.QUEUED
    # A node told nothing takes the untagged run, then fires the next second: it claims
    # the untagged agent's new run and leaves the tagged one's queued.
    assert _agents(store.claim_runs("open", 10, NOW)) == {"plain"}
    later = store.fire_due(NOW + timedelta(seconds=1), 100, ("open", 10))
    assert later.queued == 2 and _agents(later.claimed) == {"plain"}


def test_a_node_records_its_routing_and_the_listing_shows_it(store: Store) -> None:
    store.register_node(NodeInfo("gpu-box", "h", 1, "0", 60.0,
                                 Routing.of(agents=["render"], tags=["gpu", "cuda"])), T0)
    store.register_node(NodeInfo("plain-box", "h", 2, "0", 60.0), T0)
    nodes = {n.id: n for n in store.list_nodes()}
    assert nodes["gpu-box"].agents == ("render",)
    assert nodes["gpu-box"].tags == ("cuda", "gpu")
    assert (nodes["plain-box"].agents, nodes["plain-box"].tags) == ((), ())


def test_an_agent_keeps_its_tags(store: Store) -> None:
    add_agent(store, "render", now=T0, tags=["gpu", "gpu", "cuda"])
    assert store.get_agent("render").tags == ("gpu", "cuda")
    add_agent(store, "render", now=T0)
    assert store.get_agent("render").tags == ()
