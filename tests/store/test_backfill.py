"""Backfill: runs for a trigger's past scheduled times, never a second run of a time that
has one (the unique key decides), held to the agent's budget and concurrency by the claim
path, refused whole when the range is too large or not in the past. Both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentcron.errors import ValidationError
from agentcron.models import RunStatus, Usage
from agentcron.services import Services
from agentcron.services.backfill import MAX_BACKFILL, BackfillInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.budgets import agent_with_budget
from tests.support.helpers import add_agent, add_trigger, runs_of

NOW = T0 + timedelta(days=1)


def _backfill(store: Store, trigger: str, start: str, end: str, mode: str = "all",
              progress: list[tuple[int, int]] | None = None) -> tuple[int, int, int]:
    result = Services(store).backfills.backfill(
        BackfillInput(trigger, start, end, mode), NOW, pause_s=0,
        progress=None if progress is None else lambda d, t: progress.append((d, t)))
    return result.times, result.queued, result.skipped


def test_backfill_never_duplicates_a_time_that_has_a_run(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, cron="0 * * * *", overlap="allow", payload={"k": 1},
                          catchup="1d", catchup_mode="all")
    store.fire_due(T0 + timedelta(hours=3))  # the ticker ran 13:00, 14:00 and 15:00
    fired = {r.scheduled_for for r in runs_of(store, trigger.id)}
    assert len(fired) == 3
    progress: list[tuple[int, int]] = []
    # 10:00 .. 20:00 on the hour: 11 times, 3 of which have their run.
    assert _backfill(store, trigger.id, "2026-01-05T10:00Z", "2026-01-05T20:00Z",
                     progress=progress) == (11, 8, 3)
    assert progress[-1] == (11, 11)
    runs = runs_of(store, trigger.id)
    times = [r.scheduled_for for r in runs]
    assert len(times) == len(set(times)) == 11
    backfilled = [r for r in runs if r.scheduled_for not in fired]
    assert {r.reason for r in backfilled} == {"backfill"}
    assert {r.status for r in backfilled} == {RunStatus.QUEUED}
    assert all(r.payload == {"k": 1} for r in backfilled)
    # Again: nothing new.
    assert _backfill(store, trigger.id, "2026-01-05T10:00Z", "2026-01-05T20:00Z") == (
        11, 0, 11)
    assert len(runs_of(store, trigger.id)) == 11


def test_coalesce_queues_one_run_standing_for_every_time(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, cron="*/15 * * * *", name="q")
    assert _backfill(store, "q", "2026-01-05T13:00Z", "2026-01-05T13:59Z", "coalesce") == (
        4, 1, 0)
    [run] = runs_of(store, trigger.id)
    assert run.coalesced == 4 and run.scheduled_for == T0 + timedelta(hours=1, minutes=45)


def test_backfilled_runs_are_held_to_the_agents_budget(store: Store) -> None:
    agent_with_budget(store, "a", {"tokens_per_day": 100}, now=T0,
                      history=[(NOW - timedelta(hours=1), Usage(100, 0))])
    trigger = add_trigger(store, T0, every="1h")
    assert _backfill(store, trigger.id, "2026-01-05T13:00Z", "2026-01-05T17:00Z")[1] == 5
    assert store.claim_runs("n1", 100, NOW) == []  # over budget: none executes
    runs = runs_of(store, trigger.id)
    assert {r.status for r in runs} == {RunStatus.SKIPPED}
    assert all((r.reason or "").startswith("budget_exceeded") for r in runs)


def test_backfilled_runs_wait_for_the_agents_concurrency_limit(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=2)
    trigger = add_trigger(store, T0, every="1h")
    _backfill(store, trigger.id, "2026-01-05T13:00Z", "2026-01-05T17:00Z")
    assert len(store.claim_runs("n1", 100, NOW)) == 2
    assert store.claim_runs("n2", 100, NOW) == []


def test_a_range_over_the_cap_is_refused_before_anything_is_queued(store: Store) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1s")
    hours = MAX_BACKFILL // 3600 + 1
    with pytest.raises(ValidationError) as over:
        _backfill(store, trigger.id, "2026-01-05T12:00Z", f"2026-01-05T{12 + hours}:00Z")
    assert over.value.field == "to" and str(MAX_BACKFILL) in over.value.message
    assert runs_of(store, trigger.id) == []


@pytest.mark.parametrize(("start", "end", "mode", "field"), [
    ("2026-01-05T10:00Z", "2026-01-07T10:00Z", "all", "to"),  # the future
    ("2026-01-05T10:00Z", "2026-01-05T09:00Z", "all", "to"),  # backwards
    ("yesterday", "2026-01-05T09:00Z", "all", "from"),
    ("2026-01-05T10:00Z", "2026-01-05T11:00Z", "some", "mode"),
])
def test_bad_backfills_are_refused_naming_the_field(store: Store, start: str, end: str,
                                                    mode: str, field: str) -> None:
    add_agent(store, now=T0)
    trigger = add_trigger(store, T0, every="1h")
    with pytest.raises(ValidationError) as bad:
        _backfill(store, trigger.id, start, end, mode)
    assert bad.value.field == field
    assert runs_of(store, trigger.id) == []


def test_a_webhook_trigger_has_nothing_to_backfill(store: Store) -> None:
    add_agent(store, now=T0)
    hook = add_trigger(store, T0, webhook=True)
    with pytest.raises(ValidationError) as bad:
        _backfill(store, hook.id, "2026-01-05T10:00Z", "2026-01-05T11:00Z")
    assert bad.value.field == "trigger"
