"""API tokens and dashboard sessions. Only hashes are stored: a token (or a session
cookie) is shown to its holder once and is never written to the database or a log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from agentcron.errors import ConflictError, NotFoundError
from agentcron.store.schema import api_sessions, api_tokens

# last_used_at is refreshed at most this often per token, so a busy client does not turn
# every read into a write.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class ApiToken:
    name: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None = None
    #: A ``worker`` token's agents (the only runs it may touch); None for other scopes.
    agents: list[str] | None = None
    #: A ``schedule`` token's cap on live triggers made through it (``store/guardrails.py``).
    max_live: int | None = None


def _token(row: Any) -> ApiToken:
    return ApiToken(name=row.name, scope=row.scope, created_at=row.created_at,
                    last_used_at=row.last_used_at,
                    agents=None if row.agents is None else [str(a) for a in row.agents],
                    max_live=row.max_live)


_TOKEN_COLUMNS = (api_tokens.c.name, api_tokens.c.scope, api_tokens.c.created_at,
                  api_tokens.c.last_used_at, api_tokens.c.agents, api_tokens.c.max_live)


def create_token(conn: Connection, name: str, scope: str, token_hash: str,
                 now: datetime, agents: list[str] | None = None,
                 max_live: int | None = None) -> ApiToken:
    """Insert a token row; ConflictError if the name is taken."""
    taken = conn.execute(select(api_tokens.c.name).where(api_tokens.c.name == name)).first()
    if taken is not None:
        raise ConflictError(f"a token named {name!r} already exists; revoke it first or "
                            "pick another name")
    conn.execute(insert(api_tokens).values(name=name, scope=scope, token_hash=token_hash,
                                           created_at=now, agents=agents,
                                           max_live=max_live))
    return ApiToken(name=name, scope=scope, created_at=now, agents=agents, max_live=max_live)


def list_tokens(conn: Connection) -> list[ApiToken]:
    rows = conn.execute(select(*_TOKEN_COLUMNS).order_by(api_tokens.c.name))
    return [_token(row) for row in rows]


def count_tokens(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(api_tokens)).scalar_one())


def revoke_token(conn: Connection, name: str) -> None:
    """Delete the token and every dashboard session signed in with it."""
    conn.execute(delete(api_sessions).where(api_sessions.c.token_name == name))
    if conn.execute(delete(api_tokens).where(api_tokens.c.name == name)).rowcount == 0:
        raise NotFoundError("token", name)


def token_by_hash(conn: Connection, token_hash: str, now: datetime) -> ApiToken | None:
    """The token with this hash (one unique-index lookup), refreshing its last_used_at
    when that is older than ``TOUCH_EVERY``."""
    row = conn.execute(
        select(*_TOKEN_COLUMNS).where(api_tokens.c.token_hash == token_hash)
    ).first()
    if row is None:
        return None
    token = _token(row)
    if token.last_used_at is None or token.last_used_at < now - TOUCH_EVERY:
        conn.execute(
            update(api_tokens)
            .where(api_tokens.c.name == token.name,
                   or_(api_tokens.c.last_used_at.is_(None),
                       api_tokens.c.last_used_at < now - TOUCH_EVERY))
            .values(last_used_at=now)
        )
    return token


def create_session(conn: Connection, id_hash: str, token_name: str, csrf_token: str,
                   now: datetime, expires_at: datetime) -> None:
    """Record a dashboard session (and drop expired ones: an indexed range delete)."""
    conn.execute(delete(api_sessions).where(api_sessions.c.expires_at < now))
    conn.execute(insert(api_sessions).values(id_hash=id_hash, token_name=token_name,
                                             csrf_token=csrf_token, created_at=now,
                                             expires_at=expires_at))


def session_by_hash(conn: Connection, id_hash: str, now: datetime
                    ) -> tuple[ApiToken, str] | None:
    """(the session's token, its CSRF token) for a live session, else None."""
    row = conn.execute(
        select(*_TOKEN_COLUMNS, api_sessions.c.csrf_token)
        .select_from(api_sessions.join(api_tokens,
                                       api_tokens.c.name == api_sessions.c.token_name))
        .where(api_sessions.c.id_hash == id_hash, api_sessions.c.expires_at > now)
    ).first()
    if row is None:
        return None
    return _token(row), str(row.csrf_token)


def delete_session(conn: Connection, id_hash: str) -> None:
    conn.execute(delete(api_sessions).where(api_sessions.c.id_hash == id_hash))
