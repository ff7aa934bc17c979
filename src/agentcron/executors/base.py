"""What every executor shares: the ``Executor`` protocol, ``PermanentError``, output caps.

An executor runs one attempt of one run and reports an ``ExecutionResult``. It never writes to
the store: the engine does that, fenced on the run's lease. Contract for implementations:

- ``execute`` returns a result for everything the agent itself did wrong (exception, non-zero
  exit, HTTP error, bad config): it does not raise for those.
- ``execute`` honours asyncio cancellation (the engine cancels the task on timeout, cancel and
  drain): it stops the work it started (kills processes, closes responses, sets the run's
  ``cancel_event``) and then re-raises ``CancelledError``. It never swallows cancellation.
- The returned ``usage`` already includes what the agent recorded through ``RunContext`` plus
  whatever it reported in its response; the engine stores it as is.
- Stored ``output`` and ``error`` are capped (``OUTPUT_LIMIT`` by default) with a visible marker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from agentcron.models import ClaimedRun, ExecutionResult, Usage

if TYPE_CHECKING:
    from agentcron.executors.context import RunContext

OUTPUT_LIMIT = 64 * 1024
"""Default cap, in characters (bytes for command output), for a run's stored output and error."""


class PermanentError(Exception):
    """Raise from Python agent code to fail the run without retrying it.

    Use it for errors another attempt cannot fix (bad payload, missing permission); any other
    exception is retried according to the agent's retry policy.
    """


@runtime_checkable
class Executor(Protocol):
    """Runs one attempt of a run. One instance per agent kind, shared by all runs of a node."""

    async def execute(self, run: ClaimedRun, ctx: RunContext) -> ExecutionResult:
        """Run ``run`` once and say how it went (see the module docstring for the contract)."""
        ...

    async def aclose(self) -> None:
        """Release what the executor owns (clients, processes). Called once, at node stop."""
        ...


MIN_REQUEST_TIMEOUT_S = 1.0


def request_timeout_s(run: ClaimedRun) -> float:
    """How long an agent's outbound request may take: the run's whole time budget, from its
    claim to its deadline, at least ``MIN_REQUEST_TIMEOUT_S``. Both ends are read from the
    database's clock, so a wrong clock on this host can neither shorten nor stretch it (a
    host 5 minutes fast would otherwise see every deadline as past); the engine ends the run
    at its deadline in any case."""
    return max(MIN_REQUEST_TIMEOUT_S, (run.deadline_at - run.started_at).total_seconds())


def truncation_marker(omitted: int, unit: str = "chars") -> str:
    """The text appended where output was cut, so a reader never mistakes it for the end."""
    return f"\n[agentcron: output truncated, {omitted} more {unit} not stored]"


def truncate(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """``text`` unchanged if it fits in ``limit`` characters, else its head plus a marker."""
    if len(text) <= limit:
        return text
    return text[:limit] + truncation_marker(len(text) - limit)


def merge_usage(recorded: Usage, reported: Usage | None) -> Usage | None:
    """What the agent recorded through its context plus what it reported; None if nothing."""
    total = recorded + reported if reported is not None else recorded
    if total == Usage():
        return None
    return total


def output_limit(config: dict[str, Any]) -> int:
    """The agent's ``output_limit`` if it is a positive integer, else ``OUTPUT_LIMIT``."""
    value = config.get("output_limit")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return OUTPUT_LIMIT


def failed(error: str, *, retryable: bool, usage: Usage | None = None) -> ExecutionResult:
    """A failed result with its error capped to ``OUTPUT_LIMIT``."""
    return ExecutionResult(ok=False, error=truncate(error), retryable=retryable, usage=usage)
