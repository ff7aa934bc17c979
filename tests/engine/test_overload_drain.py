"""A node past its capacity still drains on the first SIGTERM (guarantee 4): a real
``agentcron serve`` process, thousands of triggers every second with the in-package no-op
agent (sync, so every run finishes in a worker thread), behind its work when the one
signal arrives; it logs ``signal_received``, drains and exits by itself."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.support.helpers import add_agent, wait_until
from tests.support.procs import ServeProcess

AGENTS = 6
PER_AGENT = 1000  # 6,000 fires a second: more than one node does on this machine
DRAIN_S = 5.0


def events(log: str) -> list[dict[str, object]]:
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


@pytest.mark.slow
def test_one_sigterm_drains_a_node_that_is_behind_its_work(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/overload.db"
    store = Store(url)
    store.upgrade()
    services = Services(store)
    for a in range(AGENTS):
        add_agent(store, f"load{a}", max_concurrency=1000)
        services.create_triggers([
            TriggerInput(agent=f"load{a}", every="1s", name=f"t{i}", overlap="allow",
                         catchup_mode="all")
            for i in range(PER_AGENT)])
    node = ServeProcess(url, "overloaded", tmp_path, drain_timeout=f"{DRAIN_S:g}s",
                        zombie_timeout="30s", heartbeat_interval="1s")
    try:
        node.wait_for_log("node_started", timeout=60)

        def behind() -> bool:
            if node.proc.poll() is not None:
                raise AssertionError(f"the node exited:\n{node.log()[-3000:]}")
            counts = store.count_by_status()
            # Several seconds of work done, and the fires still coming faster than that.
            return (counts.get("succeeded", 0) >= 3 * AGENTS * PER_AGENT
                    and counts.get("queued", 0) >= AGENTS * PER_AGENT)

        wait_until(behind, timeout=120, message=lambda: f"a backlog: {store.count_by_status()}",
                   interval=0.5)
        at_signal = store.count_by_status()
        node.signal(signal.SIGTERM)  # one signal, never a second one
        wait_until(lambda: node.proc.poll() is not None, timeout=DRAIN_S + 60,
                   message=lambda: "the node to drain and exit after one SIGTERM:\n"
                   + node.log()[-3000:], interval=0.1)
        assert node.proc.returncode == 0, node.log()[-3000:]
        names = [e.get("event") for e in events(node.log())]
        assert "signal_received" in names, node.log()[-3000:]
        assert "second_signal" not in names
        assert names.index("node_stopped") > names.index("signal_received")
        assert store.list_nodes() == []  # deregistered: nothing left for the sweeper
        assert store.count_by_status().get("running", 0) == 0, at_signal  # released or done
    finally:
        node.cleanup()
        store.close()
