"""The storm's machinery: the database, the receiver, the nodes, the faults and the samples.

A scenario (``chaos.scenarios``) drives a ``Storm``: set it up, start nodes, add triggers,
inject faults for the duration, then ``settle`` (every run that was due reaches its end)
and ``finish`` (nodes drained, receiver stopped). ``chaos.verdict`` turns what the database
and the receiver hold into the figures.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from agentcron.store.schema import runs
from chaos.hosts import Hosts, Network
from chaos.pg import HARNESS_APP, Cluster
from tests.support.procs import REPO, ServeProcess
from tests.support.workers import WorkerProcess

AGENT = "receiver"
TERMINAL = (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value,
            RunStatus.SKIPPED.value)


def log(message: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    print(f"[chaos {stamp}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class NodeOptions:
    """``agentcron serve`` flags every node of a scenario gets."""

    zombie_timeout: str = "5s"
    heartbeat_interval: str = "1s"
    poll_interval: str = "0.5s"
    drain_timeout: str = "10s"
    # An http agent node keeps at most 100 requests open (agents.http_agent); a node that
    # takes far more runs than that queues them in its memory, where no idle node can take
    # them over. Two hundred keeps every node busy and leaves the rest in the database.
    max_inflight: int = 200

    def as_dict(self) -> dict[str, Any]:
        return {"zombie_timeout": self.zombie_timeout,
                "heartbeat_interval": self.heartbeat_interval,
                "poll_interval": self.poll_interval, "drain_timeout": self.drain_timeout,
                "max_inflight": self.max_inflight}


@dataclass(frozen=True)
class AgentOptions:
    """An agent the triggers fire: by default the http agent posting to the receiver;
    ``python`` runs ``chaos.agents:noop`` in the node instead (no delivery to count);
    ``remote`` is run by workers (``chaos.remote``), posting to the receiver too."""

    timeout: str = "60s"
    max_attempts: int = 5
    retry_backoff: str = "0.5s"
    max_concurrency: int = 100_000
    kind: str = "http"
    zombie_timeout: str | None = None  # the nodes' when None

    @property
    def delivers(self) -> bool:
        """Whether its runs post to the receiver (so a run counts only once delivered)."""
        return self.kind in ("http", "remote")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "timeout": self.timeout, "max_attempts": self.max_attempts,
                "retry_backoff": self.retry_backoff, "max_concurrency": self.max_concurrency,
                "zombie_timeout": self.zombie_timeout}


@dataclass
class TriggerGroup:
    """``count`` interval triggers every ``every_s`` seconds whose runs take ``hold_s``
    (the receiver holds each request that long). Every one runs with ``overlap=allow`` and
    ``catchup_mode=all`` (10 min window): each scheduled time must get its own run."""

    name: str
    count: int
    every_s: float
    hold_s: float
    agent: str = AGENT
    start: datetime | None = None
    end: datetime | None = None
    ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "triggers": self.count, "every_s": self.every_s,
                "hold_s": self.hold_s, "agent": self.agent,
                "start": self.start.isoformat() if self.start else None,
                "end": self.end.isoformat() if self.end else None}

    def times(self) -> list[datetime]:
        """The scheduled times every trigger of the group must fire: start + k * every, up
        to its end. Each trigger's first fire is its start (``Storm.add_triggers``), so the
        schedule alone says which runs must exist."""
        assert self.start is not None and self.end is not None
        step = timedelta(seconds=self.every_s)
        out, at = [], self.start
        while at <= self.end:
            out.append(at)
            at += step
        return out


@dataclass
class Fault:
    kind: str
    at: float  # epoch seconds, when it was injected
    target: str = ""
    cleared_at: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target,
                "at": datetime.fromtimestamp(self.at, UTC).isoformat(),
                "cleared_after_s": (None if self.cleared_at is None
                                    else round(self.cleared_at - self.at, 3)),
                **self.detail}


class Node:
    """One ``agentcron serve`` (or ``agentcron worker``) process the storm started."""

    def __init__(self, proc: ServeProcess | WorkerProcess, env: dict[str, str],
                 netns: str | None = None) -> None:
        self.proc = proc
        self.env = env
        self.netns = netns
        self.started_at = time.time()
        self.exit_code: int | None = None
        self.paused = False

    @property
    def id(self) -> str:
        return self.proc.node_id

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def host(self) -> str:
        """The network namespace the node runs in (scenarios with hosts of their own)."""
        if self.netns is None:
            raise RuntimeError(f"{self.id} runs in the root namespace")
        return self.netns

    def alive(self) -> bool:
        return self.proc.proc.poll() is None

    def rss_kb(self) -> int | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None


class Storm:
    def __init__(self, scenario: str, duration_s: float, *, nodes: NodeOptions,
                 agents: dict[str, AgentOptions], seed: int | None = None,
                 workdir: Path | None = None, network: Network | None = None,
                 plan: list[TriggerGroup] | None = None) -> None:
        """``plan``: the trigger groups the scenario adds (``add_triggers(storm.plan)``)."""
        self.scenario = scenario
        self.duration_s = duration_s
        self.node_options = nodes
        self.agents = agents
        self.seed = seed if seed is not None else int(time.time())
        self.rng = random.Random(self.seed)
        self.cluster = Cluster.from_env()
        self.network = network or Network()
        self.hosts = Hosts(self.cluster.port) if self.network.hosts else None
        self.delay: subprocess.Popen[str] | None = None
        self.node_url = ""  # the database as the nodes reach it
        self.workdir = workdir or Path(os.environ.get("CHAOS_WORKDIR", "/tmp/agentcron-chaos")
                                       ) / scenario
        self.nodes: list[Node] = []
        self.plan = plan or []
        self.groups: list[TriggerGroup] = []  # the groups added
        self.faults: list[Fault] = []
        self.samples: list[dict[str, Any]] = []
        self.url = ""
        self.receiver: subprocess.Popen[str] | None = None
        self.receiver_port = 0
        self.receiver_host = "127.0.0.1"
        self.ledger_path = self.workdir / "receiver.tsv"
        self.engine: Engine | None = None
        self._counter = 0
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        self.storm_started = 0.0
        self.storm_ended = 0.0
        self.settled_in_s: float | None = None
        self.notes: list[str] = []

    # -- setup ---------------------------------------------------------------------------

    def setup(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        self.cluster.ensure()
        receiver_host = "127.0.0.1"
        if self.hosts is not None:
            self.hosts.setup()
            receiver_host = self.hosts.gateway
        listen = None if self.hosts is None else (self.hosts.gateway, self.hosts.subnet)
        if self.cluster.listen_also(*(listen or (None, None))):
            self.cluster.stop()
        self.cluster.start()
        self.url = self.node_url = self.cluster.fresh_database()
        if self.hosts is not None:
            self.node_url = self.url.replace("@127.0.0.1:", f"@{self.hosts.gateway}:")
        if self.network.delay_ms:
            port = self._start_delay(receiver_host)
            self.node_url = self.node_url.replace(f":{self.cluster.port}/", f":{port}/")
        store = Store(self.url)
        try:
            store.upgrade()
        finally:
            store.close()
        self.engine = create_engine(
            self.url, pool_pre_ping=True, pool_size=2,
            connect_args={"application_name": HARNESS_APP, "connect_timeout": 5})
        self._start_receiver(receiver_host)
        store = Store(self.url)
        try:
            services = Services(store)
            for name, options in self.agents.items():
                config = {"http": {"url": self.receiver_url}, "remote": {}}.get(
                    options.kind, {"target": "chaos.agents:noop"})
                services.add_agent(services.build_agent(
                    name, options.kind, config, zombie_timeout=options.zombie_timeout,
                    max_concurrency=options.max_concurrency, timeout=options.timeout,
                    max_attempts=options.max_attempts, retry_backoff=options.retry_backoff))
        finally:
            store.close()
        log(f"{self.scenario}: database {self.url} on cluster "
            f"{self.cluster.version}/{self.cluster.name}, receiver on port {self.receiver_port}")

    def _helper(self, name: str, *args: str) -> tuple[subprocess.Popen[str], int]:
        """Start ``python -m chaos.NAME ARGS``, a process of the suite's own that prints
        ``listening PORT`` once it accepts connections."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        proc = subprocess.Popen(
            [sys.executable, "-m", f"chaos.{name}", *args],
            stdout=subprocess.PIPE, stderr=(self.workdir / f"{name}.log").open("ab"),
            text=True, env=env, cwd=self.workdir)
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if line[:1] != ["listening"]:
            proc.kill()
            raise RuntimeError(f"chaos.{name} did not start: {line}")
        return proc, int(line[1])

    @property
    def receiver_url(self) -> str:
        return f"http://{self.receiver_host}:{self.receiver_port}/run"

    def _start_receiver(self, host: str) -> None:
        self.receiver_host = host
        self.receiver, self.receiver_port = self._helper(
            "receiver", "--out", str(self.ledger_path), "--host", host)

    def _start_delay(self, host: str) -> int:
        self.delay, port = self._helper(
            "delay", "--listen", host, "--to", f"127.0.0.1:{self.cluster.port}",
            "--delay-ms", f"{self.network.delay_ms:g}",
            "--jitter-ms", f"{self.network.jitter_ms:g}", "--seed", str(self.seed))
        return port

    def add_triggers(self, groups: list[TriggerGroup], lead_s: float = 3.0) -> None:
        """Create every group's triggers, all starting on the same whole second a little
        ahead, and ending ``duration`` later.

        Every trigger is created "as of" the one ``now`` read before the first insert, so
        each one's first fire time is its ``start`` however long the inserts take: nodes are
        already running, and a trigger stored after its start is fired from its start by
        ``all`` catch-up (10 min window) rather than from its first time after the insert.
        The expected fires then follow from the schedule alone; nothing is read back from a
        trigger row that a running node may already have advanced."""
        store = Store(self.url)
        try:
            services = Services(store)
            total = sum(g.count for g in groups)
            now = store.now()
            start = (now + timedelta(seconds=lead_s + total * 0.015)).replace(microsecond=0)
            end = start + timedelta(seconds=self.duration_s) - timedelta(milliseconds=500)
            for group in groups:
                group.start, group.end = start, end
                for _ in range(group.count):
                    trigger = services.add_trigger(TriggerInput(
                        agent=group.agent, every=f"{group.every_s:g}s", start=start, end=end,
                        payload={"hold": group.hold_s, "group": group.name},
                        overlap="allow", catchup="10m", catchup_mode="all"), now)
                    group.ids.append(trigger.id)
            late = store.now() - start
        finally:
            store.close()
        self.groups.extend(groups)
        if late > timedelta(0):
            self.notes.append(f"triggers were created {late.total_seconds():.1f}s after "
                              "their start (they caught up)")
        log(f"{total} triggers from {start.isoformat()} to {end.isoformat()}")

    # -- nodes ----------------------------------------------------------------------------

    def next_index(self) -> int:
        """A number no node or worker of this storm has had (names, namespaces)."""
        self._counter += 1
        return self._counter

    def start_node(self, env: dict[str, str] | None = None, prefix: str = "n",
                   wait: bool = True, api_port: int | None = None) -> Node:
        """A node, on a host of its own when the scenario gives hosts, unless it serves the
        API (``api_port``, on the gateway address, for workers to reach)."""
        index = self.next_index()
        node_id = f"{self.scenario}-{prefix}{index}"
        opts = self.node_options
        netns = None
        if self.hosts is not None and api_port is None:
            netns = self.hosts.add(index)
        proc = ServeProcess(
            self.node_url, node_id, self.workdir, zombie_timeout=opts.zombie_timeout,
            drain_timeout=opts.drain_timeout, heartbeat_interval=opts.heartbeat_interval,
            poll_interval=opts.poll_interval,
            extra=["--max-inflight", str(opts.max_inflight)], env=env, api_port=api_port,
            api_host=self.hosts.gateway if self.hosts is not None else "127.0.0.1",
            wrapper=None if netns is None else ["ip", "netns", "exec", netns])
        node = Node(proc, env or {}, netns)
        self.nodes.append(node)
        if wait:
            proc.wait_for_log("node_started", timeout=60)
        return node

    def live_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.alive() and n.exit_code is None]

    def kill9(self, node: Node) -> Fault:
        fault = Fault("kill -9", time.time(), node.id)
        node.proc.kill9()
        node.exit_code = -9
        self.faults.append(fault)
        return fault

    def sigterm(self, node: Node, timeout: float = 120.0) -> tuple[int, float]:
        """SIGTERM and wait for the drain; returns (exit code, seconds). One that has not
        exited after ``timeout`` is killed, and its exit code is -9 (the verdict's exit-code
        check fails it; its log tells what it waited for)."""
        began = time.monotonic()
        try:
            code = node.proc.stop(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.notes.append(f"{node.id} had not exited {timeout:g}s after SIGTERM: killed")
            node.proc.kill9()
            code = -9
            node.exit_code = -10  # not a kill the storm meant: fails the exit-code check
            return code, time.monotonic() - began
        node.exit_code = code
        return code, time.monotonic() - began

    # -- sampling ---------------------------------------------------------------------------

    def start_sampling(self, every_s: float = 5.0) -> None:
        def loop() -> None:
            while not self._sampling.wait(every_s):
                self.sample()

        self._sampler = threading.Thread(target=loop, name="sampler", daemon=True)
        self._sampler.start()

    def sample(self) -> None:
        now = time.time()
        rss = {n.id: n.rss_kb() for n in self.live_nodes() if not n.paused}
        try:
            connections: int | None = self.cluster.node_connections()
        except Exception:
            connections = None  # the database is down right now
        self.samples.append({"t": round(now - self.storm_started, 2), "rss_kb": rss,
                             "connections": connections,
                             "deliveries": self.receiver_lines()})

    def receiver_lines(self) -> int:
        try:
            with self.ledger_path.open("rb") as f:
                return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 20), b""))
        except OSError:
            return 0

    # -- the storm -------------------------------------------------------------------------

    def begin(self) -> None:
        """Start the storm's clock at the triggers' first fire time, waiting for it if the
        inserts were quick, so that ``at(offset)`` is ``offset`` seconds into the schedule
        whatever creating the triggers took. (Counted from the end of the inserts, a pause
        5 s in could strike before the first runs were claimed on a quiet machine, and find
        nothing to take over.)"""
        starts = [g.start.timestamp() for g in self.groups if g.start is not None]
        begin_at = max([time.time(), *starts])
        time.sleep(max(0.0, begin_at - time.time()))
        self.storm_started = begin_at

    def until_end(self) -> float:
        return self.storm_started + self.duration_s - time.time()

    def at(self, offset_s: float) -> None:
        """Sleep until ``offset_s`` seconds into the storm (the storm runs in real time)."""
        delay = self.storm_started + offset_s - time.time()
        if delay > 0:
            time.sleep(delay)

    def db(self) -> Engine:
        assert self.engine is not None
        return self.engine

    def query(self, fn: Callable[[Any], Any], timeout: float = 120.0) -> Any:
        """Run ``fn(conn)`` on the harness's own connection, riding out a database that is
        restarting."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.db().connect() as conn:
                    return fn(conn)
            except DBAPIError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def running_by_node(self, min_age_s: float = 0.0,
                        triggers: list[str] | None = None) -> dict[str, int]:
        """Runs each node holds (``running``) right now, counting only those started at
        least ``min_age_s`` ago on the database's clock (the long ones, when short runs
        last less), and only those of ``triggers`` when given."""
        def counts(conn: Any) -> dict[str, int]:
            query = (select(runs.c.node_id, func.count())
                     .where(runs.c.status == RunStatus.RUNNING.value,
                            runs.c.node_id.is_not(None),
                            runs.c.started_at <= func.now() - timedelta(seconds=min_age_s))
                     .group_by(runs.c.node_id))
            if triggers is not None:
                query = query.where(runs.c.trigger_id.in_(triggers))
            rows = conn.execute(query)
            return {str(node_id): int(n) for node_id, n in rows}

        result: dict[str, int] = self.query(counts)
        return result

    def settle(self, timeout_s: float) -> bool:
        """After the storm: wait until every trigger run that was due has reached its end
        (succeeded, failed, cancelled or skipped). True if it did within the timeout."""
        self.storm_ended = time.time()
        expected = sum(len(g.times()) * len(g.ids) for g in self.groups)
        began = time.monotonic()

        def pending(conn: Any) -> tuple[int, int]:
            rows = conn.execute(
                select(func.count(), func.count().filter(runs.c.status.not_in(TERMINAL)))
                .where(runs.c.trigger_id.is_not(None))).one()
            return int(rows[0]), int(rows[1])

        last_report = 0.0
        while True:
            total, open_ = self.query(pending)
            if total >= expected and open_ == 0:
                self.settled_in_s = round(time.monotonic() - began, 2)
                log(f"settled: {total} runs, none open, {self.settled_in_s}s after the storm")
                return True
            elapsed = time.monotonic() - began
            if elapsed > timeout_s:
                log(f"NOT settled after {timeout_s:g}s: {total}/{expected} runs, {open_} open")
                self.notes.append(f"not settled after {timeout_s:g}s: {total} of {expected} "
                                  f"runs, {open_} still queued or running")
                return False
            if elapsed - last_report > 10:
                last_report = elapsed
                log(f"settling: {total}/{expected} runs, {open_} open")
            time.sleep(0.5)

    def finish(self) -> None:
        """Drain every node still running, the last started first (workers before the nodes
        serving their API), exit codes kept; then stop the receiver."""
        for node in self.nodes:
            if node.paused:
                node.proc.signal(signal.SIGCONT)
                node.paused = False
        for node in reversed(self.live_nodes()):
            code, took = self.sigterm(node)
            if code != 0:
                self.notes.append(f"{node.id} exited {code} on SIGTERM after {took:.1f}s")
        self._sampling.set()
        self.stop_receiver()

    def stop_receiver(self) -> None:
        if self.receiver is not None and self.receiver.poll() is None:
            self.receiver.send_signal(signal.SIGTERM)
            try:
                self.receiver.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.receiver.kill()

    def cleanup(self) -> None:
        """Whatever happened: no process left behind, the cluster stopped."""
        self._sampling.set()
        for node in self.nodes:
            node.proc.signal(signal.SIGCONT)
            node.proc.cleanup()
        for helper in (self.receiver, self.delay):
            if helper is not None and helper.poll() is None:
                helper.kill()
                helper.wait(timeout=10)
        if self.hosts is not None:
            self.hosts.teardown()
        if self.engine is not None:
            self.engine.dispose()
        if os.environ.get("CHAOS_KEEP_CLUSTER") != "1":  # left running to look at
            with contextlib.suppress(Exception):
                self.cluster.stop()

    # -- logs --------------------------------------------------------------------------------

    def node_logs(self) -> Iterator[tuple[str, str]]:
        for node in self.nodes:
            yield node.id, node.proc.log()
