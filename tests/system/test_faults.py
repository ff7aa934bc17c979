"""Fault injection against real ``agentcron serve`` processes on PostgreSQL: a node paused
with SIGSTOP and taken over, drains that finish or time out, a second signal, a database
restart in the middle of a run, and a node down for longer than the catch-up window.

Nothing is mocked and no test sleeps to wait for a loop: every wait is on database state or
a log line, with a timeout. Sleeping happens only inside agents, or to let real time pass
for a schedule (the node is down on purpose).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import RowMapping, make_url
from sqlalchemy.exc import DBAPIError

from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from agentcron.store.schema import nodes, run_events, runs
from tests.support.helpers import wait_until
from tests.support.procs import REPO, ServeProcess

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SUCCEEDED = RunStatus.SUCCEEDED.value
RUNNING = RunStatus.RUNNING.value
TARGETS = "tests.support.agents"


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
def procs() -> Iterator[list[ServeProcess]]:
    """Every node a test starts; killed at the end whatever happened (resumed first if it
    was left paused)."""
    started: list[ServeProcess] = []
    yield started
    for proc in started:
        proc.signal(signal.SIGCONT)
        proc.cleanup()


def _node(store: Store, tmp_path: Path, procs: list[ServeProcess], node_id: str,
          **kwargs: Any) -> ServeProcess:
    """Start a node and wait until it is registered and its loops run."""
    kwargs.setdefault("ledger", tmp_path / "ledger.txt")
    proc = ServeProcess(store.url, node_id, tmp_path, **kwargs)
    procs.append(proc)
    proc.wait_for_log("node_started", timeout=30)
    return proc


def _agent(store: Store, name: str, target: str, **kwargs: Any) -> None:
    services = Services(store)
    kwargs.setdefault("retry_backoff", "0.1s")
    services.add_agent(services.build_agent(name, "python", {"target": f"{TARGETS}:{target}"},
                                            **kwargs))


def _every_second(store: Store, agent: str, count: int, start: datetime,
                  **kwargs: Any) -> list[str]:
    services = Services(store)
    return [
        services.add_trigger(TriggerInput(agent=agent, every="1s", start=start, **kwargs)).id
        for _ in range(count)
    ]


def _wait(predicate: Callable[[], Any], timeout: float, message: str) -> Any:
    """``wait_until`` where a database that is momentarily unreachable (the restart test)
    counts as "not yet"."""
    return wait_until(predicate, timeout, message, interval=0.05, ignoring=(DBAPIError,))


def _run(store: Store, run_id: str) -> RowMapping:
    with store.engine.connect() as conn:
        return conn.execute(select(runs).where(runs.c.id == run_id)).mappings().one()


def _events(store: Store, run_id: str | None = None) -> list[RowMapping]:
    query = select(run_events).order_by(run_events.c.id)
    if run_id is not None:
        query = query.where(run_events.c.run_id == run_id)
    with store.engine.connect() as conn:
        return list(conn.execute(query).mappings())


def _node_ids(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(select(nodes.c.id))]


def _wait_in_flight(tmp_path: Path, run_id: str) -> None:
    """Wait until the node's executor has begun ``run_id`` (``async_sleepy`` marks it), not
    only claimed it: a drain releases a claimed run its node has not started."""
    started = tmp_path / "ledger.txt.started"
    _wait(lambda: started.exists() and run_id in started.read_text().split(), 10,
          f"the node to begin {run_id}")


def _ledger(path: Path) -> list[tuple[str, int, str, str, int]]:
    """(run_id, attempt, trigger_id, scheduled_for, pid) per execution that completed."""
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(r, int(a), t, s, int(p)) for r, a, t, s, p in lines]


def _assert_no_attempt_ran_twice(ledger: Path) -> None:
    """An attempt is executed by one process at most (a retry is a new attempt); and a
    (trigger, scheduled time) was only ever one run."""
    entries = _ledger(ledger)
    twice = [k for k, n in Counter((r, a) for r, a, *_ in entries).items() if n > 1]
    assert not twice, f"attempts executed twice: {twice}"
    run_of: dict[tuple[str, str], set[str]] = {}
    for run_id, _attempt, trigger_id, scheduled, _pid in entries:
        if trigger_id != "None":
            run_of.setdefault((trigger_id, scheduled), set()).add(run_id)
    assert all(len(ids) == 1 for ids in run_of.values()), "a scheduled time ran as two runs"


def _settle(store: Store, trigger_ids: list[str], start: datetime, cutoff: datetime,
            timeout: float) -> None:
    """Wait until every trigger has a succeeded run for each second in [start, cutoff]."""
    expected = len(trigger_ids) * (int((cutoff - start).total_seconds()) + 1)

    def settled() -> bool:
        with store.engine.connect() as conn:
            done = conn.execute(
                select(func.count()).where(runs.c.trigger_id.in_(trigger_ids),
                                           runs.c.scheduled_for <= cutoff,
                                           runs.c.status == SUCCEEDED)
            ).scalar_one()
        return bool(done >= expected)

    _wait(settled, timeout, f"{expected} succeeded runs scheduled up to {cutoff}")


def _assert_each_second_exactly_once(store: Store, trigger_ids: list[str], start: datetime,
                                     cutoff: datetime) -> None:
    """Guarantee 1: one run per (trigger, scheduled second), none missing, all succeeded."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.trigger_id, runs.c.scheduled_for, runs.c.status)
            .where(runs.c.trigger_id.in_(trigger_ids), runs.c.scheduled_for <= cutoff)
        ).all()
    per_key = Counter((r.trigger_id, r.scheduled_for) for r in rows)
    assert max(per_key.values()) == 1, "a (trigger, scheduled time) has two runs"
    seconds = int((cutoff - start).total_seconds()) + 1
    for trigger_id in trigger_ids:
        times = sorted(t for (tid, t) in per_key if tid == trigger_id)
        assert times == [start + timedelta(seconds=i) for i in range(seconds)], (
            f"trigger {trigger_id}: scheduled seconds missing or extra")
    assert {r.status for r in rows} == {SUCCEEDED}


