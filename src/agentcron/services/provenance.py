"""Where a trigger came from: its ``created_by`` and, for one a run made, the chain back
through the runs and triggers that made it to the person, file or token that started it."""

from __future__ import annotations

from typing import Any

from agentcron.errors import NotFoundError, ValidationError
from agentcron.models import Trigger
from agentcron.store import Store

#: How many links a chain follows before it stops (a loop of agent-made triggers is
#: bounded by the guardrails, but a chain must end even on a database that says otherwise).
MAX_CHAIN = 50
_PREFIXES = ("cli", "file", "python", "api", "mcp", "run", "declared")


def trigger_chain(store: Store, trigger: Trigger, limit: int = MAX_CHAIN
                  ) -> list[dict[str, Any]]:
    """The links from ``trigger`` back to its origin, newest first. Each link is
    ``{"trigger_id", "agent", "created_by", "run_id"}``: the trigger, who made it and, when
    a run made it, that run (whose trigger is the next link). The last link's
    ``created_by`` is not a run (the origin), or the link says why the chain stops
    (``"missing"``: the run or trigger is gone, e.g. pruned; ``"truncated"``: longer than
    ``limit``). Two reads per link."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    current: Trigger | None = trigger
    while current is not None:
        link: dict[str, Any] = {"trigger_id": current.id, "agent": current.agent,
                                "created_by": current.created_by, "run_id": None}
        chain.append(link)
        seen.add(current.id)
        if not current.created_by.startswith("run:"):
            break
        run_id = current.created_by.removeprefix("run:")
        link["run_id"] = run_id
        if len(chain) >= limit:
            link["truncated"] = f"the chain is longer than {limit} links"
            break
        current = _next(store, run_id, link, seen)
    return chain


def _next(store: Store, run_id: str, link: dict[str, Any], seen: set[str]
          ) -> Trigger | None:
    try:
        run = store.get_run(run_id)
    except NotFoundError:
        link["missing"] = f"run {run_id} is gone (pruned)"
        return None
    if run.trigger_id is None:
        link["missing"] = f"run {run_id} was fired by hand (no trigger)"
        return None
    if run.trigger_id in seen:
        link["missing"] = f"trigger {run.trigger_id} is already in the chain"
        return None
    try:
        return store.get_trigger(run.trigger_id)
    except NotFoundError:
        link["missing"] = f"trigger {run.trigger_id} of run {run_id} was deleted"
        return None


def check_created_by_filter(value: str | None) -> str | None:
    """A ``--created-by`` / ``?created_by=`` filter: exact (``cli``, ``api:ops``) or a
    prefix ending in ``:`` (``run:``, ``mcp:``)."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 200 or any(
            ord(c) < 32 for c in value):
        raise ValidationError("created_by", f"{str(value)[:80]!r} is not a provenance",
                              "e.g. cli, file, api:<token name>, or a prefix: run:, mcp:")
    return value
