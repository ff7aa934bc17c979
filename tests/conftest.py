"""Shared fixtures. The ``store`` fixture runs every store test on a real SQLite file and on
the real PostgreSQL server, so both backends keep one contract.

PostgreSQL: ``AGENTCRON_TEST_PG_URL`` (default the local server's ``test`` database). Each
test session creates its own database and drops it at the end. If the server is not
reachable the PostgreSQL tests are skipped, unless ``AGENTCRON_REQUIRE_PG=1`` (CI sets it),
in which case they fail.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from agentcron.store import Store
from agentcron.store.schema import metadata

PG_ADMIN_URL = os.environ.get(
    "AGENTCRON_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def _pg_available(wait_s: float = 60.0) -> str | None:
    """None when the server answers; else why not. A server that is starting up (the fault
    tests restart it) is waited for, up to ``wait_s``; one that refuses connections is
    retried for a few seconds only, so a machine without PostgreSQL skips quickly."""
    deadline = time.monotonic() + wait_s
    refused_until = time.monotonic() + 5.0
    while True:
        try:
            engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            engine.dispose()
            return None
        except Exception as exc:  # the reason is shown in the skip or failure message
            problem = str(exc).splitlines()[0]
        starting = "starting up" in problem or "shutting down" in problem
        if time.monotonic() > (deadline if starting else refused_until):
            return problem
        time.sleep(0.5)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    problem = _pg_available()
    if problem is not None:
        if os.environ.get("AGENTCRON_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required but unreachable: {problem}")
        pytest.skip(f"PostgreSQL unreachable: {problem}")
    name = f"agentcron_test_{uuid.uuid4().hex[:10]}"
    # pre-ping: the fault tests restart the server, which breaks pooled connections.
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    store = Store(url)
    store.upgrade()
    store.close()
    yield url
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _truncate(store: Store) -> None:
    with store.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path}/agentcron.db")
        s.upgrade()
    else:
        s = Store(request.getfixturevalue("pg_url"))
        _truncate(s)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: os.PathLike[str]) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/agentcron.db")
    s.upgrade()
    yield s
    s.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    s = Store(pg_url)
    _truncate(s)
    yield s
    s.close()


# What the ``cli`` fixture returns: call it with CLI arguments, get Typer's Result.
Cli = Callable[..., Any]


@pytest.fixture
def db_url(tmp_path: os.PathLike[str]) -> str:
    """A fresh SQLite database for the CLI tests."""
    return f"sqlite:///{tmp_path}/cli.db"


@pytest.fixture
def cli(db_url: str) -> Cli:
    """Run the real Typer app against ``db_url`` and return its Result."""
    from typer.testing import CliRunner

    from agentcron.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["--db", db_url, *args])

    return invoke


@pytest.fixture
def ok(cli: Cli) -> Callable[..., str]:
    """Run a command that must succeed; return its stdout."""

    def run(*args: str) -> str:
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        return str(result.stdout)

    return run
