"""An agent's scheduling policy as users state it (``[agents.NAME.scheduling]``, the API's
``scheduling`` object, CLI flags), validated into ``models.SchedulingPolicy``. What the
policy means is ``rules/scheduling.py``; the store enforces it (``store/guardrails.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentcron.errors import ValidationError
from agentcron.models import SchedulingPolicy
from agentcron.schedule.durations import parse_duration

POLICY_KEYS = ("may_schedule", "min_interval", "max_live", "expires_after",
               "require_approval")
MAX_LIVE_CAP = 100_000


def parse_policy(raw: Mapping[str, Any] | None) -> SchedulingPolicy:
    """A ``SchedulingPolicy`` from user input (the agents file's
    ``[agents.NAME.scheduling]``, the API's ``scheduling`` object, CLI flags): durations
    as typed (``"1m"``) or seconds. ``ValidationError`` naming ``scheduling.<field>``."""
    raw = dict(raw or {})
    for key in raw:
        if key not in POLICY_KEYS:
            raise ValidationError(f"scheduling.{key}", "unknown scheduling setting",
                                  "valid: " + ", ".join(POLICY_KEYS))
    default = SchedulingPolicy()
    may = raw.get("may_schedule")
    if may is not None:
        if isinstance(may, str) or not isinstance(may, list | tuple) or not all(
                isinstance(a, str) and a for a in may):
            raise ValidationError("scheduling.may_schedule", f"invalid {may!r}",
                                  'a list of agent names, e.g. ["watcher", "notify"]')
        may = tuple(dict.fromkeys(may))
    max_live = raw.get("max_live", default.max_live)
    if (isinstance(max_live, bool) or not isinstance(max_live, int)
            or not 0 <= max_live <= MAX_LIVE_CAP):
        raise ValidationError("scheduling.max_live", f"invalid {max_live!r}",
                              f"a whole number from 0 to {MAX_LIVE_CAP}")
    approval = raw.get("require_approval", default.require_approval)
    if not isinstance(approval, bool):
        raise ValidationError("scheduling.require_approval", f"{approval!r} is not true or "
                              "false", "give true or false")
    return SchedulingPolicy(
        may_schedule=may,
        min_interval_s=_duration(raw, "min_interval", default.min_interval_s),
        max_live=max_live,
        expires_after_s=_duration(raw, "expires_after", default.expires_after_s),
        require_approval=approval,
    )


def _duration(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key)
    if value is None:
        return default
    return parse_duration(value, f"scheduling.{key}", allow_zero=key == "min_interval")