def _stopped_within(proc: ServeProcess, timeout: float) -> tuple[int, float]:
    """SIGTERM; (exit code, seconds it took)."""
    began = time.monotonic()
    code = proc.stop(timeout=timeout)
    return code, time.monotonic() - began


def _fenced_lines(proc: ServeProcess, run_id: str, *events: str) -> list[str]:
    return [line for line in proc.log().splitlines()
            if run_id in line and any(f'"event": "{e}"' in line for e in events)]


# -- 1. fencing a paused node --------------------------------------------------------------


def test_paused_node_is_fenced_after_takeover(pg_store: Store, tmp_path: Path,
                                              procs: list[ServeProcess]) -> None:
    """Guarantee 2. Node A is SIGSTOPped near the end of a 4 s run; B's sweeper finds the
    run lost after the 2 s zombie timeout and B claims attempt 2. A is resumed while B's
    attempt runs: A's finished attempt 1 must be fenced (the row stays B's), and the
    every-second triggers running throughout fire each second exactly once."""
    store = pg_store
    ledger = tmp_path / "ledger.txt"
    _agent(store, "slow", "async_sleepy_whoami", max_concurrency=1, timeout="1m",
           max_attempts=3)
    _agent(store, "rec", "record", max_concurrency=1000, timeout="30s")
    start = store.now().replace(microsecond=0) + timedelta(seconds=2)
    ticking = _every_second(store, "rec", 3, start, overlap="allow", catchup_mode="all")
    fast = {"zombie_timeout": "2s", "heartbeat_interval": "0.5s", "poll_interval": "0.2s"}
    a = _node(store, tmp_path, procs, "node-a", **fast)
    run_id = store.fire_now("slow", {"seconds": 4})
    claimed = _wait(lambda: (r := _run(store, run_id))["status"] == RUNNING and r,
                    10, "node-a to claim the slow run")
    assert claimed["node_id"] == "node-a" and claimed["lease"] == 1
    b = _node(store, tmp_path, procs, "node-b", **fast)

    # Pause A with about 1 s of its run left: however short the pause (at least the zombie
    # timeout minus a heartbeat), A's attempt has finished by the time it wakes up, so
    # its completion really is written, and must be fenced.
    _wait(lambda: store.now() >= claimed["started_at"] + timedelta(seconds=3), 10,
          "3 s into the run")
    a.signal(signal.SIGSTOP)
    stuck_sessions = 0
    with store.engine.connect() as conn:  # observation only: reported with -s
        def taken_over() -> bool:
            nonlocal stuck_sessions
            stuck_sessions = max(stuck_sessions, conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND state LIKE 'idle in transaction%'"
                " AND clock_timestamp() - state_change > interval '1 second'")).scalar_one())
            conn.rollback()
            row = _run(store, run_id)
            return bool(row["status"] == RUNNING and row["node_id"] == "node-b")

        _wait(taken_over, 20, "node-b to take the run over")
    retaken = _run(store, run_id)
    assert (retaken["attempt"], retaken["lease"]) == (2, 2)
    a.signal(signal.SIGCONT)
    # A's attempt is over when it wakes, so it writes its outcome: that write is fenced
    # (A's heartbeat may also revoke the run, which writes nothing).
    _wait(lambda: _fenced_lines(a, run_id, "completion_fenced"), 15,
          "node-a's stale completion to be fenced")
    during_b = _run(store, run_id)
    assert (during_b["status"], during_b["node_id"], during_b["lease"]) == (RUNNING, "node-b", 2)

    finished = _wait(lambda: (r := _run(store, run_id))["status"] == SUCCEEDED and r,
                     15, "node-b to finish attempt 2")
    cutoff = store.now().replace(microsecond=0) - timedelta(seconds=1)
    _settle(store, ticking, start, cutoff, timeout=30)
    assert a.stop() == 0, a.log()[-3000:]
    assert b.stop() == 0, b.log()[-3000:]

    final = _run(store, run_id)
    assert dict(final) == dict(finished)  # nothing wrote to it after B's completion
    assert (final["status"], final["node_id"], final["attempt"], final["lease"]) == (
        SUCCEEDED, "node-b", 2, 2)
    assert final["output"] == f"done by pid {b.pid}", "the stored result is not B's"
    assert final["finished_at"] - final["started_at"] >= timedelta(seconds=4), (
        "attempt 2 did not run its full length: someone else's completion ended it")
    assert [(e["kind"], e["attempt"], e["node_id"]) for e in _events(store, run_id)] == [
        ("lost", 1, "node-a")]
    fenced_lines = _fenced_lines(a, run_id, "completion_fenced", "run_revoked")
    assert "completion_fenced" not in b.log()
    slow_runs = sorted((att, pid) for r, att, _t, _s, pid in _ledger(ledger) if r == run_id)
    assert slow_runs[-1] == (2, b.pid) and all(pid == a.pid for _, pid in slow_runs[:-1])
    _assert_no_attempt_ran_twice(ledger)
    _assert_each_second_exactly_once(store, ticking, start, cutoff)
    with store.engine.connect() as conn:
        worst_lag = conn.execute(
            select(func.max(runs.c.queued_at - runs.c.scheduled_for))
            .where(runs.c.trigger_id.in_(ticking))).scalar_one()
    print(f"\nfencing: A's sessions idle in a transaction during the pause: {stuck_sessions};"
          f" worst fire lag of the interval triggers: {worst_lag};"
          f" A's log: {[json.loads(line)['event'] for line in fenced_lines]}")


