"""Concurrency keys in the store, on both backends: a run's key is rendered once when it is
made (every way a run is made), a claim never lets a key past ``max_per_key`` (nor the
agent past ``max_concurrency``), even with several nodes released together, and keys are
taken in turn (round robin, weighted)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from agentcron.models import Outcome, RunStatus
from agentcron.services import Services
from agentcron.services.backfill import BackfillInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, race, runs_of

NOW = T0 + timedelta(seconds=1)


def _queue(store: Store, agent: str, key: str, n: int, start: datetime) -> list[str]:
    """``n`` manual runs for ``key``, queued one microsecond apart from ``start`` (oldest
    first), ready by ``NOW``."""
    return [store.fire_now(agent, {"tenant": key, "i": i}, start + timedelta(microseconds=i))
            for i in range(n)]


def _running_by_key(store: Store) -> Counter[str | None]:
    return Counter(r.concurrency_key for r in runs_of(store) if r.status is RunStatus.RUNNING)


def test_every_way_a_run_is_made_renders_its_key(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="org-{{ tenant }}", max_concurrency=10)
    timed = add_trigger(store, T0, every="1s", overlap="allow", payload={"tenant": "t1"})
    hook = add_trigger(store, T0, webhook=True, payload=None)
    store.fire_due(NOW)
    manual = store.fire_now("a", {"tenant": "t3"}, NOW)
    no_fit = store.fire_now("a", {"other": 1}, NOW)
    delivery = store.deliver_webhook(hook.id, "w1", {"tenant": "t2"}, NOW)
    hourly = add_trigger(store, T0, cron="0 * * * *", payload={"tenant": "t4"})
    Services(store).backfills.backfill(BackfillInput(
        hourly.id, "2026-01-05T08:00Z", "2026-01-05T10:00Z"), NOW, pause_s=0)
    keys = {r.id: r.concurrency_key for r in runs_of(store)}
    assert keys[manual] == "org-t3"
    assert keys[no_fit] == ""  # a payload that does not fit: the empty key, never an error
    assert keys[delivery.run_id] == "org-t2"
    fired = runs_of(store, timed.id)
    assert fired and {r.concurrency_key for r in fired} == {"org-t1"}
    backfilled = runs_of(store, hourly.id)
    assert len(backfilled) == 3 and {r.concurrency_key for r in backfilled} == {"org-t4"}


def test_fire_time_claim_leaves_keyed_runs_to_the_claim(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}", max_per_key=1,
              max_concurrency=10)
    for _ in range(3):
        add_trigger(store, T0, every="1s", overlap="allow", payload={"tenant": "x"})
    fired = store.fire_due(NOW, claim_for=("n1", 10))
    assert fired.claimed == []  # keyed runs queue; only claim_runs takes a key's turn
    assert len(store.claim_runs("n1", 10, NOW)) == 1
    assert _running_by_key(store) == {"x": 1}


def test_a_key_never_passes_max_per_key_and_frees_as_runs_finish(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}", max_per_key=2,
              max_concurrency=5)
    _queue(store, "a", "A", 10, T0)
    _queue(store, "a", "B", 1, T0 + timedelta(milliseconds=1))
    first = store.claim_runs("n1", 10, NOW)
    assert len(first) == 3
    assert _running_by_key(store) == {"A": 2, "B": 1}
    assert store.claim_runs("n1", 10, NOW) == []
    store.finish("n1", [Outcome(run_id=first[0].run_id, lease=first[0].lease,
                                status=RunStatus.SUCCEEDED)], NOW)
    assert len(store.claim_runs("n1", 10, NOW)) == 1
    assert _running_by_key(store)["A"] == 2


def test_the_agents_limit_still_holds_across_keys(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}", max_per_key=3,
              max_concurrency=4)
    for key in "ABCDE":
        _queue(store, "a", key, 3, T0)
    assert len(store.claim_runs("n1", 100, NOW)) == 4
    assert store.claim_runs("n1", 100, NOW) == []


def test_a_small_tenant_starts_within_the_first_rounds(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}", max_per_key=100,
              max_concurrency=100)
    _queue(store, "a", "A", 500, T0)
    small = set(_queue(store, "a", "B", 5, T0 + timedelta(minutes=1)))
    started: list[str] = []
    for _ in range(5):  # claims of two slots at a time, oldest first would take only A
        started += [r.run_id for r in store.claim_runs("n1", 2, NOW + timedelta(minutes=1))]
    assert small <= set(started)
    assert len(started) == 10


def test_weights_give_a_key_more_turns_per_round(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}", max_per_key=100,
              max_concurrency=100, key_weights={"gold": 3})
    _queue(store, "a", "gold", 50, T0 + timedelta(seconds=0))
    _queue(store, "a", "free", 50, T0 - timedelta(seconds=1))
    claimed = store.claim_runs("n1", 8, NOW)
    by_key = Counter(r.payload["tenant"] for r in claimed)
    assert by_key == {"gold": 6, "free": 2}  # rounds of free 1, gold 3


def test_plain_and_keyed_agents_share_a_claim(store: Store) -> None:
    add_agent(store, "plain", now=T0, max_concurrency=10)
    add_agent(store, "keyed", now=T0, concurrency_key="{{ tenant }}", max_per_key=1,
              max_concurrency=10)
    for _ in range(3):
        store.fire_now("plain", None, T0)
    _queue(store, "keyed", "A", 3, T0)
    _queue(store, "keyed", "B", 3, T0)
    claimed = store.claim_runs("n1", 10, NOW)
    assert Counter(r.agent.name for r in claimed) == {"plain": 3, "keyed": 2}


def test_giving_an_agent_a_key_keys_its_queued_runs(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=10)
    _queue(store, "a", "A", 3, T0)
    assert {r.concurrency_key for r in runs_of(store)} == {None}
    add_agent(store, now=T0, max_concurrency=10, concurrency_key="{{ tenant }}")
    assert {r.concurrency_key for r in runs_of(store)} == {"A"}
    assert len(store.claim_runs("n1", 10, NOW)) == 1  # max_per_key defaults to 1
    add_agent(store, now=T0, max_concurrency=10)  # the key removed: plain again
    assert len(store.claim_runs("n1", 10, NOW)) == 2


def test_a_retry_of_a_succeeded_run_keeps_its_key(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}")
    [run_id] = _queue(store, "a", "A", 1, T0)
    [claimed] = store.claim_runs("n1", 1, NOW)
    store.finish("n1", [Outcome(run_id=run_id, lease=claimed.lease,
                                status=RunStatus.SUCCEEDED)], NOW)
    again = store.retry_run(run_id, NOW)
    assert store.get_run(again).concurrency_key == "A"


def test_nodes_released_together_never_exceed_a_key_or_the_agent(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}", max_per_key=2,
              max_concurrency=7)
    for key in "ABCDEF":
        _queue(store, "a", key, 8, T0)
    peers = [Store(store.url) for _ in range(4)]
    peak: Counter[str | None] = Counter()
    total = 0
    try:
        for round_ in range(10):
            claims: list[Any] = race(peers, lambda s, i: s.claim_runs(f"n{i}", 3, NOW))
            running = _running_by_key(store)
            assert max(running.values()) <= 2, running
            assert sum(running.values()) <= 7, running
            peak |= running
            total += sum(len(c) for c in claims)
            # finish a few so the next round claims into freed places under contention
            done = [r for c in claims for r in c][: 2 + round_ % 2]
            for i, c in enumerate(claims):
                mine = [r for r in c if r in done]
                if mine:
                    store.finish(f"n{i}", [Outcome(run_id=r.run_id, lease=r.lease,
                                                   status=RunStatus.SUCCEEDED) for r in mine],
                                 NOW)
    finally:
        for p in peers:
            p.close()
    assert total > 7  # places were freed and taken again
    assert max(peak.values()) == 2  # the limit was reached, never passed


def test_busiest_keys_show_how_full_each_key_is(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}", max_per_key=2,
              max_concurrency=10)
    _queue(store, "a", "A", 5, T0)
    _queue(store, "a", "B", 5, T0 + timedelta(milliseconds=1))
    _queue(store, "a", "C", 1, T0 + timedelta(milliseconds=2))
    store.claim_runs("n1", 10, NOW)
    assert store.busiest_keys("a") == [("A", 2), ("B", 2), ("C", 1)]
    assert store.busiest_keys("a", limit=1) == [("A", 2)]


def test_a_keyed_claim_takes_as_many_statements_whatever_the_backlog(store: Store) -> None:
    add_agent(store, now=T0, concurrency_key="{{ tenant }}", max_per_key=2,
              max_concurrency=100)
    add_agent(store, "plain", now=T0, max_concurrency=100)
    _queue(store, "a", "A", 3, T0)
    _queue(store, "a", "B", 3, T0)
    store.fire_now("plain", None, T0)
    with store.count_statements() as few:
        assert len(store.claim_runs("n1", 10, NOW)) == 5
    _queue(store, "a", "A", 300, T0 + timedelta(seconds=0.5))
    _queue(store, "a", "B", 300, T0 + timedelta(seconds=0.5))
    store.fire_now("plain", None, T0)
    for run in runs_of(store):
        if run.status is RunStatus.RUNNING:
            store.finish(run.node_id or "n1", [Outcome(run_id=run.id, lease=run.lease,
                                                       status=RunStatus.SUCCEEDED)], NOW)
    with store.count_statements() as many:
        assert len(store.claim_runs("n1", 10, NOW)) == 5
    assert len(many) == len(few)
