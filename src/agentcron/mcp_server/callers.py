"""Who is calling a tool, and what that caller may do.

A caller is a live API token (``services.access``). Over MCP (``mcp_access``): ``read``
may use the read-only tools; ``schedule``, ``write`` and ``admin`` every tool; ``worker``
none. A token limited to agents (``tokens create --scope schedule --agents a,b``) sees and
acts on those agents only: listings leave the others out, and naming another is refused.
The checks here are the tool layer's; what a trigger itself may be is the trigger
service's (one validator), and the store's guardrails apply below both.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentcron.errors import ForbiddenError
from agentcron.services.access import McpAccess, mcp_access
from agentcron.store.tokens import ApiToken


class McpRefused(ForbiddenError):
    """A token that may not use MCP at all, or may not do what a tool asked."""


@dataclass(frozen=True)
class McpCaller:
    """A live token calling tools. ``access`` is what its scope allows over MCP."""

    token: ApiToken
    access: McpAccess

    @classmethod
    def of(cls, token: ApiToken) -> McpCaller:
        """The caller for ``token``; ``McpRefused`` for a scope MCP does not take."""
        access = mcp_access(token.scope)
        if access is None:
            raise McpRefused(
                f"token {token.name!r} has scope {token.scope!r}, which cannot use MCP; "
                "use a schedule, write or admin token (or read, for the read-only tools): "
                "`agentcron tokens create NAME --scope schedule`")
        return cls(token, access)

    @property
    def name(self) -> str:
        return self.token.name

    @property
    def agents(self) -> list[str] | None:
        """The agents this token is limited to; None: every agent."""
        return self.token.agents

    def sees(self, agent: str) -> bool:
        return self.agents is None or agent in self.agents

    def check_agent(self, agent: str) -> None:
        """Refuse an agent this token is not limited to."""
        if not self.sees(agent):
            raise McpRefused(
                f"agent: token {self.name!r} may only act on agents "
                f"{', '.join(self.agents or [])}, not {agent!r} (use one of those, or a "
                "token made with --agents including it)")

    def check_change(self, tool: str) -> None:
        """Refuse a tool that changes something to a read-only token."""
        if self.access is not McpAccess.CHANGE:
            raise McpRefused(
                f"token {self.name!r} has scope {self.token.scope!r}: {tool} changes "
                "schedules and needs a schedule, write or admin token "
                "(`agentcron tokens create NAME --scope schedule`)")
