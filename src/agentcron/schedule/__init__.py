"""Pure schedule maths: parse and validate trigger specs, next fire times, DST, catch-up
and jitter.

No I/O and no clock reads: every function takes the instant it reasons about (``now``,
``after``) as an argument. Every datetime in and out is timezone-aware UTC.
"""

from agentcron.schedule.base import NeverSchedule, Schedule
from agentcron.schedule.bounded import Bounded
from agentcron.schedule.catchup import COUNT_CAP, FirePlan, plan_fires
from agentcron.schedule.cron import CronSchedule
from agentcron.schedule.durations import format_duration, parse_duration
from agentcron.schedule.interval import IntervalSchedule
from agentcron.schedule.jitter import jitter_offset
from agentcron.schedule.once import OnceSchedule
from agentcron.schedule.spec import (
    ScheduleSpec,
    build_schedule,
    parse_at,
    parse_payload,
    validate_schedule,
)
from agentcron.schedule.zones import ensure_utc, get_zone

__all__ = [
    "COUNT_CAP",
    "Bounded",
    "CronSchedule",
    "FirePlan",
    "IntervalSchedule",
    "NeverSchedule",
    "OnceSchedule",
    "Schedule",
    "ScheduleSpec",
    "build_schedule",
    "ensure_utc",
    "format_duration",
    "get_zone",
    "jitter_offset",
    "parse_at",
    "parse_duration",
    "parse_payload",
    "plan_fires",
    "validate_schedule",
]
