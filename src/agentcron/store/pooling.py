"""The rate-limit pool operations of ``Store`` (kept here so ``store.py`` stays one
screenful per concern). Each method is one transaction, like every ``Store`` method; the
SQL and the locking contract are in ``store/pools.py``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy.engine import Connection

from agentcron.models import Pool
from agentcron.store import pools
from agentcron.store.database import db_now


class PoolOperations:
    """Mixed into ``Store``; ``_write`` and ``_read`` are its transactions."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def save_pool(self, pool: Pool, now: datetime | None = None) -> Pool:
        """Create or replace a pool (validated by ``services.pools``)."""
        with self._write() as conn:
            at = db_now(conn, now)
            pools.upsert_pool(conn, pool, at)
            return pools.list_pools(conn, at, pool.name)[0]

    def delete_pool(self, name: str) -> None:
        """``NotFoundError`` if there is none. Agents naming it then wait (their reason
        says the pool is not declared) until it is declared again or they name none."""
        with self._write() as conn:
            pools.delete_pool(conn, name)

    def list_pools(self, now: datetime | None = None, name: str | None = None) -> list[Pool]:
        """Every pool (or the named one) with what its sliding minute holds now."""
        with self._read() as conn:
            return pools.list_pools(conn, db_now(conn, now), name)

    def apply_declared_pools(self, source: str, declared: list[Pool],
                             now: datetime | None = None) -> int:
        """Make the pools owned by ``source`` (an agents file) exactly ``declared``;
        returns how many were removed."""
        with self._write() as conn:
            return pools.apply_declared(conn, source, declared, db_now(conn, now))

    def prune_pool_starts(self, now: datetime | None = None) -> int:
        """Delete the rate-limit ledger's rows that are out of every window."""
        with self._write() as conn:
            return pools.prune(conn, db_now(conn, now))
