"""PostgreSQL helpers the workloads share: where the databases are, and making them."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import psycopg

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PgTarget:
    """The server every system runs on (``BENCH_PG``) and the prefix of the benchmark's own
    databases (``BENCH_DB_PREFIX``), so parallel runs (CI, the smoke test) do not collide."""

    base: str = DEFAULT_PG
    prefix: str = "bench"

    @classmethod
    def from_env(cls, prefix: str | None = None) -> PgTarget:
        return cls(base=os.environ.get("BENCH_PG", DEFAULT_PG).rstrip("/"),
                   prefix=prefix or os.environ.get("BENCH_DB_PREFIX", "bench"))

    def dbname(self, workload: str) -> str:
        name = f"{self.prefix}_{workload}".lower()
        if not _NAME.match(name):
            raise ValueError(f"bad database name {name!r}")
        return name

    def url(self, workload: str) -> str:
        """A libpq URL (postgresql://...) for the workload's database."""
        return f"{self.base}/{self.dbname(workload)}"

    def admin_url(self) -> str:
        return f"{self.base}/postgres"


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def ensure_database(target: PgTarget, workload: str, *, fresh: bool = False) -> str:
    """Create the workload's database if missing (drop it first with ``fresh``); its URL."""
    name = target.dbname(workload)
    with psycopg.connect(target.admin_url(), autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return target.url(workload)


def drop_database(target: PgTarget, workload: str) -> None:
    name = target.dbname(workload)
    with psycopg.connect(target.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def server_info(url: str) -> dict[str, str]:
    """Version and the settings that matter for throughput."""
    names = ["server_version", "shared_buffers", "synchronous_commit", "fsync",
             "max_connections", "work_mem", "wal_level", "shared_preload_libraries",
             "max_wal_size", "checkpoint_timeout"]
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        info = {name: str(conn.execute(f"SHOW {name}").fetchone()[0])  # type: ignore[index]
                for name in names}
        info["version"] = str(conn.execute("SELECT version()").fetchone()[0])  # type: ignore[index]
    return info


def backend_pids(url: str, dbname: str) -> list[int]:
    """Server processes connected to ``dbname`` right now."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                            (dbname,)).fetchall()
    return [int(row[0]) for row in rows]


def wait_for_server(target: PgTarget, max_wait_s: float = 180.0) -> float:
    """Wait until the server accepts connections (other engineers' tests restart it);
    the seconds waited. Raises the last error after ``max_wait_s``."""
    import time

    started = time.monotonic()
    while True:
        try:
            with psycopg.connect(target.admin_url(), autocommit=True, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return round(time.monotonic() - started, 1)
        except psycopg.OperationalError:
            if time.monotonic() - started > max_wait_s:
                raise
            time.sleep(2.0)