# -- 2. drain: the run in flight finishes ---------------------------------------------------


def test_drain_lets_the_run_in_flight_finish(pg_store: Store, tmp_path: Path,
                                             procs: list[ServeProcess]) -> None:
    """Guarantee 4: SIGTERM stops claiming, waits for the 2 s run (within the 10 s drain
    timeout), writes its outcome, deregisters and exits 0."""
    store = pg_store
    _agent(store, "slow", "async_sleepy", timeout="1m")
    node = _node(store, tmp_path, procs, "node-a", drain_timeout="10s")
    run_id = store.fire_now("slow", {"seconds": 2})
    _wait_in_flight(tmp_path, run_id)
    signalled_at = store.now()
    code, took = _stopped_within(node, timeout=20)

    assert code == 0, node.log()[-3000:]
    assert took < 10, f"drain took {took:.1f}s for a 2 s run"
    row = _run(store, run_id)
    assert (row["status"], row["attempt"], row["node_id"]) == (SUCCEEDED, 1, "node-a")
    assert row["finished_at"] > signalled_at  # it was in flight when the signal came
    assert _events(store, run_id) == []  # not released, not lost
    assert _node_ids(store) == []
    assert [e[0] for e in _ledger(tmp_path / "ledger.txt")] == [run_id]
    assert "node_draining" in node.log() and "drain_timeout_cancelled_runs" not in node.log()


