"""The engine's metrics: what the node's hooks feed into its own registry."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import generate_latest

from agentcron.engine.metrics import EngineMetrics
from agentcron.models import Outcome, RunStatus, Usage
from agentcron.store import Store, SweepResult
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger


def value(metrics: EngineMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if found is None else found


def test_fires_are_counted_by_trigger_kind_with_their_lag(store: Store) -> None:
    add_agent(store, "a", T0)
    add_trigger(store, T0, every="10s")
    add_trigger(store, T0, cron="* * * * *")
    metrics = EngineMetrics()
    metrics.on_fired(store.fire_due(T0 + timedelta(minutes=1, seconds=1)))
    assert value(metrics, "agentcron_fires_total", kind="interval") == 1
    assert value(metrics, "agentcron_fires_total", kind="cron") == 1
    assert value(metrics, "agentcron_fire_lag_seconds_count") == 2
    assert value(metrics, "agentcron_fire_lag_seconds_sum") >= 1.0


def test_outcomes_sweeps_and_manual_fires() -> None:
    metrics = EngineMetrics()
    metrics.on_written([
        ("writer", Outcome("r1", 1, RunStatus.SUCCEEDED,
                           usage=Usage(input_tokens=100, output_tokens=7, cost_usd=0.25))),
        ("writer", Outcome("r2", 1, RunStatus.FAILED, retry_delay_s=2.0)),
        (None, Outcome("r3", 1, RunStatus.CANCELLED)),
    ])
    metrics.on_swept(SweepResult(retried=["a", "b"], failed=["c"], timed_out=["d"]))
    metrics.fired("webhook")
    assert value(metrics, "agentcron_runs_finished_total", status="succeeded") == 1
    assert value(metrics, "agentcron_runs_finished_total", status="retrying") == 1
    assert value(metrics, "agentcron_runs_finished_total", status="cancelled") == 1
    assert value(metrics, "agentcron_tokens_total", agent="writer", direction="input") == 100
    assert value(metrics, "agentcron_tokens_total", agent="writer", direction="output") == 7
    assert value(metrics, "agentcron_cost_usd_total", agent="writer") == 0.25
    assert value(metrics, "agentcron_lost_runs_recovered_total", outcome="retried") == 2
    assert value(metrics, "agentcron_lost_runs_recovered_total", outcome="failed") == 1
    assert value(metrics, "agentcron_runs_timed_out_total") == 1
    assert value(metrics, "agentcron_fires_total", kind="webhook") == 1


def test_each_node_has_its_own_registry() -> None:
    one, two = EngineMetrics(), EngineMetrics()
    one.fired("manual")
    assert value(two, "agentcron_fires_total", kind="manual") == 0
    assert b"agentcron_fires_total" in generate_latest(one.registry)


def test_budget_skips_and_pauses_are_exported(store: Store) -> None:
    """The store counts budget events where it enforces budgets; /metrics shows them."""
    from tests.support.budgets import agent_with_budget, queue

    metrics = EngineMetrics()
    before = value(metrics, "agentcron_budget_runs_skipped_total")
    agent_with_budget(store, "a", {"tokens_per_day": 10}, now=T0,
                      history=[(T0, Usage(60, 40))])
    queue(store, "a", 2, T0 + timedelta(hours=1))
    store.claim_runs("n1", 10, T0 + timedelta(hours=1))
    assert value(metrics, "agentcron_budget_runs_skipped_total") == before + 2
    assert b"agentcron_budget_pauses_total" in generate_latest(metrics.registry)
