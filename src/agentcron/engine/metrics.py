"""Prometheus metrics a node counts as it works (fires, lag, finished runs, recoveries,
missed fires, tokens and cost). One ``EngineMetrics`` per node, on its own
``CollectorRegistry`` (never the global one), fed by the engine's existing hooks; the API
adds gauges read from the database at scrape time to the same registry (``api.metrics``).

Counters count what this node did; sum them over nodes in Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from agentcron.models import Outcome, RunStatus
from agentcron.store import FireResult, SweepResult
from agentcron.store.budgets import budget_event_counts

LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)


class BudgetEvents(Collector):
    """What budgets did in this process: the store counts them inside its claiming
    transactions (``store.budgets``), whichever of the node's threads ran them."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        counts = budget_event_counts()
        yield CounterMetricFamily(
            "agentcron_budget_runs_skipped", "Queued runs skipped because their agent was "
            "over budget.", value=counts["runs_skipped"])
        yield CounterMetricFamily(
            "agentcron_budget_pauses", "Times an agent's triggers were paused for its budget "
            "(on_budget = pause).", value=counts["pauses"])


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        r.register(BudgetEvents())
        self.fires = Counter(
            "agentcron_fires", "Runs queued, by trigger kind (cron, interval, once, webhook; "
            "manual for fire-now).", ["kind"], registry=r)
        self.fire_lag = Histogram(
            "agentcron_fire_lag_seconds", "Scheduled time to the moment its run was queued.",
            buckets=LAG_BUCKETS, registry=r)
        self.skipped = Counter(
            "agentcron_fires_skipped", "Fires recorded as skipped by the overlap policy.",
            registry=r)
        self.held_back = Counter(
            "agentcron_fires_held_back", "Due fires this node left due because every slot "
            "was busy (at capacity): another node, or this one once a slot frees, fires them.",
            registry=r)
        self.missed = Counter(
            "agentcron_missed_fires", "Scheduled times not run: older than the catch-up "
            "window.", registry=r)
        self.finished = Counter(
            "agentcron_runs_finished", "Attempts this node finished, by outcome (succeeded, "
            "failed, retrying, cancelled).", ["status"], registry=r)
        self.recovered = Counter(
            "agentcron_lost_runs_recovered", "Runs of dead nodes recovered by this node's "
            "sweeper, by outcome (retried, failed).", ["outcome"], registry=r)
        self.timed_out = Counter(
            "agentcron_runs_timed_out", "Runs cancelled by the sweeper past their deadline.",
            registry=r)
        self.tokens = Counter(
            "agentcron_tokens", "LLM tokens agents reported, by agent and direction.",
            ["agent", "direction"], registry=r)
        self.cost = Counter(
            "agentcron_cost_usd", "Cost agents reported, in US dollars, by agent.", ["agent"],
            registry=r)
        self.quarantined = Counter(
            "agentcron_triggers_quarantined", "Triggers this node marked broken because "
            "their schedule could not be computed or their row read.", registry=r)
        self.loop_crashes = Counter(
            "agentcron_loop_crashes", "Crashes of this node's loops (an exception that was "
            "not a store outage), by loop; each crashed loop is restarted after a back-off.",
            ["loop"], registry=r)
        self.fenced = Gauge(
            "agentcron_node_fenced", "1 while this node is fenced: no heartbeat succeeded "
            "for nearly its zombie timeout, so it stopped its runs and does not claim or "
            "fire until one does; else 0.", registry=r)
        self.runs_given_up = Counter(
            "agentcron_runs_given_up", "Attempts this node cancelled because it was fenced "
            "(cut off from the database for nearly their zombie timeout).", registry=r)

    # -- hooks the node calls -------------------------------------------------------------

    def on_fired(self, result: FireResult) -> None:
        by_kind = getattr(result, "queued_by_kind", None) or {}
        for kind, count in by_kind.items():
            self.fires.labels(kind=kind).inc(count)
        unlabelled = result.queued - sum(by_kind.values())
        if unlabelled > 0:
            self.fires.labels(kind="scheduled").inc(unlabelled)
        for lag in result.fire_lags:
            self.fire_lag.observe(max(0.0, lag))
        if result.skipped:
            self.skipped.inc(result.skipped)
        if result.held_back:
            self.held_back.inc(result.held_back)
        if result.broken:
            self.quarantined.inc(len(result.broken))
        missed = sum(m.count for m in result.missed)
        if missed:
            self.missed.inc(missed)

    def on_swept(self, result: SweepResult) -> None:
        if result.retried:
            self.recovered.labels(outcome="retried").inc(len(result.retried))
        if result.failed:
            self.recovered.labels(outcome="failed").inc(len(result.failed))
        if result.timed_out:
            self.timed_out.inc(len(result.timed_out))

    def on_written(self, finished: Iterable[tuple[str | None, Outcome]]) -> None:
        """Outcomes this node wrote, each with its agent's name (None if unknown)."""
        by_status: dict[str, int] = {}  # one labelled increment per status, not per run
        for agent, outcome in finished:
            status = outcome.status.value
            if outcome.status is RunStatus.FAILED and outcome.retry_delay_s is not None:
                status = "retrying"
            by_status[status] = by_status.get(status, 0) + 1
            if agent is None:
                continue
            usage = outcome.usage
            if usage.input_tokens:
                self.tokens.labels(agent=agent, direction="input").inc(usage.input_tokens)
            if usage.output_tokens:
                self.tokens.labels(agent=agent, direction="output").inc(usage.output_tokens)
            if usage.cost_usd:
                self.cost.labels(agent=agent).inc(usage.cost_usd)
        for status, count in by_status.items():
            self.finished.labels(status=status).inc(count)

    # -- fires that do not go through the ticker -------------------------------------------

    def fired(self, kind: str) -> None:
        self.fires.labels(kind=kind).inc()


WAKEUP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class WorkerMetrics:
    """What this process's API did for remote workers (the lost workers are a gauge read
    from the database at scrape time, ``api.metrics``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.claims = Counter(
            "agentcron_worker_claims", "Worker claims answered, by result (runs: at least one "
            "run handed out; empty: none within the wait).", ["result"], registry=registry)
        self.claimed = Counter(
            "agentcron_worker_runs_claimed", "Runs handed out to workers.", registry=registry)
        self.wakeup = Histogram(
            "agentcron_worker_claim_wakeup_seconds", "From the signal that a run may be ready "
            "to a waiting claim answering with it.", buckets=WAKEUP_BUCKETS,
            registry=registry)