# -- 3. drain: past the drain timeout --------------------------------------------------------


def test_drain_timeout_releases_the_run_to_another_node(pg_store: Store, tmp_path: Path,
                                                        procs: list[ServeProcess]) -> None:
    """Guarantee 4: a 5 s run outlives A's 1 s drain timeout; A cancels it, puts it back to
    ``queued`` without consuming the attempt, and exits 0; B resumes it at once, and B's
    is attempt 1."""
    store = pg_store
    _agent(store, "slow", "async_sleepy", timeout="1m", max_attempts=1)
    a = _node(store, tmp_path, procs, "node-a", drain_timeout="1s")
    run_id = store.fire_now("slow", {"seconds": 5})
    _wait_in_flight(tmp_path, run_id)
    b = _node(store, tmp_path, procs, "node-b")
    code, took = _stopped_within(a, timeout=20)
    assert code == 0, a.log()[-3000:]
    assert took < 8, f"a 1 s drain took {took:.1f}s"
    assert "drain_timeout_cancelled_runs" in a.log() and "runs_released" in a.log()

    row = _wait(lambda: (r := _run(store, run_id))["status"] == SUCCEEDED and r, 15,
                "node-b to finish the released run")
    assert (row["node_id"], row["attempt"], row["lease"]) == ("node-b", 1, 2)
    events = _events(store, run_id)
    assert [(e["kind"], e["attempt"], e["node_id"]) for e in events] == [
        ("released", 1, "node-a")]
    # Resumed at once (NOTIFY), not after a zombie timeout.
    assert row["started_at"] - events[0]["at"] < timedelta(seconds=2)
    assert _node_ids(store) == ["node-b"]
    assert b.stop() == 0
    # A's cancelled attempt never completed; B's did, once.
    assert [(e[0], e[1], e[4]) for e in _ledger(tmp_path / "ledger.txt")] == [
        (run_id, 1, b.pid)]


# -- 4. a second signal -------------------------------------------------------------------------


def test_second_signal_exits_at_once(pg_store: Store, tmp_path: Path,
                                     procs: list[ServeProcess]) -> None:
    """Guarantee 4: while draining a 60 s run under a 60 s drain timeout, a second SIGTERM
    ends the process at once with a non-zero code."""
    store = pg_store
    _agent(store, "slow", "async_sleepy", timeout="5m")
    node = _node(store, tmp_path, procs, "node-a", drain_timeout="60s")
    run_id = store.fire_now("slow", {"seconds": 60})
    _wait_in_flight(tmp_path, run_id)
    node.signal(signal.SIGTERM)
    node.wait_for_log("node_draining", timeout=10)
    began = time.monotonic()
    node.signal(signal.SIGTERM)
    try:
        code = node.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise AssertionError("the second signal did not end the process") from None
    assert time.monotonic() - began < 5
    assert code != 0
    assert "second_signal" in node.log()
    assert _run(store, run_id)["status"] == RUNNING  # left for the sweeper to recover


# -- 5. PostgreSQL restart in the middle of a run ---------------------------------------------


