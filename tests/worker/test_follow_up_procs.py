"""Follow-ups of remote runs, with real processes: an ``agentcron serve`` (SQLite and
PostgreSQL) and ``agentcron worker`` processes whose python agent schedules its next check.

- The worker's complete (carrying the follow-up) reaches the node and is written, and the
  worker is killed -9 before it reads the answer; a restarted worker goes on: exactly one
  follow-up trigger exists.
- The complete's answer is lost on the way back (the connection drops after the node
  wrote it): the worker sends the same complete again, which is fenced (stale) and
  schedules nothing: exactly one follow-up trigger exists.

Both need ``Store.finish`` to write ``Outcome.follow_ups`` (issue 13, part A).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcron.models import RunStatus, Trigger
from agentcron.services import Services
from agentcron.services.access import Access
from agentcron.services.agents import AgentInput
from agentcron.store import Store
from tests.support.api_server import ApiServer, api_server
from tests.support.helpers import wait_until
from tests.support.proxies import AnswerHoldingProxy
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.slow]
_names = itertools.count()
AGENT = "tests.support.follow_up_agents:check_once_more"


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Iterator[ApiServer]:
    with api_server(store.url, tmp_path, node_id="api-node", truncate=False) as server:
        yield server


@pytest.fixture
def workers(served: ApiServer, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []
    secret = Access(served.store).create_token(f"fw{next(_names)}", "worker",
                                               agents=["watcher"])[1]

    def start(worker_id: str, url: str, **options: str) -> WorkerProcess:
        proc = WorkerProcess(url, secret, "watcher", worker_id, tmp_path, python=AGENT,
                             **options)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.cleanup()


def follow_ups_of(store: Store) -> list[Trigger]:
    return [t for t in store.list_triggers("watcher") if t.source == "run"]


def succeeded(store: Store, run_id: str, logs: Callable[[], str]) -> None:
    wait_until(lambda: store.get_run(run_id).status is RunStatus.SUCCEEDED, 60,
               lambda: f"run {run_id} to succeed (it is {store.get_run(run_id).status}):\n"
               f"{logs()[-3000:]}", interval=0.05)


def setup(served: ApiServer, zombie_timeout: str = "3s") -> Store:
    store = served.store
    agents = Services(store).agents
    agents.save(agents.build(AgentInput(name="watcher", kind="remote", config={},
                                        zombie_timeout=zombie_timeout, max_attempts=3)))
    return store


def test_killed_after_the_node_wrote_its_complete_one_follow_up(
        served: ApiServer, workers: Any) -> None:
    store = setup(served)
    port = int(served.base.rsplit(":", 1)[1])
    proxy = AnswerHoldingProxy(port, b'"schedule"', "swallow")
    try:
        first = workers("checker", proxy.url)
        run_id = store.fire_now("watcher", {"check": 0})
        proxy.answered.wait(60) or pytest.fail(f"no complete reached the node:\n"
                                              f"{first.log()[-3000:]}")
        succeeded(store, run_id, first.log)  # written: the answer just never arrived
        first.kill9()
    finally:
        proxy.close()
    again = workers("checker", served.base)  # the same worker id, restarted
    quiet = store.fire_now("watcher", {"quiet": True})
    succeeded(store, quiet, again.log)
    run = store.get_run(run_id)
    assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 1)
    made = follow_ups_of(store)
    assert len(made) == 1, made
    assert made[0].payload == {"check": 1}
    assert getattr(made[0], "created_by", None) == f"run:{run_id}"
    assert again.stop() == 0


def test_a_complete_sent_again_after_a_lost_answer_schedules_nothing_more(
        served: ApiServer, workers: Any) -> None:
    store = setup(served, zombie_timeout="5m")
    port = int(served.base.rsplit(":", 1)[1])
    proxy = AnswerHoldingProxy(port, b'"schedule"', "drop")
    try:
        # Its heartbeat would also learn the run is no longer its own (and drop the
        # complete unsent): beats far apart (under a zombie timeout longer still) leave
        # the re-send to happen first.
        worker = workers("checker", proxy.url, heartbeat_interval="60s")
        run_id = store.fire_now("watcher", {"check": 0})
        succeeded(store, run_id, worker.log)
        proxy.answered.wait(60) or pytest.fail("the answer was never held")
        # The worker hears nothing back, sends the same complete again and is told it is
        # stale (the run is no longer its attempt's to write).
        worker.wait_for_log("worker_run_taken_over", timeout=60)
    finally:
        proxy.close()
    made = follow_ups_of(store)
    assert len(made) == 1, made
    assert getattr(made[0], "created_by", None) == f"run:{run_id}"
    assert worker.stop() == 0
