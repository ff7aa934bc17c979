"""Real processes: an ``agentcron serve`` (its API) on SQLite and PostgreSQL, and
``agentcron worker`` processes pulling a remote agent's runs from it.

- runs executed remotely end to end, by two workers;
- kill -9 a worker mid-run: another finishes the run after the zombie timeout;
- SIGSTOP a worker past its timeout: its late complete is refused (409) and the new
  attempt's result stands;
- SIGTERM drains: what finishes in time is completed, the rest handed back;
- a 3 s outage (a proxy in between, cut) with a 10 s zombie timeout loses nothing;
- cut off for longer than its zombie timeout (packets dropped, or connections refused), a
  worker stops its run before the server may give it to another, writes no outcome for it,
  and rejoins to run the next attempt;
- beats that reach the server but whose answers the worker never hears: the worker fences
  itself all the same and reports the run failed, retryable, so it is not left to its
  deadline.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentcron.models import Run, RunStatus
from agentcron.services import Services
from agentcron.services.access import Access
from agentcron.services.agents import AgentInput
from agentcron.store import Store
from tests.support.api_server import ApiServer, api_server
from tests.support.helpers import pid_written, process_running, wait_until
from tests.support.proxies import AnswerHoldingProxy, CutProxy, cut_until_stopped
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.slow]
_names = itertools.count()


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Iterator[ApiServer]:
    with api_server(store.url, tmp_path, node_id="api-node", truncate=False) as server:
        yield server


@pytest.fixture
def workers(served: ApiServer, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(agent: str, worker_id: str, *, url: str | None = None,
              **options: Any) -> WorkerProcess:
        secret = Access(served.store).create_token(f"wt{next(_names)}", "worker",
                                                   agents=[agent])[1]
        proc = WorkerProcess(url or served.base, secret, agent, worker_id, tmp_path,
                             **options)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.cleanup()


def remote(store: Store, name: str, **settings: Any) -> None:
    agents = Services(store).agents
    agents.save(agents.build(AgentInput(name=name, kind="remote", config={}, **settings)))


def run_of(store: Store, run_id: str) -> Run:
    return store.get_run(run_id)


def finished(store: Store, run_id: str, timeout: float = 60.0,
             logs: Callable[[], str] = lambda: "") -> Run:
    def done() -> Run | None:
        run = run_of(store, run_id)
        return run if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED) else None

    result: Run = wait_until(done, timeout, lambda: f"run {run_id} to finish (it is "
                             f"{run_of(store, run_id).status}):\n{logs()[-3000:]}",
                             interval=0.1)
    return result


def _port(served: ApiServer) -> int:
    return int(served.base.rsplit(":", 1)[1])


def started_marks(mark: Path, run_id: str) -> list[str]:
    return sorted(p.name for p in mark.glob(f"{run_id}.*"))


def test_runs_execute_remotely_end_to_end(served: ApiServer, workers: Any,
                                          tmp_path: Path) -> None:
    store = served.store
    remote(store, "r", max_concurrency=4)
    one, two = workers("r", "w1", concurrency=2), workers("r", "w2", concurrency=2)
    ids = [store.fire_now("r", {"sleep": 0.3, "tag": n}) for n in range(8)]
    for run_id in ids:
        run = finished(store, run_id, logs=lambda: one.log() + two.log())
        assert run.status is RunStatus.SUCCEEDED, run.error
        assert run.node_id in ("worker:w1", "worker:w2")
        assert json.loads(run.output or "{}")["attempt"] == 1
    assert one.stop() == 0 and two.stop() == 0
    assert "worker_stopped" in one.log()


def test_a_killed_worker_s_run_is_finished_by_another_after_the_zombie_timeout(
        served: ApiServer, workers: Any, tmp_path: Path) -> None:
    store = served.store
    remote(store, "r", zombie_timeout="3s", max_attempts=3, timeout="5m")
    mark = tmp_path / "marks"
    mark.mkdir()
    first = workers("r", "doomed")
    run_id = store.fire_now("r", {"mark": str(mark), "first_sleep": 60, "sleep": 0})
    wait_until(lambda: started_marks(mark, run_id), 30, "the first attempt to start")
    first.kill9()
    second = workers("r", "heir")
    run = finished(store, run_id, logs=second.log)
    assert run.status is RunStatus.SUCCEEDED and run.node_id == "worker:heir"
    assert run.attempt == 2
    assert [m.split(".")[1] for m in started_marks(mark, run_id)] == ["1", "2"]


def test_a_frozen_worker_s_late_complete_is_refused_and_the_new_attempt_stands(
        served: ApiServer, workers: Any, tmp_path: Path) -> None:
    store = served.store
    remote(store, "r", zombie_timeout="3s", max_attempts=3, timeout="5m")
    mark = tmp_path / "marks"
    mark.mkdir()
    # A long beat interval: after it thaws, its run ends and completes before it would
    # beat again, so it is the late *complete* that meets the fence.
    frozen = workers("r", "frozen", heartbeat_interval="60s")
    run_id = store.fire_now("r", {"mark": str(mark), "sleep": 2, "tag": "x"})
    wait_until(lambda: started_marks(mark, run_id), 30, "the first attempt to start")
    frozen.signal(signal.SIGSTOP)
    heir = workers("r", "heir")
    run = finished(store, run_id, logs=heir.log)
    assert run.status is RunStatus.SUCCEEDED and run.node_id == "worker:heir"
    assert run.attempt == 2
    heir_output = run.output
    frozen.signal(signal.SIGCONT)
    frozen.wait_for_log("worker_run_taken_over")
    again = run_of(store, run_id)
    assert (again.status, again.attempt, again.node_id, again.output) == (
        RunStatus.SUCCEEDED, 2, "worker:heir", heir_output)
    assert frozen.stop() == 0


def test_sigterm_drains_finishing_what_it_can_and_handing_back_the_rest(
        served: ApiServer, workers: Any, tmp_path: Path) -> None:
    store = served.store
    remote(store, "r", max_concurrency=2, timeout="5m")
    mark = tmp_path / "marks"
    mark.mkdir()
    worker = workers("r", "drainer", concurrency=2, drain_timeout="3s")
    short = store.fire_now("r", {"mark": str(mark), "sleep": 1, "tag": "short"})
    long = store.fire_now("r", {"mark": str(mark), "sleep": 120, "tag": "long"})
    wait_until(lambda: started_marks(mark, short) and started_marks(mark, long), 30,
               "both runs to start")
    assert worker.stop() == 0
    assert run_of(store, short).status is RunStatus.SUCCEEDED
    handed_back = run_of(store, long)
    assert handed_back.status is RunStatus.QUEUED
    assert handed_back.attempt == 0 and handed_back.node_id is None
    assert "worker_run_released" in worker.log()


def test_a_short_outage_loses_nothing(served: ApiServer, workers: Any,
                                      tmp_path: Path) -> None:
    store = served.store
    remote(store, "r", zombie_timeout="10s", max_attempts=3, timeout="5m")
    mark = tmp_path / "marks"
    mark.mkdir()
    proxy = CutProxy(_port(served))
    try:
        worker = workers("r", "steady", url=proxy.url, heartbeat_interval="1s")
        run_id = store.fire_now("r", {"mark": str(mark), "sleep": 6})
        wait_until(lambda: started_marks(mark, run_id), 30, "the run to start")
        proxy.cut()
        time.sleep(3.0)  # the outage itself: 3 s with no way through (not a wait)
        proxy.mend()
        # The worker noticed (its beats failed), and carried on.
        worker.wait_for_log("worker_call_failed")
        run = finished(store, run_id, logs=worker.log)
    finally:
        proxy.close()
    assert run.status is RunStatus.SUCCEEDED and run.attempt == 1
    assert run.node_id == "worker:steady"
    assert started_marks(mark, run_id) == [f"{run_id}.1.{worker.proc.pid}"]


def _sleeping_run(served: ApiServer, workers: Any, url: str, worker_id: str, zombie_s: float,
                  pid_file: Path) -> tuple[WorkerProcess, str, int]:
    """A remote agent ``r`` (that zombie timeout) whose command sleeps, a worker reaching the
    API at ``url``, and one run executing: (the worker, the run, the command's pid). The
    pid file is removed, for the next attempt to write."""
    remote(served.store, "r", zombie_timeout=f"{zombie_s:g}s", max_attempts=3, timeout="5m")
    worker = workers("r", worker_id, url=url, heartbeat_interval="0.5s",
                     command=f"/bin/sh -c 'echo $$ > {pid_file}; exec sleep 600'")
    run_id = served.store.fire_now("r")
    pid: int = wait_until(lambda: pid_written(pid_file), 30, "the command to start")
    pid_file.unlink()
    return worker, run_id, pid


@pytest.mark.parametrize("how", ["drop", "cut"])
def test_a_worker_cut_off_stops_its_run_before_another_may_start_it_and_rejoins(
        served: ApiServer, workers: Any, tmp_path: Path, how: str) -> None:
    store = served.store
    zombie_s = 4.0
    pid_file = tmp_path / "sleeper.pid"
    proxy = CutProxy(_port(served))
    try:
        worker, run_id, pid = _sleeping_run(served, workers, proxy.url, "islanded", zombie_s,
                                            pid_file)
        cut_until_stopped(proxy, how, pid, zombie_s, worker.log)
        worker.wait_for_log("worker_run_given_up")
        assert "worker_fenced" in worker.log()
        # The server takes the run over (the worker is silent), and nothing of the first
        # attempt was written: no outcome, only the takeover.
        wait_until(lambda: any(e.kind == "lost" for e in store.run_history(run_id)), 30,
                   "the server to take the run over")
        proxy.mend()
        worker.wait_for_log("worker_rejoined")
        second = wait_until(lambda: pid_written(pid_file), 30, "the next attempt to start")
        assert second != pid
        run = run_of(store, run_id)
        assert (run.status, run.attempt, run.node_id) == (RunStatus.RUNNING, 2,
                                                          "worker:islanded")
        first = [e.kind for e in store.run_history(run_id) if e.attempt == 1]
        assert "lost" in first and not {"succeeded", "failed", "retry"} & set(first), first
    finally:
        proxy.close()
        for path in [pid_file]:
            if (left := pid_written(path)) and process_running(left):
                os.kill(left, signal.SIGKILL)


def test_a_worker_whose_beats_only_seem_lost_hands_its_run_back(
        served: ApiServer, workers: Any, tmp_path: Path) -> None:
    """The server stamps every beat, but the worker never hears the answers (as under a
    load that makes them slower than the call's timeout): the worker must fence itself as
    if cut off, yet the server sees a live worker and would never take the run over. So the
    worker reports it failed, retryable, as a node's fence does; before it did, the run
    stayed ``running`` with nothing executing it until its deadline (5 minutes here), and
    was then cancelled."""
    store = served.store
    zombie_s = 4.0
    pid_file = tmp_path / "sleeper.pid"
    proxy = AnswerHoldingProxy(_port(served), b"/heartbeat", "drop", every=True)
    try:
        worker, run_id, pid = _sleeping_run(served, workers, proxy.url, "unheard", zombie_s,
                                            pid_file)
        worker.wait_for_log("worker_run_given_up", timeout=2 * zombie_s)
        wait_until(lambda: not process_running(pid), 10, "the fenced command to stop")
        wait_until(lambda: run_of(store, run_id).status is RunStatus.QUEUED, 10,
                   lambda: f"the run to be given back:\n{worker.log()[-3000:]}")
        first = [(e.kind, e.message) for e in store.run_history(run_id) if e.attempt == 1]
        # The server saw a live worker throughout: no takeover, the worker's own report.
        assert [k for k, _ in first if k in ("lost", "retry")] == ["retry"], first
        assert "worker fenced" in str(first), first
        # Fenced, it claims nothing: the run waits in the queue for a beat to get through.
        assert run_of(store, run_id).status is RunStatus.QUEUED
        assert not pid_file.exists()
        proxy.stop_holding()
        worker.wait_for_log("worker_rejoined")
        second = wait_until(lambda: pid_written(pid_file), 30, "the run to start again")
        assert second != pid
        run = run_of(store, run_id)
        assert (run.status, run.node_id, run.attempt) == (RunStatus.RUNNING,
                                                          "worker:unheard", 2), worker.log()[-3000:]
    finally:
        proxy.close()
        if (left := pid_written(pid_file)) and process_running(left):
            os.kill(left, signal.SIGKILL)


def test_a_node_stops_in_time_while_a_worker_s_long_poll_is_open(served: ApiServer) -> None:
    store = served.store
    remote(store, "r")
    secret = Access(store).create_token("wt-poll", "worker", agents=["r"])[1]

    def poll() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{served.base}/api/v1/workers/claim",
                       json={"worker_id": "poller", "agents": ["r"], "max": 1, "wait": "60s"},
                       headers={"Authorization": f"Bearer {secret}"}, timeout=90)

    threading.Thread(target=poll, daemon=True).start()
    wait_until(lambda: any(w.id == "poller" for w in store.list_workers()), 30,
               "the long poll to reach the node")
    # The node drains (2 s), then the open claim gets one more drain timeout, not the 60 s
    # it asked to wait: a stop never hangs on an open request.
    assert served.proc.stop(timeout=30) == 0