def _pg_control(action: str) -> None:
    """Stop or start the local cluster. Exit code 2 means it already was (stopped for
    ``stop``, running for ``start``: someone else may have restarted it meanwhile)."""
    done = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", action],
        timeout=120, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 2), f"pg_ctlcluster {action}: {done.stderr}"


def _wait_pg_ready(store: Store, timeout: float = 90.0) -> None:
    def ready() -> bool:
        probe = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"],
                               timeout=10)
        if probe.returncode != 0:
            return False
        store.now()  # accepts connections and answers queries (raises DBAPIError if not)
        return True

    _wait(ready, timeout, "PostgreSQL to accept connections again")


def _can_restart_postgres(url: str) -> str | None:
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_isready") is None:
        return "pg_ctlcluster / pg_isready not installed"
    if os.geteuid() != 0:
        return "restarting PostgreSQL needs root"
    if make_url(url).host not in ("127.0.0.1", "localhost"):
        return "PostgreSQL is not the local cluster 15/main"
    return None


def test_postgres_restart_mid_run(pg_store: Store, tmp_path: Path,
                                  procs: list[ServeProcess]) -> None:
    """Guarantee 5 (and 1): PostgreSQL is stopped while a 3 s run is in flight and started
    again once the agent has finished (so its outcome is written after the outage). Both
    nodes survive, the run is recorded succeeded once, on attempt 1; nobody was judged dead
    for the outage; every trigger has exactly one run for every second of the window.
    The slow agent's zombie timeout (30 s) outlasts the outage: a node that cannot beat
    gives a run up once that run's zombie timeout is close (self-fencing,
    ``engine/fence.py``), which the nodes' own 2 s would have done mid-outage."""
    store = pg_store
    problem = _can_restart_postgres(store.url)
    if problem:
        pytest.skip(problem)
    ledger = tmp_path / "ledger.txt"
    _agent(store, "slow", "async_sleepy", timeout="1m", max_attempts=3, zombie_timeout="30s")
    _agent(store, "rec", "record", max_concurrency=1000, timeout="30s", max_attempts=3)
    start = store.now().replace(microsecond=0) + timedelta(seconds=2)
    ticking = _every_second(store, "rec", 3, start, overlap="allow", catchup_mode="all")
    fast = {"zombie_timeout": "2s", "heartbeat_interval": "0.5s", "poll_interval": "0.2s"}
    a = _node(store, tmp_path, procs, "node-a", **fast)
    b = _node(store, tmp_path, procs, "node-b", **fast)
    _settle(store, ticking, start, start + timedelta(seconds=1), timeout=15)
    run_id = store.fire_now("slow", {"seconds": 3})
    _wait(lambda: _run(store, run_id)["status"] == RUNNING, 10, "the slow run to start")

    down_at = time.monotonic()
    _pg_control("stop")
    try:
        # The agent finishes while the database is down: its outcome must wait, not vanish.
        _wait(lambda: any(e[0] == run_id for e in _ledger(ledger)), 15,
              "the slow run's agent to finish during the outage")
    finally:
        _pg_control("start")
        _wait_pg_ready(store)
    outage = time.monotonic() - down_at
    # Longer than the zombie timeout: every heartbeat is stale when the database returns.
    assert outage > 2.0
    for node in (a, b):
        node.wait_for_log("store_unavailable", timeout=5)
        node.wait_for_log("store_recovered", timeout=30)

    row = _wait(lambda: (r := _run(store, run_id))["status"] == SUCCEEDED and r, 30,
                "the slow run's outcome to be written after the outage")
    assert (row["attempt"], row["lease"]) == (1, 1)
    cutoff = store.now().replace(microsecond=0) - timedelta(seconds=1)
    _settle(store, ticking, start, cutoff, timeout=40)
    assert a.stop() == 0, a.log()[-3000:]
    assert b.stop() == 0, b.log()[-3000:]

    assert _events(store, run_id) == []
    assert [e for e in _events(store) if e["kind"] == "lost"] == [], (
        "a node was judged dead because of the database outage")
    assert next(e for e in _ledger(ledger) if e[0] == run_id)[1] == 1
    executed = Counter(e[0] for e in _ledger(ledger))
    assert executed[run_id] == 1 and max(executed.values()) == 1, "a run executed twice"
    _assert_each_second_exactly_once(store, ticking, start, cutoff)
    assert "loop_crashed" not in a.log() + b.log()
    print(f"\nrestart: database down {outage:.1f}s; run written "
          f"{(row['finished_at'] - row['started_at']).total_seconds():.1f}s after it started")


