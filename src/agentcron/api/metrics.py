"""``/metrics``: the node's counters (``agentcron.engine.metrics``) plus gauges read from the
database at scrape time, all on the app's own registry.

Gauges (each a bounded query, see ``store.stats``): runs queued, ready and running, runs
queued in the last 24 h by status, nodes alive and registered, remote workers by state
(lost: silent past their zombie timeout), and each rate-limit pool's window and limits.
"""

from __future__ import annotations

from collections.abc import Iterator

import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agentcron.services import Services
from agentcron.services.overview import gauges

log = structlog.get_logger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DatabaseGauges(Collector):
    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            read = gauges(self.services)
        except Exception as exc:  # a scrape during an outage reports what it can
            log.warning("metrics_database_unavailable", error=str(exc).splitlines()[0])
            up = GaugeMetricFamily("agentcron_database_up", "Whether the last scrape could "
                                   "read the database.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("agentcron_database_up", "Whether the last scrape could read "
                               "the database.")
        up.add_metric([], 1)
        yield up
        queue = GaugeMetricFamily("agentcron_queue_depth", "Queued runs; ready: due to start "
                                  "now.", labels=["state"])
        queue.add_metric(["queued"], read.queued)
        queue.add_metric(["ready"], read.ready)
        yield queue
        overdue = GaugeMetricFamily("agentcron_triggers_overdue", "Triggers due for over a "
                                    "second that no node has fired: nodes at capacity "
                                    "(counted up to 100,000).")
        overdue.add_metric([], read.behind.overdue)
        yield overdue
        behind = GaugeMetricFamily("agentcron_firing_behind_seconds", "How late the oldest "
                                   "overdue trigger is (0 when firing keeps up).")
        behind.add_metric([], read.behind.oldest_s or 0.0)
        yield behind
        running = GaugeMetricFamily("agentcron_runs_running", "Runs running on any node.")
        running.add_metric([], read.running)
        yield running
        runs = GaugeMetricFamily("agentcron_runs_last_24h", "Runs queued in the last 24 hours, "
                                 "by current status.", labels=["status"])
        for status, count in sorted(read.last_24h.items()):
            runs.add_metric([status], count)
        yield runs
        alive = GaugeMetricFamily("agentcron_nodes", "Registered nodes; alive: heartbeat "
                                  "within the zombie timeout.", labels=["state"])
        alive.add_metric(["alive"], sum(1 for _, ok in read.nodes if ok))
        alive.add_metric(["registered"], len(read.nodes))
        yield alive
        workers = GaugeMetricFamily("agentcron_workers", "Remote workers, by state (idle, "
                                    "active, draining, lost).", labels=["state"])
        for state, count in sorted(read.workers.items()):
            workers.add_metric([state], count)
        yield workers
        yield from _pool_gauges(self.services)


def _pool_gauges(services: Services) -> Iterator[GaugeMetricFamily]:
    """Per rate-limit pool: what its sliding minute holds and its limits (a limit the pool
    does not set is left out)."""
    pools = services.pools.all()
    used = GaugeMetricFamily("agentcron_pool_requests_in_window", "Runs started in the "
                             "pool's last minute.", labels=["pool"])
    tokens = GaugeMetricFamily("agentcron_pool_tokens_in_window", "Tokens of the pool's last "
                               "minute: reported, or reserved until a run reports.",
                               labels=["pool"])
    limits = GaugeMetricFamily("agentcron_pool_limit_per_minute", "A pool's limits per "
                               "minute.", labels=["pool", "kind"])
    for pool in pools:
        used.add_metric([pool.name], pool.requests)
        tokens.add_metric([pool.name], pool.tokens)
        if pool.requests_per_minute is not None:
            limits.add_metric([pool.name, "requests"], pool.requests_per_minute)
        if pool.tokens_per_minute is not None:
            limits.add_metric([pool.name, "tokens"], pool.tokens_per_minute)
    yield used
    yield tokens
    yield limits


def install_gauges(registry: CollectorRegistry, services: Services) -> None:
    registry.register(DatabaseGauges(services))


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
