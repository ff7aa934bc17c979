"""Scheduling policy: what agents may schedule (issue 13). Pure: no I/O, no clock.

The store applies ``refusal`` in the transaction that creates an agent-made trigger (a
trigger whose ``created_by`` starts ``run:`` or ``mcp:``), with the target agent's row
locked (``store/guardrails.py``); everything here takes ``now`` and the counts it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agentcron.models import SchedulingPolicy

#: The created_by prefixes of triggers agents made; guardrails apply to those only.
AGENT_MADE = ("run:", "mcp:")
MAX_FOLLOW_UPS = 20
"""The most follow-ups one run may ask for (``ctx.schedule``, an answer's ``schedule``) and
``finish`` may write: a run that loops on ``ctx.schedule`` must not write an unbounded
number of triggers in its outcome's transaction."""
PENDING = "pending"
APPROVED = "approved"
AWAITING_APPROVAL = "awaiting approval"
"""The ``paused_reason`` of a trigger created pending."""


def agent_made(created_by: str | None) -> bool:
    """Whether a trigger with this provenance was made by an agent (a run or an MCP
    client), so the scheduling guardrails apply to it."""
    return created_by is not None and created_by.startswith(AGENT_MADE)


def policy_to_json(policy: SchedulingPolicy) -> dict[str, Any] | None:
    """The stored (and shown) form; ``None`` for the defaults (stored as null)."""
    if policy == SchedulingPolicy():
        return None
    return policy_json(policy)


def policy_json(policy: SchedulingPolicy) -> dict[str, Any]:
    """The policy as documents show it (durations in seconds)."""
    return {
        "may_schedule": list(policy.may_schedule) if policy.may_schedule is not None
        else None,
        "min_interval": policy.min_interval_s,
        "max_live": policy.max_live,
        "expires_after": policy.expires_after_s,
        "require_approval": policy.require_approval,
    }


def policy_from_json(doc: Mapping[str, Any] | None) -> SchedulingPolicy:
    """The inverse of ``policy_to_json`` (stored, already validated values)."""
    if not doc:
        return SchedulingPolicy()
    default = SchedulingPolicy()
    may = doc.get("may_schedule")
    return SchedulingPolicy(
        may_schedule=tuple(may) if may is not None else None,
        min_interval_s=float(doc.get("min_interval", default.min_interval_s)),
        max_live=int(doc.get("max_live", default.max_live)),
        expires_after_s=float(doc.get("expires_after", default.expires_after_s)),
        require_approval=bool(doc.get("require_approval", default.require_approval)),
    )


# -- checks ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """What the guardrails need to know of a trigger an agent asks for."""

    agent: str
    kind: str  # TriggerKind value
    gap: timedelta | None
    """The schedule's smallest gap (``schedule.gaps.smallest_gap``), a one-shot's counted
    from when it was asked for; None: no time left after now."""
    created_by: str
    by_agent: str | None = None
    """The agent whose run asks (created_by ``run:``), for ``may_schedule``."""


def refusal(candidate: Candidate, policy: SchedulingPolicy, live: int, now: datetime,
            scheduler_policy: SchedulingPolicy | None = None) -> str | None:
    """Why this agent-made trigger may not be created, or ``None``. ``policy`` is the target
    agent's; ``live`` how many live agent-made triggers it has now (before this one);
    ``scheduler_policy`` the scheduling run's agent's (for ``may_schedule``). The reason
    says what to change."""
    agent = candidate.agent
    if candidate.by_agent is not None and scheduler_policy is not None and not \
            scheduler_policy.allows(candidate.by_agent, agent):
        allowed = (list(scheduler_policy.may_schedule)
                   if scheduler_policy.may_schedule is not None else [candidate.by_agent])
        return (f"agent {candidate.by_agent!r} may not schedule agent {agent!r} "
                f"(may_schedule {allowed}); add {agent!r} to "
                f"[agents.{candidate.by_agent}.scheduling] may_schedule")
    if live >= policy.max_live:
        return (f"agent {agent!r} already has {live} live agent-made triggers (max_live "
                f"{policy.max_live}); delete one or raise [agents.{agent}.scheduling] "
                "max_live")
    if candidate.kind == "webhook":
        # A webhook's deliveries are not bounded by a schedule, so neither min_interval
        # nor the expiry could hold: agents schedule by time only.
        return (f"agents may not create webhook triggers (agent {agent!r}); give a cron, "
                "every or at schedule, or have a person create the webhook")
    gap = candidate.gap
    floor = timedelta(seconds=policy.min_interval_s)
    if gap is None:
        return (f"the schedule has no fire time after now ({now.isoformat()}); give a "
                "time in the future")
    if gap < floor:
        what = ("fires in" if candidate.kind == "once"
                else "fires again after" if candidate.kind == "interval"
                else "fires as often as every")
        return (f"agent {agent!r}'s trigger {what} {_shown(gap.total_seconds())}, "
                f"under its min_interval {_shown(policy.min_interval_s)}; "
                f"schedule it less often, or lower [agents.{agent}.scheduling] min_interval")
    return None


def token_refusal(created_by: str, token_agents: list[str] | None, live: bool, agent: str,
                  max_live: int | None = None, made_live: int = 0) -> str | None:
    """Why the MCP token in ``created_by`` (``mcp:<name>``) may not schedule ``agent``, or
    ``None``: it must still exist (``live``), when limited to agents name this one, and
    when capped (``max_live``) have fewer than that many live triggers made through it
    (``made_live``, across every agent). Not an MCP-made trigger: ``None``."""
    if not created_by.startswith("mcp:"):
        return None
    token = created_by.removeprefix("mcp:")
    if not live:
        return (f"token {token!r} no longer exists (revoked); make a new one with "
                "agentcron tokens create NAME --scope schedule")
    if token_agents and agent not in token_agents:
        return (f"token {token!r} may schedule only {', '.join(token_agents)}, not agent "
                f"{agent!r}; use a token whose --agents name it")
    if max_live is not None and made_live >= max_live:
        return (f"token {token!r} already has {made_live} live triggers made through it "
                f"(its max_live {max_live}); delete one, or make a token with a higher "
                "--max-live")
    return None


def _shown(seconds: float) -> str:
    """A duration as people read it: ``90s``, ``5m``, ``1h30m``, ``2d``."""
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:g}s" if whole != seconds else f"{whole}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, whole = divmod(whole, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
