"""Who may use the HTTP API: API tokens, their scopes, and dashboard sessions.

Rules (shared by ``agentcron tokens`` and the API):

- a token is ``act_`` + 43 URL-safe characters (256 random bits). It is shown once, when
  created; the database keeps only its SHA-256. A plain hash (no salt, no slow KDF) is
  enough here because the token is random and long: there is nothing to guess from it;
- scopes are ordered: ``read`` (GET anything) < ``write`` (fire, pause, resume, cancel,
  retry, change triggers) < ``admin`` (agents, which run code on the nodes);
- ``worker`` stands apart: it is limited to named agents (``--agents a,b``) and may only
  claim, beat, complete and release their runs (``/api/v1/workers/...``); every other route
  refuses it, and no other scope may use those routes;
- ``schedule`` stands apart too: it is for agents that schedule themselves over MCP
  (``agentcron mcp``, ``/mcp`` on ``serve``), optionally limited to named agents
  (``--agents a,b``); the HTTP API and the dashboard refuse it. Over MCP, ``read`` may use
  the read-only tools, ``schedule``, ``write`` and ``admin`` every tool (``mcp_access``);
- a dashboard sign-in creates a session: a random cookie value (only its hash is stored)
  and a per-session CSRF token; revoking the token ends its sessions.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from agentcron.errors import ValidationError
from agentcron.services.scheduling import MAX_LIVE_CAP
from agentcron.services.validate import check_name, check_one_of
from agentcron.store import Store
from agentcron.store.tokens import ApiToken

TOKEN_PREFIX = "act_"
_TOKEN_SHAPE = re.compile(r"^act_[A-Za-z0-9_\-]{43}$")
_SESSION_SHAPE = re.compile(r"^[A-Za-z0-9_\-]{43}$")
SESSION_LIFETIME = timedelta(hours=12)


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    WORKER = "worker"
    SCHEDULE = "schedule"


#: Scopes that stand apart from the read < write < admin ranking: each allows only what
#: needs it (``schedule`` needs nothing on the HTTP API, so the API refuses it).
_APART = (Scope.WORKER, Scope.SCHEDULE)
#: Scopes a token may be limited to agents with: required for worker, optional for schedule.
_LIMITED = (Scope.WORKER, Scope.SCHEDULE)

_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}
MAX_TOKEN_AGENTS = 100


def scope_allows(have: str, need: Scope) -> bool:
    """Whether a token of scope ``have`` may do what needs ``need``: by rank for read,
    write and admin; ``worker`` allows only what needs ``worker``, which only it allows."""
    try:
        scope = Scope(have)
    except ValueError:
        return False
    if scope in _APART or need in _APART:
        return scope is need
    return _RANK[scope] >= _RANK[need]


class McpAccess(StrEnum):
    """What a token may do over MCP."""

    READ = "read"  # the read-only tools
    CHANGE = "change"  # every tool: create, pause, resume, delete triggers; fire agents


def mcp_access(have: str) -> McpAccess | None:
    """What a token of scope ``have`` may do over MCP: ``read`` the read-only tools;
    ``schedule``, ``write`` and ``admin`` every tool; ``worker`` (and anything else)
    nothing (None)."""
    if have == Scope.READ.value:
        return McpAccess.READ
    if have in (Scope.SCHEDULE.value, Scope.WRITE.value, Scope.ADMIN.value):
        return McpAccess.CHANGE
    return None


def check_token_agents(scope: Scope, agents: list[str] | None) -> list[str] | None:
    """A token's agents, each a valid name (they need not exist yet): required (at least
    one) for a worker token, optional for a schedule token (none: every agent), refused for
    any other scope."""
    if scope not in _LIMITED:
        if agents:
            raise ValidationError("agents", f"a {scope.value} token is not limited to agents",
                                  "only --scope worker or schedule takes --agents")
        return None
    if scope is Scope.SCHEDULE and not agents:
        return None
    if not agents:
        raise ValidationError("agents", "a worker token needs the agents it may run",
                              "--agents a,b")
    if len(agents) > MAX_TOKEN_AGENTS:
        raise ValidationError("agents", f"{len(agents)} agents; at most {MAX_TOKEN_AGENTS}")
    return sorted({check_name(name.strip(), "agents") for name in agents})


def check_token_max_live(scope: Scope, max_live: int | None) -> int | None:
    """A token's own cap on the live triggers made through it over MCP
    (``store/guardrails.py``): 0..``MAX_LIVE_CAP``, or None (only each agent's
    ``max_live``); refused for a scope that cannot make triggers over MCP (read, worker)."""
    if max_live is None:
        return None
    if mcp_access(scope.value) is not McpAccess.CHANGE:
        raise ValidationError("max_live", f"a {scope.value} token makes no triggers over "
                              "MCP", "only --scope schedule, write or admin takes --max-live")
    if isinstance(max_live, bool) or not isinstance(max_live, int) or not (
            0 <= max_live <= MAX_LIVE_CAP):
        raise ValidationError("max_live", f"invalid {max_live!r}",
                              f"a whole number from 0 to {MAX_LIVE_CAP}")
    return max_live


def looks_like_token(value: str) -> bool:
    """True for a string shaped like an API token (``act_`` + 43 URL-safe characters)."""
    return bool(_TOKEN_SHAPE.match(value.strip()))


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def is_loopback_host(host: str) -> bool:
    """True for hosts only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Access:
    def __init__(self, store: Store) -> None:
        self.store = store

    # -- tokens -------------------------------------------------------------------------

    def create_token(self, name: str, scope: str, now: datetime | None = None,
                     agents: list[str] | None = None, max_live: int | None = None
                     ) -> tuple[ApiToken, str]:
        """Create a token (a ``worker`` one limited to ``agents``; a ``schedule`` one
        optionally limited to ``agents`` and to ``max_live`` live triggers made through
        it); returns it with the one copy of its secret value."""
        check_name(name, "name")
        chosen = check_one_of(scope, Scope, "scope")
        limited = check_token_agents(chosen, agents)
        capped = check_token_max_live(chosen, max_live)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        saved = self.store.create_token(name, chosen.value, hash_secret(token), now, limited,
                                        capped)
        return saved, token

    def list_tokens(self) -> list[ApiToken]:
        return self.store.list_tokens()

    def revoke_token(self, name: str) -> None:
        self.store.revoke_token(name)

    def has_tokens(self) -> bool:
        return self.store.count_tokens() > 0

    def authenticate(self, token: str, now: datetime | None = None) -> ApiToken | None:
        """The token's record, or None for anything that is not a live token."""
        if not _TOKEN_SHAPE.match(token):
            return None
        return self.store.token_by_hash(hash_secret(token), now)

    # -- dashboard sessions -------------------------------------------------------------

    def start_session(self, token: ApiToken, now: datetime) -> tuple[str, str]:
        """(cookie value, CSRF token) for a new dashboard session of ``token``."""
        cookie = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        self.store.create_session(hash_secret(cookie), token.name, csrf,
                                  now + SESSION_LIFETIME, now)
        return cookie, csrf

    def session(self, cookie: str, now: datetime | None = None
                ) -> tuple[ApiToken, str] | None:
        """(token, CSRF token) of a live session, else None."""
        if not _SESSION_SHAPE.match(cookie):
            return None
        return self.store.session_by_hash(hash_secret(cookie), now)

    def end_session(self, cookie: str) -> None:
        if _SESSION_SHAPE.match(cookie):
            self.store.delete_session(hash_secret(cookie))
