"""Engines and transactions for the two supported backends.

SQLite is the embedded default for one node: every write transaction is ``BEGIN IMMEDIATE``,
so writers are serialised by the database file lock and a read never upgrades into a
deadlock. PostgreSQL is for many nodes: row locks with ``SKIP LOCKED`` let nodes share the
work, and server-side timeouts make sure a paused or vanished node cannot hold a lock for
longer than ``idle_in_transaction_session_timeout``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from agentcron.errors import ValidationError

_READ_ONLY = "agentcron_read_only"


def normalise_url(url: str) -> str:
    """Accept the URL forms people paste (``postgres://``, ``postgresql://``) and pick the
    driver agentcron is tested with (psycopg 3)."""
    url = url.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ValidationError(
            "db", f"cannot parse database URL: {exc}", "e.g. sqlite:///agentcron.db or "
            "postgresql://user@host/dbname"
        ) from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValidationError(
            "db",
            f"unsupported database {parsed.get_backend_name()!r}",
            "agentcron runs on sqlite:///FILE (one node) or postgresql://... (many nodes)",
        )
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        raise ValidationError("db", "only the psycopg (3) driver is supported",
                              "use postgresql+psycopg://... or postgresql://...")
    return url


def make_engine(url: str, *, pool_size: int = 5, lock_timeout_s: float = 30.0) -> Engine:
    """Create an engine with a bounded pool and the per-backend session settings."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        return _sqlite_engine(url, lock_timeout_s)
    return _postgres_engine(url, pool_size, lock_timeout_s)


def _sqlite_engine(url: str, lock_timeout_s: float) -> Engine:
    _create_private(make_url(url).database)
    engine = create_engine(url, pool_size=pool_size_for_sqlite(), max_overflow=0,
                           pool_pre_ping=False, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(lock_timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_READ_ONLY):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _create_private(path: str | None) -> None:
    """Create the SQLite file readable by its owner only (0600) when it does not exist yet:
    it holds the agents' configs, webhook secrets and run outputs. SQLite gives the -wal and
    -shm files the database file's permissions, so they are private too. An existing file
    keeps the permissions its owner chose."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # a missing directory or no permission: sqlite3 reports it when it opens
    os.close(fd)


def pool_size_for_sqlite() -> int:
    return 4


#: Client-side bounds on a connection whose peer went silent (packets dropped: a partition,
#: a host gone), where the server-side timeouts cannot help because nothing reaches the
#: server: data left unacknowledged for ``tcp_user_timeout`` ms, or no answer to
#: keepalive probes on a connection waiting for a reply, closes the connection and the
#: call fails (a store outage, retried) instead of hanging until the kernel gives up
#: (about 15 minutes). A node's fence (``engine/fence.py``) does not wait on them; they
#: let its beats get through again soon after the link heals.
TCP_TIMEOUTS: dict[str, int] = {
    "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}


def _postgres_engine(url: str, pool_size: int, lock_timeout_s: float) -> Engine:
    options = " ".join(
        [
            "-c timezone=UTC",
            # A node stopped (SIGSTOP, GC pause, network partition) inside a transaction
            # must not hold trigger or agent row locks for longer than this.
            "-c idle_in_transaction_session_timeout=5000",
            f"-c lock_timeout={int(lock_timeout_s * 1000)}",
            "-c statement_timeout=60000",
        ]
    )
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=2,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"options": options, "application_name": "agentcron",
                      "connect_timeout": 5, **TCP_TIMEOUTS},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # Batched writes send one array per column; psycopg's text array dumper quotes
        # every element through a regex and was a quarter of a busy node's CPU.
        from psycopg.types.array import ListBinaryDumper

        dbapi_conn.adapters.register_dumper(list, ListBinaryDumper)

    return engine


@contextlib.contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A read-write transaction: committed on success, rolled back on any exception.
    On SQLite it starts with ``BEGIN IMMEDIATE`` and so holds the database write lock."""
    with engine.begin() as conn:
        yield conn


@contextlib.contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction; on SQLite a deferred one that never blocks writers."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{_READ_ONLY: True})
        with conn.begin():
            yield conn


def db_now(conn: Connection, now: datetime | None) -> datetime:
    """The time a store operation acts at: ``now`` when given (tests, explicit clocks),
    otherwise the database's clock on PostgreSQL, so replicas with skewed clocks agree on
    what is due and what is stale. SQLite is one host, so its clock is the process's."""
    if now is not None:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.astimezone(UTC)
    if conn.dialect.name == "postgresql":
        value = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)


def dialect_insert(conn: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` in the connection's own dialect, the one that has
    ``on_conflict_do_nothing`` / ``on_conflict_do_update`` (the generic insert has neither).
    Both backends spell the clause alike, so callers need not know which one they run on."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