# -- 6. down for longer than the catch-up window ------------------------------------------------


def _cli_json(store: Store, *args: str) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO),
                                         env.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, "-m", "agentcron", "--db", store.url, *args],
                          capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_catchup_after_downtime_longer_than_the_window(pg_store: Store, tmp_path: Path,
                                                       procs: list[ServeProcess]) -> None:
    """Guarantee 1 and the catch-up policy: an every-second trigger with a 5 s coalescing
    window; the only node is stopped for ~12 s. On restart one run stands for the due
    times inside the window, the older ones are counted as missed (the CLI shows them),
    and every second of the outage is accounted for exactly once."""
    store = pg_store
    _agent(store, "rec", "record", max_concurrency=100, timeout="30s")
    first = _node(store, tmp_path, procs, "node-1")
    # The trigger starts once the node runs: made before, a node slow to start (in CI,
    # right after the PostgreSQL restart test: 3 s) found its first time already past
    # and rightly coalesced it into the next, so no run stood for that second alone.
    start = store.now().replace(microsecond=0) + timedelta(seconds=2)
    (trigger_id,) = _every_second(store, "rec", 1, start, catchup="5s",
                                  catchup_mode="coalesce", overlap="allow")

    def runs_of_trigger() -> list[RowMapping]:
        with store.engine.connect() as conn:
            return list(conn.execute(select(runs).where(runs.c.trigger_id == trigger_id)
                                     .order_by(runs.c.scheduled_for)).mappings())

    _settle(store, [trigger_id], start, start + timedelta(seconds=2), timeout=15)
    assert first.stop() == 0, first.log()[-3000:]
    before = runs_of_trigger()
    last_before = before[-1]["scheduled_for"]
    time.sleep(12)  # real time passes with no node up: that is the point of the test
    second = _node(store, tmp_path, procs, "node-2")
    _wait(lambda: sum(r["scheduled_for"] > last_before and r["status"] == SUCCEEDED
                      for r in runs_of_trigger()) >= 3, 15, "runs after the restart")
    assert second.stop() == 0, second.log()[-3000:]

    rows = runs_of_trigger()
    assert {r["status"] for r in rows} == {SUCCEEDED}
    assert all(r["coalesced"] == 1 for r in before)
    after = [r for r in rows if r["scheduled_for"] > last_before]
    caught_up, following = after[0], after[1:]
    assert 5 <= caught_up["coalesced"] <= 6, caught_up["coalesced"]
    shown = _cli_json(store, "triggers", "show", trigger_id, "--json")
    assert shown["missed_count"] > 0 and shown["last_missed_at"] is not None, shown
    # Every second from the stop to the coalesced run is either missed (counted) or
    # covered by that one run; none both, none neither.
    gap = int((caught_up["scheduled_for"] - last_before).total_seconds())
    assert gap >= 12
    assert shown["missed_count"] + caught_up["coalesced"] == gap, (shown, caught_up)
    last_missed = caught_up["scheduled_for"] - timedelta(seconds=caught_up["coalesced"])
    assert datetime.fromisoformat(shown["last_missed_at"]) == last_missed
    # After the catch-up the schedule goes on second by second, one plain run each.
    assert [r["scheduled_for"] for r in following] == [
        caught_up["scheduled_for"] + timedelta(seconds=i + 1) for i in range(len(following))]
    assert all(r["coalesced"] == 1 for r in following)
    assert max(Counter(r["scheduled_for"] for r in rows).values()) == 1
    _assert_no_attempt_ran_twice(tmp_path / "ledger.txt")
