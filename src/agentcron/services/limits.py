"""Deployment limits on what users may create, read from the environment when applied (so
every front door, the agents file and the Python API apply the same ones: they all go
through ``TriggerService``).

- ``AGENTCRON_MIN_INTERVAL`` (default ``1s``): the shortest gap allowed between two fires of
  one trigger (``--every``, and the fastest gap a ``--cron`` expression's fields allow).
- ``AGENTCRON_MAX_TRIGGERS_PER_AGENT`` (default 1000): how many triggers one agent may have.

A bad value in the environment is a ``ValidationError`` naming the setting, raised when a
trigger is created or changed (never a traceback).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from itertools import pairwise

from agentcron.errors import ValidationError
from agentcron.schedule.cron import CronSchedule
from agentcron.schedule.durations import parse_duration

MIN_INTERVAL_ENV = "AGENTCRON_MIN_INTERVAL"
MAX_TRIGGERS_ENV = "AGENTCRON_MAX_TRIGGERS_PER_AGENT"
DEFAULT_MIN_INTERVAL_S = 1.0
DEFAULT_MAX_TRIGGERS_PER_AGENT = 1000


@dataclass(frozen=True)
class Limits:
    min_interval_s: float = DEFAULT_MIN_INTERVAL_S
    max_triggers_per_agent: int = DEFAULT_MAX_TRIGGERS_PER_AGENT

    @classmethod
    def from_env(cls) -> Limits:
        """The limits of this deployment (defaults for unset variables)."""
        interval = os.environ.get(MIN_INTERVAL_ENV, "").strip()
        count = os.environ.get(MAX_TRIGGERS_ENV, "").strip()
        min_interval_s = (parse_duration(interval, MIN_INTERVAL_ENV) if interval
                          else DEFAULT_MIN_INTERVAL_S)
        max_triggers = DEFAULT_MAX_TRIGGERS_PER_AGENT
        if count:
            try:
                max_triggers = int(count)
            except ValueError:
                max_triggers = 0
            if max_triggers < 1:
                raise ValidationError(MAX_TRIGGERS_ENV, f"{count!r} is not a positive count",
                                      f"set {MAX_TRIGGERS_ENV} to a whole number, e.g. 1000")
        return cls(min_interval_s, max_triggers)

    def check_every(self, every_s: float) -> None:
        if every_s < self.min_interval_s:
            raise ValidationError(
                "every", f"{every_s:g}s is more often than this deployment allows "
                f"({self.min_interval_s:g}s)",
                f"use a longer interval, or raise the floor with {MIN_INTERVAL_ENV}")

    def check_cron(self, cron: CronSchedule) -> None:
        """Refuse an expression whose fields allow two fires closer than the floor. Read from
        the parsed fields, never by expanding the schedule: the smallest gap of the finest
        field with more than one value (counting the wrap to the next minute/hour/day, so
        the bound is never larger than a real gap)."""
        gap = _smallest_gap(cron)
        if gap < self.min_interval_s:
            raise ValidationError(
                "cron", f"'{cron.expr}' can fire {gap:g}s apart, more often than this "
                f"deployment allows ({self.min_interval_s:g}s)",
                f"use a less frequent expression, or lower the floor with {MIN_INTERVAL_ENV}")

    def check_trigger_count(self, agent: str, existing: int) -> None:
        if existing >= self.max_triggers_per_agent:
            raise ValidationError(
                "agent", f"agent {agent!r} already has {existing} triggers, the most this "
                f"deployment allows ({self.max_triggers_per_agent})",
                f"delete unused triggers, or raise {MAX_TRIGGERS_ENV}")


    def check_trigger_total(self, agent: str, total: int, field: str = "agent") -> None:
        """Refuse a write (a batch, a sync) that would leave ``agent`` with ``total``
        triggers, more than this deployment allows."""
        if total > self.max_triggers_per_agent:
            raise ValidationError(
                field, f"agent {agent!r} would have {total} triggers, more than this "
                f"deployment allows ({self.max_triggers_per_agent})",
                f"declare fewer triggers for it, delete unused ones, or raise "
                f"{MAX_TRIGGERS_ENV}")


def _smallest_gap(cron: CronSchedule) -> float:
    fields = cron.template
    for values, unit, span in ((fields.seconds, 1, 60), (fields.minutes, 60, 60),
                               (fields.hours, 3600, 24)):
        ordered = sorted(values)
        if len(ordered) > 1:
            gaps = [b - a for a, b in pairwise(ordered)]
            gaps.append(span - ordered[-1] + ordered[0])
            return float(min(gaps) * unit)
    return 86400.0  # at most one time a day (a DST change aside)
