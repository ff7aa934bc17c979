"""Budgets enforced when runs are claimed, on both backends: what counts (rolling day,
calendar month in a zone, tokens and cost), what happens over budget (skip, pause), that a
running run is never cut off, and that near the limit runs wait for those in flight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentcron.models import Outcome, RunStatus, Usage
from agentcron.services import Services, TriggerInput
from agentcron.services.spending import Spending
from agentcron.store import Store
from agentcron.store.budgets import budget_event_counts
from tests.conftest import T0
from tests.support.budgets import agent_with_budget, queue, runs_of_agent, spend, statuses

NOW = T0 + timedelta(hours=1)


def test_runs_start_while_under_the_limit(store: Store) -> None:
    agent_with_budget(store, "a", {"tokens_per_day": 1000}, now=T0,
                      history=[(T0, Usage(60, 40))])
    ids = queue(store, "a", 2, NOW)
    assert {r.run_id for r in store.claim_runs("n1", 10, NOW)} == set(ids)


def test_a_run_that_would_start_over_budget_is_skipped_with_the_reason(store: Store) -> None:
    agent_with_budget(store, "a", {"tokens_per_day": 1000}, now=T0,
                      history=[(T0, Usage(700, 300))])
    ids = queue(store, "a", 3, NOW)
    assert store.claim_runs("n1", 10, NOW) == []
    assert statuses(store, ids) == [RunStatus.SKIPPED] * 3
    reason = store.get_run(ids[0]).reason or ""
    assert reason.startswith("budget_exceeded: ")
    assert "1,000 used of 1,000 tokens per day" in reason
    assert store.get_run(ids[0]).finished_at == NOW


def test_other_agents_are_not_held_back(store: Store) -> None:
    agent_with_budget(store, "spent", {"tokens_per_day": 10}, now=T0,
                      history=[(T0, Usage(10, 0))])
    agent_with_budget(store, "free", None, now=T0)
    spent, free = queue(store, "spent", 1, NOW), queue(store, "free", 1, NOW)
    assert [r.run_id for r in store.claim_runs("n1", 10, NOW)] == free
    assert statuses(store, spent) == [RunStatus.SKIPPED]


def test_the_rolling_day_forgets_runs_older_than_24_hours(store: Store) -> None:
    agent_with_budget(store, "a", {"tokens_per_day": 1000}, now=T0,
                      history=[(T0, Usage(1000, 0))])
    almost = T0 + timedelta(hours=23, minutes=59)
    early = queue(store, "a", 1, almost)
    store.claim_runs("n1", 10, almost)
    assert statuses(store, early) == [RunStatus.SKIPPED]
    later = T0 + timedelta(hours=24, seconds=1)
    fresh = queue(store, "a", 1, later)
    assert [r.run_id for r in store.claim_runs("n1", 10, later)] == fresh


def test_the_calendar_month_is_taken_in_the_budgets_zone(store: Store) -> None:
    # 23:30 UTC on 31 January is already 1 February in Berlin.
    spent_at = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    feb = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)  # more than a day later
    for name, zone in (("berlin", "Europe/Berlin"), ("utc", "UTC")):
        agent_with_budget(store, name, {"tokens_per_month": 500, "tz": zone}, now=T0,
                          history=[(spent_at, Usage(500, 0))])
    berlin, utc = queue(store, "berlin", 1, feb), queue(store, "utc", 1, feb)
    assert [r.run_id for r in store.claim_runs("n1", 10, feb)] == utc
    assert statuses(store, berlin) == [RunStatus.SKIPPED]
    assert "tokens per month (Europe/Berlin)" in (store.get_run(berlin[0]).reason or "")


def test_cost_limits_use_the_price_table_and_unknown_costs_count_zero(store: Store) -> None:
    Spending(store).set_price("m-priced", 1.0, 3.0, now=T0)  # $1 / $3 per million
    agent_with_budget(store, "a", {"usd_per_day": 2.0}, now=T0, history=[
        (T0, Usage(1_000_000, 0, model="m-priced")),       # $1.00 from the table
        (T0, Usage(9_000_000, 0, model="m-unpriced")),     # no price: cost unknown, 0
    ])
    assert store.claim_runs("n1", 10, NOW) == []  # nothing queued: still under $2
    ids = queue(store, "a", 1, NOW)
    [run] = store.claim_runs("n1", 10, NOW)
    store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED,
                                usage=Usage(0, 400_000, model="m-priced"))], NOW)  # $1.20
    assert store.get_run(ids[0]).cost_usd == 1.2
    blocked = queue(store, "a", 1, NOW)
    store.claim_runs("n1", 10, NOW)
    assert statuses(store, blocked) == [RunStatus.SKIPPED]
    assert "$2.2000 used of $2.0000 USD per day" in (store.get_run(blocked[0]).reason or "")


def test_a_reported_cost_counts_as_reported(store: Store) -> None:
    agent_with_budget(store, "a", {"usd_per_month": 5}, now=T0,
                      history=[(T0, Usage(10, 10, cost_usd=5.0, model="whatever"))])
    ids = queue(store, "a", 1, NOW)
    assert store.claim_runs("n1", 10, NOW) == []
    assert statuses(store, ids) == [RunStatus.SKIPPED]


def test_a_running_run_is_never_cut_off(store: Store) -> None:
    agent_with_budget(store, "a", {"tokens_per_day": 100}, now=T0)
    first, second = queue(store, "a", 2, NOW)
    running = {r.run_id: r for r in store.claim_runs("n1", 10, NOW)}
    assert set(running) == {first, second}  # no usage recorded yet: both start
    r1 = running[first]
    store.finish("n1", [Outcome(first, r1.lease, RunStatus.SUCCEEDED, usage=Usage(500, 0))],
                 NOW)
    late = queue(store, "a", 1, NOW)
    assert store.claim_runs("n1", 10, NOW) == []
    assert statuses(store, [second, *late]) == [RunStatus.RUNNING, RunStatus.SKIPPED]
    r2 = running[second]
    result = store.finish("n1", [Outcome(second, r2.lease, RunStatus.SUCCEEDED,
                                         usage=Usage(500, 0))], NOW)
    assert result.applied == [second]
    assert store.get_run(second).status is RunStatus.SUCCEEDED


def test_near_the_limit_runs_wait_for_the_runs_in_flight(store: Store) -> None:
    # 400 used, the largest run 400: one more run fits (800), two would not (1,200).
    agent_with_budget(store, "a", {"tokens_per_day": 1000}, now=T0,
                      history=[(T0, Usage(400, 0))])
    ids = queue(store, "a", 4, NOW)
    [first] = store.claim_runs("n1", 10, NOW)
    assert store.claim_runs("n2", 10, NOW) == []  # 400 + 2 x 400 > 1000: wait
    assert statuses(store, ids).count(RunStatus.QUEUED) == 3  # waiting, not skipped
    store.finish("n1", [Outcome(first.run_id, first.lease, RunStatus.SUCCEEDED,
                                usage=Usage(100, 0))], NOW)
    [second] = store.claim_runs("n2", 10, NOW)  # 500 used: 500 + 400 fits
    store.finish("n2", [Outcome(second.run_id, second.lease, RunStatus.SUCCEEDED,
                                usage=Usage(500, 0))], NOW)
    assert store.claim_runs("n1", 10, NOW) == []  # 1,000 reached
    assert sorted(statuses(store, ids)) == sorted(
        [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.SKIPPED, RunStatus.SKIPPED])


def test_with_nothing_in_flight_one_run_starts_while_under_the_limit(store: Store) -> None:
    agent_with_budget(store, "a", {"tokens_per_day": 1000}, now=T0,
                      history=[(T0, Usage(900, 0))])  # the next run of 900 would overshoot
    queue(store, "a", 3, NOW)
    assert len(store.claim_runs("n1", 10, NOW)) == 1


def test_on_budget_pause_pauses_the_agents_triggers(store: Store) -> None:
    agent_with_budget(store, "a", {"tokens_per_day": 50}, on_budget="pause", now=T0,
                      history=[(T0, Usage(50, 0))])
    agent_with_budget(store, "b", None, now=T0)
    services = Services(store)
    mine = services.add_trigger(TriggerInput(agent="a", every="1m"), T0)
    other = services.add_trigger(TriggerInput(agent="b", every="1m"), T0)
    before = budget_event_counts()
    store.fire_due(NOW)
    assert store.claim_runs("n1", 10, NOW) != []  # b's run starts
    skipped = [r for r in runs_of_agent(store, "a") if r.status is RunStatus.SKIPPED]
    assert len(skipped) == 1 and "triggers are paused" in (skipped[0].reason or "")
    assert store.get_trigger(mine.id).paused and not store.get_trigger(other.id).paused
    assert (store.get_trigger(mine.id).paused_reason or "").startswith("budget: ")
    after = budget_event_counts()
    assert after["pauses"] == before["pauses"] + 1
    assert after["runs_skipped"] == before["runs_skipped"] + 1
    # Paused triggers fire no more; resuming is a person's decision.
    store.fire_due(NOW + timedelta(minutes=5))
    assert len(runs_of_agent(store, "a")) == 1 + 1  # the history run and the skipped one


def test_budget_statements_do_not_grow_with_the_number_of_runs(store: Store) -> None:
    agent_with_budget(store, "a", {"tokens_per_day": 10**9}, now=T0,
                      history=[(T0, Usage(1, 1))])
    queue(store, "a", 2, NOW)
    with store.count_statements() as few:
        store.claim_runs("n1", 2, NOW)
    for i in range(40):
        spend(store, "a", NOW + timedelta(seconds=i), Usage(3, 3))
    queue(store, "a", 5, NOW + timedelta(minutes=1))
    with store.count_statements() as many:
        store.claim_runs("n1", 5, NOW + timedelta(minutes=1))
    assert len(few) == len(many)


def test_fire_and_claim_respects_the_budget(store: Store) -> None:
    # The firing node claims what it fires in the same transaction: same locks, same rule.
    agent_with_budget(store, "near", {"tokens_per_day": 1000}, now=T0,
                      history=[(T0, Usage(600, 0))])  # room for one run of 600, not two
    agent_with_budget(store, "spent", {"tokens_per_day": 1000}, now=T0,
                      history=[(T0, Usage(1000, 0))])
    services = Services(store)
    for agent in ("near", "near", "near", "spent"):
        services.add_trigger(TriggerInput(agent=agent, every="1h", overlap="allow"), T0)
    fired = store.fire_due(T0 + timedelta(hours=1), claim_for=("n1", 10))
    assert [r.agent.name for r in fired.claimed] == ["near"]
    near = [r for r in runs_of_agent(store, "near") if r.trigger_id is not None]
    assert sorted(r.status.value for r in near) == ["queued", "queued", "running"]
    # The spent agent's fresh run was left queued, and the next claim skips it.
    assert store.claim_runs("n2", 10, T0 + timedelta(hours=1)) == []
    [spent] = [r for r in runs_of_agent(store, "spent") if r.trigger_id is not None]
    assert store.get_run(spent.id).status is RunStatus.SKIPPED
