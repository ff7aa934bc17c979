"""Property tests: cron times always move forward, intervals never drift, catch-up plans
account for every due time exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agentcron.errors import ValidationError
from agentcron.models import CatchupMode
from agentcron.schedule.base import Schedule
from agentcron.schedule.catchup import plan_fires
from agentcron.schedule.cron import CronSchedule
from agentcron.schedule.interval import IntervalSchedule

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
EPS = timedelta(microseconds=1)
# max_examples comes from the active Hypothesis profile (100 by default).
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- a small grammar of valid cron fields ------------------------------------------------


@st.composite
def _item(draw: st.DrawFn, low: int, high: int) -> str:
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    step = draw(st.integers(1, max(1, high - low)))
    return str(draw(st.sampled_from([f"{a}", f"{a}-{b}", f"{a}-{b}/{step}", f"{a}/{step}"])))


@st.composite
def _field(draw: st.DrawFn, low: int, high: int, extra: tuple[str, ...] = ()) -> str:
    star = st.sampled_from(["*", f"*/{draw(st.integers(1, max(1, high - low)))}"])
    items = st.lists(_item(low, high), min_size=1, max_size=3).map(",".join)
    options: list[st.SearchStrategy[str]] = [star, items]
    if extra:
        options.append(st.sampled_from(extra))
    field: str = draw(st.one_of(*options))
    return field


@st.composite
def cron_exprs(draw: st.DrawFn) -> str:
    fields = [
        draw(_field(0, 59)),
        draw(_field(0, 23)),
        draw(_field(1, 31, ("L", "LW", "1,15", "*/100,1-7"))),
        draw(_field(1, 12, ("JAN-JUN", "*/3"))),
        draw(_field(0, 7, ("MON-FRI", "SAT,SUN", "5L", "1#2", "0#1"))),
    ]
    if draw(st.booleans()):
        fields.insert(0, draw(_field(0, 59)))
    return " ".join(fields)


def _transition_instants() -> list[datetime]:
    """Instants around the DST changes of the test zones, where bugs live."""
    return [
        datetime(2026, 3, 29, 1, tzinfo=UTC),
        datetime(2026, 10, 25, 1, tzinfo=UTC),
        datetime(2026, 3, 8, 7, tzinfo=UTC),
        datetime(2026, 11, 1, 6, tzinfo=UTC),
        datetime(2026, 4, 4, 15, tzinfo=UTC),
        datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
    ]


instants = st.one_of(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    st.builds(
        lambda base, delta: base + timedelta(microseconds=delta),
        st.sampled_from(_transition_instants()),
        st.integers(-(10**10), 10**10),  # within about three hours
    ),
)


def _cron(expr: str, zone: str) -> CronSchedule:
    try:
        return CronSchedule(expr, zone)
    except ValidationError:
        assume(False)  # e.g. "31 2": never fires, rightly rejected
        raise


# --- cron -------------------------------------------------------------------------------


@SETTINGS
@given(cron_exprs(), st.sampled_from(ZONES), instants)
def test_cron_next_is_after_and_iteration_strictly_increases(
    expr: str, zone: str, now: datetime
) -> None:
    schedule = _cron(expr, zone)
    previous = now
    for _ in range(50):
        fire = schedule.next_after(previous)
        if fire is None:
            break
        assert fire.tzinfo is UTC
        assert fire > previous
        assert fire.microsecond == 0
        previous = fire


@SETTINGS
@given(cron_exprs(), st.sampled_from(ZONES), instants, st.data())
def test_cron_next_after_and_counts_agree_with_iteration(
    expr: str, zone: str, now: datetime, data: st.DataObject
) -> None:
    schedule = _cron(expr, zone)
    walked: list[datetime] = []
    for fire in schedule.iter_after(now):
        walked.append(fire)
        if len(walked) == 40:
            break
    assume(len(walked) >= 2)
    assert walked == sorted(set(walked))
    # from any probe inside the walked range, next_after finds the next walked time
    span_us = (walked[-1] - walked[0]) // EPS
    probe = walked[0] + data.draw(st.integers(0, span_us - 1)) * EPS
    assert schedule.next_after(probe) == next(t for t in walked if t > probe)
    # counting matches the walk, with inclusive start and exclusive end
    i = data.draw(st.integers(0, len(walked) - 1))
    j = data.draw(st.integers(i, len(walked) - 1))
    assert schedule.count_between(walked[i], walked[j], 10**6) == j - i
    assert schedule.count_between(walked[i], walked[j] + EPS, 10**6) == j - i + 1
    assert schedule.count_between(walked[i] + EPS, walked[j], 10**6) == max(0, j - i - 1)
    assert schedule.count_between(now + EPS, walked[j] + EPS, 3) == min(3, j + 1)


# --- interval ---------------------------------------------------------------------------

anchors = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
periods_ms = st.one_of(st.integers(1, 10_000), st.integers(1, 10**9))


@SETTINGS
@given(anchors, periods_ms, st.integers(0, 10**9))
def test_interval_times_are_exactly_anchor_plus_k_every(
    anchor: datetime, every_ms: int, k: int
) -> None:
    schedule = IntervalSchedule(every_ms / 1000, anchor)
    try:
        exact = anchor + timedelta(milliseconds=every_ms * k)
        following = exact + timedelta(milliseconds=every_ms)
    except OverflowError:
        assume(False)
        raise
    assert schedule.fire_time(k) == exact
    assert schedule.next_after(exact - EPS) == exact
    assert schedule.next_after(exact) == following
    assert schedule.next_after(following - EPS) == following


@SETTINGS
@given(anchors, periods_ms, st.integers(-500, 500), st.integers(0, 500), st.data())
def test_interval_count_matches_enumeration(
    anchor: datetime, every_ms: int, first: int, span: int, data: st.DataObject
) -> None:
    every = timedelta(milliseconds=every_ms)
    jiggle = st.integers(-every_ms * 1000 + 1, every_ms * 1000 - 1).map(
        lambda us: timedelta(microseconds=us)
    )
    start = anchor + first * every + data.draw(jiggle)
    end = start + span * every + data.draw(jiggle)
    schedule = IntervalSchedule(every_ms / 1000, anchor)
    expected = sum(
        1 for k in range(max(0, first - 2), first + span + 3) if start <= anchor + k * every < end
    )
    assert schedule.count_between(start, end, 10**9) == expected


# --- catch-up ---------------------------------------------------------------------------


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    if draw(st.booleans()):
        return IntervalSchedule(draw(st.integers(1, 7_200_000)) / 1000, draw(anchors))
    return _cron(draw(cron_exprs()), draw(st.sampled_from(ZONES)))


@SETTINGS
@given(
    schedules(),
    instants,
    st.integers(0, 3 * 86_400_000_000),
    st.floats(0, 2 * 86_400),
    st.sampled_from(list(CatchupMode)),
    st.integers(1, 50),
)
def test_plan_accounts_for_every_due_time_once(
    schedule: Schedule,
    origin: datetime,
    late_us: int,
    window_s: float,
    mode: CatchupMode,
    max_runs: int,
) -> None:
    next_fire_at = schedule.next_after(origin)
    assume(next_fire_at is not None)
    assert next_fire_at is not None
    # Brute force: walk up to 1000 due times (and keep `now` within them).
    now = next_fire_at + timedelta(microseconds=late_us)
    due = [next_fire_at]
    while True:
        fire = schedule.next_after(due[-1])
        if fire is None or fire > now:
            break
        if len(due) == 1000:
            now = due[-1] + (now - due[-1]) % (fire - due[-1])  # stop short of `fire`
            break
        due.append(fire)
    window_start = now - timedelta(seconds=window_s)
    missed = [t for t in due if t < window_start]
    in_window = [t for t in due if t >= window_start]

    plan = plan_fires(schedule, next_fire_at, now, window_s, mode, max_runs)

    assert all(next_fire_at <= t <= now for t in plan.fire_times)
    assert plan.fire_times == sorted(set(plan.fire_times))
    assert set(plan.fire_times) <= set(in_window)
    assert plan.missed == len(missed)
    assert plan.first_missed == (missed[0] if missed else None)
    assert plan.last_missed == (missed[-1] if missed else None)
    if plan.next_fire_at is not None:
        assert plan.next_fire_at > max([*plan.fire_times, *missed], default=next_fire_at - EPS)
    if mode == CatchupMode.ALL:
        assert plan.fire_times == in_window[:max_runs]
        left = [t for t in due if plan.next_fire_at is not None and t >= plan.next_fire_at]
        assert len(plan.fire_times) + plan.missed + len(left) == len(due)
        if len(in_window) > max_runs:
            assert plan.next_fire_at == in_window[max_runs]
        else:
            assert plan.next_fire_at == schedule.next_after(now)
    else:
        assert plan.fire_times == in_window[-1:]
        assert plan.coalesced == len(in_window)
        assert plan.next_fire_at == schedule.next_after(now)


# --- odd zones, right at their transitions ------------------------------------------------

ODD_ZONES = [
    "Australia/Lord_Howe",  # 30-minute shifts
    "America/Santiago",  # midnight transitions
    "America/Havana",  # midnight transitions
    "Pacific/Apia",  # skipped a whole day in 2011
    "Antarctica/Troll",  # 2-hour shift
    "Africa/Casablanca",  # DST suspended for Ramadan
    "Europe/Dublin",  # negative DST
]


@lru_cache
def _transitions(zone: str) -> list[datetime]:
    """Offset changes of ``zone`` in 2009-2027, to the minute (scan daily, then bisect)."""
    tz = ZoneInfo(zone)
    out, day = [], datetime(2009, 1, 1, tzinfo=UTC)
    while day < datetime(2028, 1, 1, tzinfo=UTC):
        low, high = day, day + timedelta(days=1)
        if low.astimezone(tz).utcoffset() != high.astimezone(tz).utcoffset():
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) // 2
                same = middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset()
                low, high = (middle, high) if same else (low, middle)
            out.append(high)
        day += timedelta(days=1)
    return out


@st.composite
def _near_transition(draw: st.DrawFn) -> tuple[str, datetime]:
    zone = draw(st.sampled_from(ODD_ZONES))
    instant = draw(st.sampled_from(_transitions(zone)))
    return zone, instant + timedelta(
        microseconds=draw(st.integers(-(2 * 86400 * 10**6), 86400 * 10**6))
    )


@SETTINGS
@given(cron_exprs(), _near_transition(), st.integers(1, 3 * 86400))
def test_odd_zone_transitions_are_consistent(
    expr: str, zone_and_start: tuple[str, datetime], span_s: int
) -> None:
    zone, start = zone_and_start
    schedule = _cron(expr, zone)
    end = start + timedelta(seconds=span_s)
    walked = _walk(schedule, start, end, 3000)
    assume(len(walked) < 3000)
    assert schedule.count_between(start + EPS, end, 10**6) == len(walked)
    for earlier, later in zip([start, *walked], walked, strict=False):
        assert later > earlier
        assert schedule.next_after(earlier + (later - earlier) // 2) == later


def _walk(schedule: CronSchedule, start: datetime, end: datetime, limit: int) -> list[datetime]:
    out: list[datetime] = []
    for fire in schedule.iter_after(start):
        if fire >= end or len(out) == limit:
            break
        out.append(fire)
    return out
