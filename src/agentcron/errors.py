"""Errors that cross layers. Each carries enough for a user to fix the cause."""

from __future__ import annotations


class AgentcronError(Exception):
    """Base class for every error agentcron raises on purpose."""


class ValidationError(AgentcronError):
    """Bad user input, caught before anything is written.

    ``field`` names the input that is wrong (``cron``, ``every``, ``tz``, ``payload`` ...),
    ``message`` says what is wrong and ``hint`` what would be valid. The CLI prints
    ``error: <field>: <message> (<hint>)`` and exits 2; the API answers 422 with the same text.
    ``also``: the other problems found in the same input (an agents file reports every
    bad entry at once, one per line after this one).
    """

    def __init__(self, field: str, message: str, hint: str | None = None) -> None:
        self.field = field
        self.message = message
        self.hint = hint
        self.also: tuple[ValidationError, ...] = ()
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return "\n".join([text, *(str(other) for other in self.also)])


def all_problems(problems: list[ValidationError], shown: int = 20) -> ValidationError:
    """One error for several found in one input: the first, carrying the next ``shown - 1``
    (and how many more there were) in ``also``."""
    first, *rest = problems
    more = rest[shown - 1:]
    first.also = tuple(rest[:shown - 1])
    if more:
        first.also += (ValidationError("...", f"and {len(more)} more problems",
                                       "fix these and check again"),)
    return first


class NotFoundError(AgentcronError):
    """A named agent, trigger or run does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found")


class ConflictError(AgentcronError):
    """The request is well formed but the current state forbids it (e.g. cancel a finished run)."""


class ForbiddenError(AgentcronError):
    """The caller is known but may not do this (a worker token and an agent it is not
    limited to). The API answers 403."""


class DatabaseNotMigratedError(AgentcronError):
    """The database schema is missing or older than this version of agentcron."""


class DatabaseUnavailableError(AgentcronError):
    """The database named cannot be reached or used (refused, unknown host, bad
    credentials, no such database): the message names it, password masked, and the
    driver's reason."""


class GuardrailError(ValidationError):
    """An agent-made trigger refused by its agent's scheduling policy (``max_live``,
    ``min_interval``, ``may_schedule``; ``rules/scheduling.py``), in the store's creating
    transaction. ``reason`` says what to change; shown like any bad input (``scheduling:
    <reason>``, exit 2, HTTP 422)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__("scheduling", reason)
