"""The chaos suite's own PostgreSQL cluster.

The scenarios stop, restart and cut the connections of their database server, so they never
touch the cluster other tests and benchmarks use (``15/main`` on port 5432). They run on a
cluster of their own, ``<version>/chaos`` on port 5444 by default (``CHAOS_PG_CLUSTER``,
``CHAOS_PG_PORT``), created on first use with Debian's ``pg_createcluster`` (trust
authentication on loopback), started for a scenario and stopped again when it ends.

Two scenarios on one cluster at once would restart each other's server, so a scenario holds
an exclusive lock on the cluster (a ``flock`` on a file in /tmp) while it runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg

DEFAULT_CLUSTER = "chaos"
DEFAULT_PORT = 5444
DATABASE = "chaos"
# Connections the harness itself makes carry this name, so they are never counted as the
# nodes' and never terminated by the database scenario.
HARNESS_APP = "agentcron-chaos"


class ClusterError(RuntimeError):
    pass


def _run(args: list[str], *, check: bool = True, timeout: float = 120.0
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise ClusterError(f"{' '.join(args)} exited {done.returncode}: "
                           f"{(done.stderr or done.stdout).strip()}")
    return done


def newest_version() -> str:
    versions = sorted((p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir()),
                      key=lambda v: [int(x) for x in v.split(".") if x.isdigit()])
    if not versions:
        raise ClusterError("no PostgreSQL installed under /etc/postgresql")
    return versions[-1]


@dataclass
class Cluster:
    """One Debian PostgreSQL cluster that the suite owns and may restart at will."""

    version: str
    name: str = DEFAULT_CLUSTER
    port: int = DEFAULT_PORT

    @classmethod
    def from_env(cls) -> Cluster:
        return cls(version=os.environ.get("CHAOS_PG_VERSION") or newest_version(),
                   name=os.environ.get("CHAOS_PG_CLUSTER", DEFAULT_CLUSTER),
                   port=int(os.environ.get("CHAOS_PG_PORT", str(DEFAULT_PORT))))

    # -- urls ---------------------------------------------------------------------------

    def url(self, database: str = DATABASE) -> str:
        """The SQLAlchemy URL the nodes use."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return (f"host=127.0.0.1 port={self.port} user=postgres dbname={database} "
                f"application_name={HARNESS_APP} connect_timeout=5")

    # -- lifecycle ------------------------------------------------------------------------

    @staticmethod
    def check_tools() -> str | None:
        """Why this machine cannot run the suite, or None."""
        for tool in ("pg_createcluster", "pg_ctlcluster", "pg_lsclusters", "pg_isready"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed (Debian's postgresql-common)"
        if os.geteuid() != 0:
            return "managing a PostgreSQL cluster needs root"
        return None

    def exists(self) -> bool:
        listing = _run(["pg_lsclusters", "--no-header"]).stdout
        return any(line.split()[:2] == [self.version, self.name]
                   for line in listing.splitlines())

    def ensure(self) -> None:
        """Create the cluster if it is missing (never touches any other cluster)."""
        if self.exists():
            return
        taken = _run(["pg_lsclusters", "--no-header"]).stdout
        if any(line.split()[2:3] == [str(self.port)] for line in taken.splitlines()):
            raise ClusterError(f"port {self.port} belongs to another cluster: set CHAOS_PG_PORT")
        _run(["pg_createcluster", self.version, self.name, "--port", str(self.port),
              "-o", "max_connections=200",
              "--", "--auth=trust"])

    def ctl(self, action: str, *options: str) -> None:
        """``pg_ctlcluster`` start/stop/restart. Exit code 2 means it already was."""
        done = _run(["pg_ctlcluster", "--skip-systemctl-redirect", *options, self.version,
                     self.name, action], check=False)
        if done.returncode not in (0, 2):
            raise ClusterError(f"pg_ctlcluster {action}: {(done.stderr or done.stdout).strip()}")

    def listen_also(self, address: str | None, subnet: str | None) -> bool:
        """Listen on ``address`` as well as loopback, trusting connections from ``subnet``
        (``chaos.hosts``), or on loopback alone when None. Returns whether the setting
        changed: a restart applies it."""
        conf = Path(f"/etc/postgresql/{self.version}/{self.name}")
        extra = conf / "conf.d" / "agentcron-hosts.conf"
        wanted = None if address is None else f"listen_addresses = '127.0.0.1,{address}'\n"
        had = extra.read_text() if extra.exists() else None
        if subnet is not None:
            hba = conf / "pg_hba.conf"
            line = f"host all all {subnet} trust"
            if line not in hba.read_text().splitlines():
                with hba.open("a") as out:
                    out.write(line + "\n")
        if wanted == had:
            return False
        if wanted is None:
            extra.unlink()
        else:
            extra.parent.mkdir(parents=True, exist_ok=True)
            extra.write_text(wanted)
        return True

    def start(self) -> None:
        self.ctl("start")
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """``fast`` rolls back open transactions and disconnects clients (a clean restart);
        ``immediate`` stops without a checkpoint, like a crash (recovery runs at start)."""
        self.ctl("stop", "--mode", mode)

    def ready(self) -> bool:
        probe = subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                               timeout=10, check=False)
        return probe.returncode == 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise ClusterError(f"cluster {self.version}/{self.name} not ready "
                                   f"after {timeout:g}s")
            time.sleep(0.05)

    def server_version(self) -> str:
        with psycopg.connect(self.conninfo()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def fresh_database(self, database: str = DATABASE) -> str:
        """Drop and create ``database``; returns its SQLAlchemy URL."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')
        return self.url(database)

    def terminate_backends(self, database: str = DATABASE) -> int:
        """``pg_terminate_backend`` every session on ``database`` but the harness's own."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND application_name <> %s AND pid <> pg_backend_pid()",
                (database, HARNESS_APP)).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def node_connections(self, database: str = DATABASE) -> int:
        """Sessions on ``database`` that are not the harness's: the nodes' pools and their
        LISTEN connections."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND application_name <> %s AND pid <> pg_backend_pid()",
                (database, HARNESS_APP)).fetchone()
        return int(row[0]) if row else 0


@contextlib.contextmanager
def exclusive(cluster: Cluster, timeout: float = 3600.0) -> Iterator[None]:
    """Hold the cluster for one scenario: waits for another scenario on it to finish."""
    path = Path(f"/tmp/agentcron-chaos-{cluster.version}-{cluster.name}.lock")
    handle: IO[str] = path.open("a")
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ClusterError(f"cluster {cluster.name} busy for {timeout:g}s") from None
                time.sleep(1.0)
        yield
    finally:
        handle.close()
