"""Self-fencing on a real ``agentcron serve`` process (issue 17, item 1): one node, its
database link cut through a proxy, gives up its in-flight command before another node could
take the run over, and rejoins without a restart once the link heals.

The node talks to the test's PostgreSQL through ``CutProxy``; the test cuts it both ways a
partition looks: silently (connections stay open, nothing crosses them: calls hang) and
refused (connections close, calls fail at once). Every wait is on a condition with a
timeout; the one deadline asserted is the guarantee itself: the command's process is gone
within the zombie timeout of the cut (the last successful beat was before the cut, so that
is later than the moment another node may take the run over).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from agentcron.store.schema import runs
from tests.support.helpers import pid_written, process_running, wait_until
from tests.support.procs import ServeProcess
from tests.support.proxies import CutProxy, cut_until_stopped

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ZOMBIE_TIMEOUT_S = 6.0


@pytest.fixture
def proxy(pg_store: Store) -> Iterator[CutProxy]:
    port = make_url(pg_store.url).port or 5432
    cut = CutProxy(port)
    yield cut
    cut.close()


def _run(store: Store, run_id: str) -> dict[str, object]:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(runs).where(runs.c.id == run_id)).mappings().one())


@pytest.mark.parametrize("how", ["drop", "refuse"])
def test_a_cut_off_node_stops_its_command_in_time_and_rejoins(
        pg_store: Store, proxy: CutProxy, tmp_path: Path, how: str) -> None:
    store = pg_store
    services = Services(store)
    pid_file = tmp_path / "sleeper.pid"
    # The default kill grace (5 s) is longer than this zombie timeout allows: the fence's
    # reserve is capped, and a command that exits on SIGTERM is still gone in time.
    services.add_agent(services.build_agent(
        "sleeper", "command",
        {"argv": ["/bin/sh", "-c", f"echo $$ > {pid_file}; exec sleep 600"]},
        timeout="1h", max_attempts=1))
    services.add_agent(services.build_agent("quick", "command", {"argv": ["/bin/true"]},
                                            timeout="1m"))
    url = make_url(store.url).set(port=proxy.port).render_as_string(hide_password=False)
    node = ServeProcess(url, "fencer", tmp_path, zombie_timeout=f"{ZOMBIE_TIMEOUT_S:g}s",
                        heartbeat_interval="1s", poll_interval="0.2s", drain_timeout="2s")
    try:
        node.wait_for_log("node_started")
        run_id = store.fire_now("sleeper")
        pid = wait_until(lambda: pid_written(pid_file), 20, "the sleeper to start")
        assert process_running(pid)
        assert _run(store, run_id)["status"] == RunStatus.RUNNING.value

        cut_at = time.monotonic()
        gone_after = cut_until_stopped(proxy, how, pid, ZOMBIE_TIMEOUT_S, node.log)
        node.wait_for_log("node_fenced", timeout=5)
        assert "node fenced: no heartbeat succeeded" in node.log()

        # Keep the link down past twice the zombie timeout, as a real partition may be
        # (real time has to pass: the node is cut off on purpose).
        time.sleep(max(0.0, cut_at + 2 * ZOMBIE_TIMEOUT_S - time.monotonic()))
        assert node.log().count('"event": "node_fenced"') == 1, "fenced once, logged once"
        proxy.mend()
        node.wait_for_log("node_rejoined", timeout=30)
        assert node.proc.poll() is None, "the node restarted"
        # Claiming and firing resume: a new trigger of another agent fires and runs here.
        start = store.now() + timedelta(seconds=1)
        trigger = services.add_trigger(TriggerInput(agent="quick", every="1h", start=start))

        def quick_ran() -> bool:
            with store.engine.connect() as conn:
                return conn.execute(select(runs.c.id).where(
                    runs.c.trigger_id == trigger.id, runs.c.node_id == "fencer",
                    runs.c.status == RunStatus.SUCCEEDED.value)).first() is not None

        wait_until(quick_ran, 30, lambda: f"the new trigger's run:\n{node.log()[-3000:]}")
        # The given-up attempt was written as a failure (its only attempt), fenced on its
        # lease: the run does not stay "running" under a node that no longer runs it.
        wait_until(lambda: _run(store, run_id)["status"] == RunStatus.FAILED.value, 30,
                   lambda: f"the given-up run to end: {_run(store, run_id)}")
        error = str(_run(store, run_id)["error"])
        assert "node fenced" in error or error.startswith("lost"), error
        print(f"\n{how}: the sleeper was gone {gone_after:.2f}s after the cut "
              f"(zombie timeout {ZOMBIE_TIMEOUT_S:g}s); run error: {error[:100]}")
        assert node.stop() == 0, node.log()[-3000:]
    finally:
        node.cleanup()
        if (pid := pid_written(pid_file)) and process_running(pid):
            os.kill(pid, 9)
