"""Cron schedules: cronsim does the parsing and the iteration, in the trigger's time zone.

DST follows cronsim (Debian cron semantics):

- five-field expressions whose minute and hour fields both start with something other than
  ``*`` ("fixed-time jobs") are iterated in wall-clock time: a time that falls in the
  spring-forward gap runs once, at the first minute after the gap; a time in the repeated
  fall-back hour runs once, at its first occurrence;
- every other expression (``*/30 * * * *``, ``0 * * * *``, ``0 */2 * * *`` and all
  six-field expressions) is iterated in real time: it fires on each real occurrence, so a
  repeated hour fires twice and a skipped hour not at all. These go through
  ``cron_realtime``, which feeds cronsim one constant-offset stretch at a time to avoid a
  cronsim bug at 30-minute DST shifts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo

from cronsim import CronSim, CronSimError

from agentcron.errors import ValidationError
from agentcron.schedule import cron_count
from agentcron.schedule.cron_fields import check_fields, normalize
from agentcron.schedule.cron_realtime import iter_real_time
from agentcron.schedule.zones import EPSILON, cron_zone, ensure_utc

# Any instant works to build the template cronsim object: it only parses.
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)


class CronSchedule:
    """Fire times of a 5-field (``m h dom mon dow``) or 6-field (seconds first) expression,
    evaluated in IANA zone ``timezone`` and reported in UTC.

    Construction validates (``ValidationError`` with field ``cron`` or ``tz``) and is cheap:
    no fire time is computed. Instances are immutable and safe to share between threads.
    """

    __slots__ = ("_cron", "_template", "_wall_clock", "_zone", "expr", "timezone")

    def __init__(self, expr: str, timezone: str = "UTC") -> None:
        self._zone: tzinfo = cron_zone(timezone)
        cron, six = normalize(expr)
        check_fields(six)
        try:
            template = CronSim(cron, _REFERENCE)
        except (CronSimError, ValueError) as exc:
            # check_fields mirrors every check cronsim makes, so this is a backstop.
            raise ValidationError("cron", f"'{expr}' is not valid: {exc}") from None
        self.expr = expr.strip()
        self.timezone = timezone
        self._cron = cron
        self._template = template
        # Ask cronsim itself whether it would treat this as a wall-clock (fixed-time) job.
        self._wall_clock = self._zone is not UTC and (
            CronSim(cron, _REFERENCE.astimezone(self._zone)).fixup_tz is not None
        )

    def __repr__(self) -> str:
        return f"CronSchedule({self.expr!r}, timezone={self.timezone!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return (self._cron, self.timezone) == (other._cron, other.timezone)

    def __hash__(self) -> int:
        return hash((self._cron, self.timezone))

    @property
    def zone(self) -> tzinfo:
        """The tzinfo the expression is evaluated in (``timezone.utc`` for UTC)."""
        return self._zone

    @property
    def template(self) -> CronSim:
        """The parsed cronsim object (its field sets); never iterate it, it is shared."""
        return self._template

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``, in UTC; None if there is none within
        cronsim's 50-year search horizon (or before ``datetime.max``)."""
        return next(self.iter_after(after), None)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``after``, ascending, in UTC, each exactly once."""
        after = ensure_utc(after, "after")
        try:
            if self._zone is UTC:
                fires: Iterator[datetime] = CronSim(self._cron, after)
            elif self._wall_clock:
                fires = CronSim(self._cron, after.astimezone(self._zone))
            else:
                fires = iter_real_time(self._cron, self._zone, after)
            for fire in fires:
                fire_utc = fire if self._zone is UTC else fire.astimezone(UTC)
                # cronsim starts from `after` truncated to the second, and its wall-clock
                # mode forgets which of two repeated fall-back hours `after` was in, so it
                # can hand back a time at or before `after`: skip those. The same check keeps
                # the output strictly increasing.
                if fire_utc > after:
                    after = fire_utc
                    yield fire_utc
        except OverflowError:
            return  # walked off the end of datetime: the schedule is exhausted

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        """Fire times t with ``start <= t < end``, at most ``cap``.

        Whole quiet days (no UTC offset change) are counted arithmetically from cronsim's
        parsed fields, so a week of a per-second expression costs microseconds; days with a
        DST transition are iterated with cronsim so its DST rules are honoured exactly.
        """
        start = ensure_utc(start, "start")
        end = ensure_utc(end, "end")
        if cap <= 0 or end <= start:
            return 0
        return cron_count.count(self, start, end, cap)

    def count_by_iteration(self, start: datetime, end: datetime, cap: int) -> int:
        """Like ``count_between`` but by walking every fire time (the reference for tests)."""
        count = 0
        if cap <= 0 or end <= start:
            return 0
        for fire in self.iter_after(start - EPSILON):
            if fire >= end or count >= cap:
                break
            count += 1
        return count

    def describe(self) -> str:
        """cronsim's explanation, e.g. ``At 09:00 on Monday``, plus the zone unless UTC."""
        text = self._template.explain()
        return text if self._zone is UTC else f"{text} ({self.timezone})"
