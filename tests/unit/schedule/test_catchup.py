"""plan_fires: due, missed, coalesced and all-mode runs, and that gaps are never iterated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentcron.models import CatchupMode
from agentcron.schedule.base import NeverSchedule, Schedule
from agentcron.schedule.catchup import FirePlan, plan_fires
from agentcron.schedule.cron import CronSchedule
from agentcron.schedule.interval import IntervalSchedule
from agentcron.schedule.once import OnceSchedule

ALL, COALESCE = CatchupMode.ALL, CatchupMode.COALESCE
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(**kwargs: float) -> datetime:
    return T0 + timedelta(**kwargs)


class Counting:
    """Wraps a schedule and counts calls, to prove a plan does not walk the gap."""

    def __init__(self, inner: Schedule) -> None:
        self.inner = inner
        self.next_calls = 0

    def next_after(self, after: datetime) -> datetime | None:
        self.next_calls += 1
        return self.inner.next_after(after)

    def describe(self) -> str:
        return self.inner.describe()

    def count_between(self, start: datetime, end: datetime, cap: int) -> int:
        return self.inner.count_between(start, end, cap)


def test_nothing_due_keeps_next_fire_at() -> None:
    hourly = CronSchedule("0 * * * *")
    plan = plan_fires(hourly, at(hours=1), at(minutes=59), 3600, ALL)
    assert plan == FirePlan([], 0, 0, None, None, at(hours=1))


@pytest.mark.parametrize("mode", [ALL, COALESCE])
def test_exactly_due(mode: CatchupMode) -> None:
    hourly = CronSchedule("0 * * * *")
    plan = plan_fires(hourly, at(hours=1), at(hours=1), 3600, mode)
    assert plan == FirePlan([at(hours=1)], 1, 0, None, None, at(hours=2))


def test_all_runs_every_time_in_the_window_and_counts_the_rest() -> None:
    hourly = CronSchedule("0 * * * *")
    plan = plan_fires(hourly, at(hours=0), at(hours=10, minutes=30), 3 * 3600, ALL)
    # window starts 07:30 -> 08:00, 09:00, 10:00 run; 00:00 .. 07:00 missed
    assert plan.fire_times == [at(hours=8), at(hours=9), at(hours=10)]
    assert plan.coalesced == 1
    assert (plan.missed, plan.first_missed, plan.last_missed) == (8, at(hours=0), at(hours=7))
    assert plan.next_fire_at == at(hours=11)


def test_coalesce_runs_the_latest_once() -> None:
    hourly = CronSchedule("0 * * * *")
    plan = plan_fires(hourly, at(hours=0), at(hours=10, minutes=30), 3 * 3600, COALESCE)
    assert plan == FirePlan([at(hours=10)], 3, 8, at(hours=0), at(hours=7), at(hours=11))


def test_window_start_is_inclusive_and_window_zero_keeps_only_now() -> None:
    hourly = CronSchedule("0 * * * *")
    plan = plan_fires(hourly, at(hours=0), at(hours=10), 3600, ALL)
    assert plan.fire_times == [at(hours=9), at(hours=10)]
    assert plan.last_missed == at(hours=8)
    on_time = plan_fires(hourly, at(hours=0), at(hours=10), 0, ALL)
    assert (on_time.fire_times, on_time.missed) == ([at(hours=10)], 10)
    late = plan_fires(hourly, at(hours=0), at(hours=10, seconds=1), 0, ALL)
    assert (late.fire_times, late.missed, late.next_fire_at) == ([], 11, at(hours=11))
    assert late.coalesced == 0


def test_everything_missed() -> None:
    daily = CronSchedule("0 0 * * *")
    plan = plan_fires(daily, at(days=0), at(days=30, hours=12), 3600, COALESCE)
    assert plan == FirePlan([], 0, 31, at(days=0), at(days=30), at(days=31))


def test_every_second_down_for_a_week_plans_without_walking_the_gap() -> None:
    every_second = Counting(IntervalSchedule(1, T0))
    now = at(days=7)
    plan = plan_fires(every_second, T0, now, 60, COALESCE)
    assert plan.fire_times == [now]
    assert plan.coalesced == 61
    assert plan.missed == 7 * 86_400 - 60
    assert (plan.first_missed, plan.last_missed) == (T0, now - timedelta(seconds=61))
    assert plan.next_fire_at == now + timedelta(seconds=1)
    assert every_second.next_calls < 100


def test_cron_every_second_down_for_a_week_plans_without_walking_the_gap() -> None:
    every_second = Counting(CronSchedule("* * * * * *", "Europe/Berlin"))
    now = at(days=7, microseconds=500)
    plan = plan_fires(every_second, T0, now, 60, ALL)
    # the window starts at 7d - 60s + 500µs, so 7d - 60s itself is just outside it
    assert plan.fire_times[0] == at(days=7, seconds=-59)
    assert plan.fire_times[-1] == at(days=7)
    assert len(plan.fire_times) == 60
    assert plan.missed == 7 * 86_400 + 1 - 60
    assert plan.last_missed == at(days=7, seconds=-60)
    # 60 to enumerate the window, a few dozen for the gallop/bisection, none for the gap
    assert every_second.next_calls < 60 + 100


def test_missed_count_is_capped() -> None:
    plan = plan_fires(IntervalSchedule(0.001, T0), T0, at(days=365), 1, COALESCE)
    assert plan.missed == 1_000_000
    assert plan.last_missed == at(days=365, seconds=-1, milliseconds=-1)


def test_all_mode_cut_by_max_runs_continues_where_it_stopped() -> None:
    every_second = IntervalSchedule(1, T0)
    now = at(hours=1)
    first = plan_fires(every_second, T0, now, 7200, ALL, max_runs=1000)
    assert len(first.fire_times) == 1000
    assert first.next_fire_at == at(seconds=1000)  # due, not dropped
    assert first.next_fire_at is not None
    rest: list[datetime] = []
    plan = first
    while plan.next_fire_at is not None and plan.next_fire_at <= now:
        plan = plan_fires(every_second, plan.next_fire_at, now, 7200, ALL, max_runs=1000)
        rest += plan.fire_times
    everything = first.fire_times + rest
    assert everything == [at(seconds=s) for s in range(3601)]
    assert plan.next_fire_at == at(seconds=3601)


def test_next_fire_at_off_the_schedule_is_still_due() -> None:
    # e.g. the trigger was edited: the stored time no longer lies on the grid
    hourly = CronSchedule("0 * * * *")
    stored = at(minutes=17)
    plan = plan_fires(hourly, stored, at(hours=2, minutes=5), 7200, ALL)
    assert plan.fire_times == [stored, at(hours=1), at(hours=2)]
    missed = plan_fires(hourly, stored, at(hours=2, minutes=5), 600, ALL)
    assert (missed.missed, missed.first_missed, missed.last_missed) == (2, stored, at(hours=1))


def test_once_is_exhausted_after_it_runs_or_is_missed() -> None:
    when = at(hours=1)
    ran = plan_fires(OnceSchedule(when), when, at(hours=1, seconds=5), 60, ALL)
    assert ran == FirePlan([when], 1, 0, None, None, None)
    lost = plan_fires(OnceSchedule(when), when, at(hours=3), 60, COALESCE)
    assert lost == FirePlan([], 0, 1, when, when, None)


def test_webhook_due_by_hand_runs_once_then_nothing() -> None:
    plan = plan_fires(NeverSchedule(), T0, at(seconds=1), 60, ALL)
    assert plan == FirePlan([T0], 1, 0, None, None, None)


def test_dst_fall_back_catchup_counts_each_real_occurrence() -> None:
    half_hourly = CronSchedule("*/30 * * * *", "Europe/Berlin")
    start, now = datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 4, tzinfo=UTC)
    plan = plan_fires(half_hourly, start, now, 3600, ALL)
    assert plan.missed + len(plan.fire_times) == 13  # 6 UTC hours, both ends included
    assert plan.fire_times == [now - timedelta(hours=1), now - timedelta(minutes=30), now]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_runs": 0}, "max_runs must be >= 1"), ({"window_s": -1}, "window_s must be >= 0")],
)
def test_rejects_bad_arguments(kwargs: dict[str, float], message: str) -> None:
    args: dict[str, float] = {"window_s": 60, **kwargs}
    with pytest.raises(ValueError, match=message):
        plan_fires(IntervalSchedule(1, T0), T0, at(hours=1), mode=ALL, **args)  # type: ignore[arg-type]


def test_unlimited_window() -> None:
    plan = plan_fires(IntervalSchedule(3600, T0), T0, at(hours=5), float("inf"), COALESCE)
    assert plan == FirePlan([at(hours=5)], 6, 0, None, None, at(hours=6))
