"""Remote workers on hosts of their own: ``worker-partition``.

Two nodes serve the API on the bridge's address and run nothing themselves (the agent is
remote); three ``agentcron worker`` processes, each in a network namespace of its own,
pull its runs from one of them and post each to the receiver (``chaos.agents:deliver``),
so the common verdict counts them as the ``http`` agent's. The fault cuts the busiest
worker off from its API node for twice the agent's zombie timeout (dropped and refused in
turn): it must stop its runs before the server gives them to another worker, and rejoin.
"""

from __future__ import annotations

import socket
from typing import Any

from agentcron.services.access import Access
from agentcron.store import Store
from chaos.common import seconds
from chaos.harness import Node, Storm
from chaos.links import cut_check, cut_in_turn
from tests.support.workers import WorkerProcess

REMOTE = "remote"
API_NODES = 2
WORKERS = 3
ZOMBIE_TIMEOUT = "5s"  # the agent's: every claim tells the worker


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _start_worker(storm: Storm, api: str, token: str) -> Node:
    hosts = storm.hosts
    assert hosts is not None
    index = storm.next_index()
    netns = hosts.add(index)
    proc = WorkerProcess(api, token, REMOTE, f"{storm.scenario}-w{index}", storm.workdir,
                         python="chaos.agents:deliver", concurrency=150,
                         heartbeat_interval="1s", wait="5s", drain_timeout="10s",
                         extra_env={"CHAOS_RECEIVER_URL": storm.receiver_url},
                         wrapper=["ip", "netns", "exec", netns])
    node = Node(proc, {}, netns)
    storm.nodes.append(node)
    proc.wait_for_log("worker_started", timeout=60)
    return node


def worker_partition(storm: Storm) -> None:
    hosts = storm.hosts
    assert hosts is not None
    store = Store(storm.url)
    try:
        token = Access(store).create_token("chaos-workers", "worker", agents=[REMOTE])[1]
    finally:
        store.close()
    apis: dict[str, int] = {}
    for _ in range(API_NODES):
        port = _free_port(hosts.gateway)
        node = storm.start_node(api_port=port, prefix="api")
        apis[node.id] = port
    ports = list(apis.values())
    api_of: dict[str, int] = {}
    for i in range(WORKERS):
        port = ports[i % len(ports)]
        worker = _start_worker(storm, f"http://{hosts.gateway}:{port}", token)
        api_of[worker.id] = port
    storm.add_triggers(storm.plan)
    storm.begin()
    cut_in_turn(storm, 2 * seconds(ZOMBIE_TIMEOUT), "its API node",
                lambda worker: api_of[worker.id])
    storm.at(storm.duration_s)


def worker_partition_check(storm: Storm, figs: dict[str, Any]
                           ) -> tuple[dict[str, Any], list[str]]:
    """As ``partition``'s, with the worker's events: ``worker_fenced``, ``worker_rejoined``
    and, for an outcome that was on its way when the link went and arrived after the
    takeover, ``worker_run_taken_over`` (refused with 409)."""
    return cut_check(storm, figs, "worker_fenced", "worker_rejoined", "worker_run_taken_over")
