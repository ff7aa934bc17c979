"""The numbers an operator looks at first: nodes alive, what is queued and running, the
last 24 hours of runs by status (hour by hour), fire lag, and tokens and cost per agent per
day. Shared by ``GET /api/v1/stats`` and the dashboard; every read is bounded (see
``agentcron.store.stats``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agentcron.models import Node, RunStatus
from agentcron.services import Services
from agentcron.services.validate import check_int_between
from agentcron.services.workers import WorkerState, worker_state
from agentcron.store.stats import ActiveCounts, AgentDayUsage

HOURS = 24
LAG_SAMPLE = 500
MAX_USAGE_DAYS = 90


@dataclass(frozen=True)
class LagStats:
    """Seconds, over the newest ``samples`` trigger runs; None when there are none."""

    samples: int
    p50: float | None
    p95: float | None
    max: float | None


@dataclass(frozen=True)
class HourBucket:
    start: datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class Overview:
    now: datetime
    nodes_alive: int
    nodes_total: int
    queued: int
    ready: int
    running: int
    last_24h: dict[str, int]
    hours: list[HourBucket] = field(default_factory=list)
    fire_lag: LagStats = LagStats(0, None, None, None)
    start_lag: LagStats = LagStats(0, None, None, None)
    behind: Behind = field(default_factory=lambda: Behind(0, None))


@dataclass(frozen=True)
class Behind:
    """Whether firing keeps up: triggers due for over a second that no node has fired
    (a node at capacity leaves them due rather than queue what it cannot start), and how
    late the oldest is. Zero and None when firing keeps up."""

    overdue: int
    oldest_s: float | None


def _behind(active: ActiveCounts, now: datetime) -> Behind:
    if not active.overdue or active.oldest_due_at is None:
        return Behind(0, None)
    return Behind(active.overdue, max(0.0, (now - active.oldest_due_at).total_seconds()))


def _lag(values: list[float]) -> LagStats:
    if not values:
        return LagStats(0, None, None, None)
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return LagStats(len(ordered), pick(0.5), pick(0.95), ordered[-1])


def overview(services: Services, now: datetime | None = None) -> Overview:
    store = services.store
    now = services.now(now)
    nodes = services.nodes(now)
    first_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    buckets = {first_hour + timedelta(hours=i): dict.fromkeys(
        (s.value for s in RunStatus), 0) for i in range(HOURS)}
    totals = dict.fromkeys((s.value for s in RunStatus), 0)
    for hour, status, count in store.status_by_hour(first_hour, now + timedelta(seconds=1)):
        if hour in buckets and status in totals:
            buckets[hour][status] += count
            totals[status] += count
    active = store.active_counts(now)
    samples = store.lag_samples(LAG_SAMPLE)
    fire = [max(0.0, (s.queued_at - s.scheduled_for).total_seconds()) for s in samples]
    start = [max(0.0, (s.started_at - s.run_after).total_seconds())
             for s in samples if s.started_at is not None]
    return Overview(
        now=now, nodes_alive=sum(1 for _, alive in nodes if alive), nodes_total=len(nodes),
        queued=active.queued, ready=active.ready, running=active.running, last_24h=totals,
        hours=[HourBucket(start, counts) for start, counts in sorted(buckets.items())],
        fire_lag=_lag(fire), start_lag=_lag(start), behind=_behind(active, now),
    )


@dataclass(frozen=True)
class Gauges:
    """What ``/metrics`` reads from the database at scrape time (bounded queries)."""

    queued: int
    ready: int
    running: int
    nodes: list[tuple[Node, bool]]
    last_24h: dict[str, int]
    behind: Behind
    #: Remote workers by state (idle, active, draining, lost), every state present.
    workers: dict[str, int]


def gauges(services: Services) -> Gauges:
    """Queue depth, running runs, nodes (with whether each is alive) and the last 24 hours'
    runs by current status, at the database's clock."""
    store = services.store
    now = store.now()
    active = store.active_counts(now)
    last_24h: dict[str, int] = {}
    for _hour, status, count in store.status_by_hour(now - timedelta(hours=24), now):
        last_24h[status] = last_24h.get(status, 0) + count
    workers = {state.value: 0 for state in WorkerState}
    for worker in services.workers.list():
        workers[worker_state(worker, now).value] += 1
    return Gauges(queued=active.queued, ready=active.ready, running=active.running,
                  nodes=services.nodes(now), last_24h=last_24h, behind=_behind(active, now),
                  workers=workers)


def usage_by_day(services: Services, days: int = 7, now: datetime | None = None
                 ) -> list[AgentDayUsage]:
    """Runs, tokens and cost per agent per UTC day, for the last ``days`` days (today
    included)."""
    check_int_between(days, "days", 1, MAX_USAGE_DAYS)
    now = services.now(now)
    since = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    return services.store.usage_by_agent_day(since, now + timedelta(seconds=1))
