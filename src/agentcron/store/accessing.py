"""The API-access operations of ``Store``: tokens and dashboard sessions, by their hashes
only (the tokens themselves are never stored; see ``store.tokens``). Each method is one
transaction, like every ``Store`` method."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy.engine import Connection

from agentcron.store import tokens
from agentcron.store.database import db_now
from agentcron.store.tokens import ApiToken


class AccessOperations:
    """Mixed into ``Store``; ``_write`` and ``_read`` are its transactions."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def create_token(self, name: str, scope: str, token_hash: str,
                     now: datetime | None = None, agents: list[str] | None = None,
                     max_live: int | None = None) -> ApiToken:
        """Store a token's hash (and a worker or schedule token's agents, a schedule
        token's ``max_live``); ConflictError if the name is taken."""
        with self._write() as conn:
            return tokens.create_token(conn, name, scope, token_hash, db_now(conn, now),
                                       agents, max_live)

    def list_tokens(self) -> list[ApiToken]:
        with self._read() as conn:
            return tokens.list_tokens(conn)

    def count_tokens(self) -> int:
        with self._read() as conn:
            return tokens.count_tokens(conn)

    def revoke_token(self, name: str) -> None:
        """Delete the token and its dashboard sessions; NotFoundError if unknown."""
        with self._write() as conn:
            tokens.revoke_token(conn, name)

    def token_by_hash(self, token_hash: str, now: datetime | None = None) -> ApiToken | None:
        """One unique-index lookup; refreshes last_used_at at most once a minute (a row
        lock on the token for that short update only)."""
        with self._write() as conn:
            return tokens.token_by_hash(conn, token_hash, db_now(conn, now))

    def create_session(self, id_hash: str, token_name: str, csrf_token: str,
                       expires_at: datetime, now: datetime | None = None) -> None:
        with self._write() as conn:
            tokens.create_session(conn, id_hash, token_name, csrf_token, db_now(conn, now),
                                  expires_at)

    def session_by_hash(self, id_hash: str, now: datetime | None = None
                        ) -> tuple[ApiToken, str] | None:
        with self._read() as conn:
            return tokens.session_by_hash(conn, id_hash, db_now(conn, now))

    def delete_session(self, id_hash: str) -> None:
        with self._write() as conn:
            tokens.delete_session(conn, id_hash)
