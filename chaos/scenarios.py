"""The scenarios. Each one starts real ``agentcron serve`` processes on the suite's own
PostgreSQL cluster, adds interval triggers whose ``http`` agent posts to the counting
receiver, injects its faults in real time for the duration, lets the runs settle, and adds
its own checks to the common figures (``chaos.verdict``). The first six run every node on
this host (``chaos.local``); ``partition``, ``slow-link`` and ``flaky-link`` give each node
a network namespace of its own (``chaos.hosts``) and fault the links between them
(``chaos.links``). This module is the table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos import links, local, remote
from chaos.harness import AGENT, AgentOptions, NodeOptions, Storm, TriggerGroup
from chaos.hosts import Network


@dataclass
class Scenario:
    name: str
    summary: str
    long_duration_s: float
    groups: Callable[[float], list[TriggerGroup]]
    storm: Callable[[Storm], None]
    nodes: NodeOptions = field(default_factory=NodeOptions)
    network: Network = field(default_factory=Network)
    agents: dict[str, AgentOptions] = field(default_factory=lambda: {AGENT: AgentOptions()})
    check: Callable[[Storm, dict[str, Any]], tuple[dict[str, Any], list[str]]] | None = None
    # How long to wait after the storm for every due run to end. A wait, not a speed check
    # (recovery times are reported apart): a short form on a 2-core machine shared with
    # other work once took 50 s to recover from a kill, so the wait leaves room for more.
    settle_s: float = 240.0
    sample_every_s: Callable[[float], float] = lambda duration: 5.0


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "kill",
            "3 nodes, 500 interval triggers every second; every 10 s kill -9 a random node "
            "and start a new one",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 500, 1.0, 0.2)],
            storm=local.kill,
        ),
        Scenario(
            "pause",
            "3 nodes, 200 triggers every second (1 s runs); every 20 s SIGSTOP the node "
            "holding the most runs for zombie_timeout + 3 s, then SIGCONT",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 200, 1.0, 1.0)],
            storm=local.pause,
            check=local.pause_check,
        ),
        Scenario(
            "database",
            "3 nodes, 200 triggers every second (0.3 s runs) and 20 more whose agent has a "
            "3 s timeout (1 s runs); every 20 s stop PostgreSQL for 0-3 s (fast and immediate "
            "shutdowns in turn), and pg_terminate_backend every node session 10 s after each "
            "restart",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 200, 1.0, 0.3),
                              TriggerGroup("every-1s-tight-timeout", 20, 1.0, 1.0,
                                           agent="tight")],
            agents={AGENT: AgentOptions(), "tight": AgentOptions(timeout="3s")},
            storm=local.database,
            check=local.database_check,
        ),
        Scenario(
            "skew",
            "3 nodes: one with its clock 5 min ahead, one 5 min behind, one right (killed "
            "midway and replaced); 150 triggers every second and 30 every 5 s with 2 s runs",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 150, 1.0, 0.3),
                              TriggerGroup("every-5s-2s-runs", 30, 5.0, 2.0)],
            storm=local.skew,
            check=local.skew_check,
        ),
        Scenario(
            "deploy",
            "3 nodes, drain_timeout 10 s, rolling SIGTERM restarts one node at a time; 100 "
            "triggers every second (0.2 s runs), 20 every 5 s (6 s runs), 3 every 10 s "
            "(25 s runs, longer than the drain)",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 100, 1.0, 0.2),
                              TriggerGroup("every-5s-6s-runs", 20, 5.0, 6.0),
                              TriggerGroup("every-10s-25s-runs", 3, 10.0, 25.0)],
            storm=local.deploy,
            check=local.deploy_check,
        ),
        Scenario(
            "soak",
            "3 nodes, 1,000 triggers every second for 30 min (200 through the http agent to "
            "the receiver, 800 through an in-process async Python agent): node RSS and "
            "PostgreSQL connections stay flat, no error in the logs",
            long_duration_s=1800,
            groups=lambda d: [TriggerGroup("every-1s-http", 200, 1.0, 0.0),
                              TriggerGroup("every-1s-python", 800, 1.0, 0.0, agent="inproc")],
            agents={AGENT: AgentOptions(), "inproc": AgentOptions(kind="python")},
            storm=local.soak,
            check=local.soak_check,
            settle_s=300.0,
            sample_every_s=lambda d: 10.0 if d >= 600 else 2.0,
        ),
        Scenario(
            "partition",
            "3 nodes, each in a network namespace of its own, 200 triggers every second "
            "(1 s runs) and 20 every 5 s (12 s runs, longer than the zombie timeout); every "
            "15 s cut the node holding the most long runs off the database for 2x the "
            "zombie timeout (10 s), its packets dropped and refused in turn, then heal",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 200, 1.0, 1.0),
                              TriggerGroup("every-5s-12s-runs", 20, 5.0, 12.0)],
            storm=links.partition,
            check=links.partition_check,
            network=Network(hosts=True),
        ),
        Scenario(
            "slow-link",
            "the kill scenario (3 nodes, 500 triggers every second, kill -9 and replace a "
            "node every 10 s) with each node in a namespace of its own and every byte "
            "between a node and the database delayed 50 ms +/- 10 ms each way",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 500, 1.0, 0.2)],
            storm=local.kill,
            check=links.slow_link_check,
            network=Network(hosts=True, delay_ms=50.0, jitter_ms=10.0),
            # 500 runs/s offered is past what three nodes finish over this link (every
            # statement waits 100 ms for its answer): the backlog takes minutes to clear.
            settle_s=900.0,
        ),
        Scenario(
            "flaky-link",
            "3 nodes, each in a network namespace of its own, 200 triggers every second "
            "(0.3 s runs); every node loses 5 % of its packets, both ways, for the whole "
            "storm",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 200, 1.0, 0.3)],
            storm=links.flaky_link,
            check=links.flaky_link_check,
            network=Network(hosts=True),
        ),
        Scenario(
            "worker-partition",
            "2 nodes serving the API, 3 remote workers each in a network namespace of its "
            "own, 100 triggers every second (1 s runs) and 10 every 5 s (12 s runs) of a "
            "remote agent with a 5 s zombie timeout; every 15 s cut the worker holding the "
            "most long runs off its API node for 10 s, dropped and refused in turn, then "
            "heal",
            long_duration_s=300,
            groups=lambda d: [TriggerGroup("every-1s", 100, 1.0, 1.0, agent=remote.REMOTE),
                              TriggerGroup("every-5s-12s-runs", 10, 5.0, 12.0,
                                           agent=remote.REMOTE)],
            agents={remote.REMOTE: AgentOptions(kind="remote",
                                                zombie_timeout=remote.ZOMBIE_TIMEOUT)},
            storm=remote.worker_partition,
            check=remote.worker_partition_check,
            network=Network(hosts=True),
            # Three workers on this 2-core host finish fewer than the 102 runs/s offered
            # (each run is a claim, a post and a complete over HTTP, and every cut hands a
            # worker's runs to the others after the zombie timeout): the backlog of a
            # 5-minute storm takes longer than the default to clear.
            settle_s=900.0,
        ),
    ]
}
