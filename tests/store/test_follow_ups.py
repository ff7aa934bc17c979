"""Follow-ups: the triggers a run asks for, written by ``Store.finish`` in the outcome's own
fenced transaction, under the guardrails. Both backends; the race with separate engines."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agentcron.models import ClaimedRun, FollowUp, Outcome, RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, race

AT = T0 + timedelta(minutes=1)


def _claim(store: Store, count: int = 1, agent: str = "a") -> list[ClaimedRun]:
    """``count`` running runs of ``agent`` (its trigger fires every minute, allow-overlap,
    all missed times)."""
    add_trigger(store, T0 - timedelta(minutes=count), agent, every="1m", overlap="allow",
                catchup_mode="all", catchup="1h", name=f"origin-{agent}")
    store.fire_due(AT)
    claimed = store.claim_runs("n1", count, AT)
    assert len(claimed) == count
    return claimed


def _follow_up(store: Store, run_id: str, now: datetime = AT, **spec: Any) -> FollowUp:
    spec.setdefault("agent", "a")
    new = Services(store).triggers.build(TriggerInput(**spec), now, source="run",
                                         created_by=f"run:{run_id}")
    return FollowUp(row=new.row())


def _events(store: Store, run_id: str) -> list[tuple[str, str | None]]:
    _, events = Services(store).get_run(run_id)
    return [(e.kind, e.message) for e in events if e.kind.startswith("follow_up")]


def test_a_follow_up_is_created_once_with_its_provenance(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=5)
    [run] = _claim(store)
    outcome = Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED, output="ok",
                      follow_ups=(_follow_up(store, run.run_id, every="10m",
                                             name="next check"),))
    assert store.finish("n1", [outcome], AT).applied == [run.run_id]
    # The same outcome delivered again (a retried write) is fenced: nothing twice.
    assert store.finish("n1", [outcome], AT).fenced == [run.run_id]
    made = [t for t in store.list_triggers("a") if t.created_by.startswith("run:")]
    assert len(made) == 1
    [trigger] = made
    assert (trigger.created_by, trigger.source, trigger.name) == (
        f"run:{run.run_id}", "run", "next check")
    assert trigger.expires_at == AT + timedelta(days=30)
    assert _events(store, run.run_id) == [("follow_up", trigger.id)]
    # The chain leads back through the run to the trigger a person made.
    chain = Services(store).trigger_chain(trigger)
    assert [(link["created_by"], link["run_id"]) for link in chain] == [
        (f"run:{run.run_id}", run.run_id), ("cli", None)]
    assert chain[1]["trigger_id"] == run.trigger_id


def test_a_stale_attempt_schedules_nothing(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=5)
    [run] = _claim(store)
    stale = Outcome(run.run_id, run.lease + 1, RunStatus.SUCCEEDED,
                    follow_ups=(_follow_up(store, run.run_id, every="10m"),))
    assert store.finish("n1", [stale], AT).fenced == [run.run_id]
    other_node = Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED,
                         follow_ups=(_follow_up(store, run.run_id, every="10m"),))
    assert store.finish("n2", [other_node], AT).fenced == [run.run_id]
    assert [t.created_by for t in store.list_triggers("a")] == ["cli"]
    assert _events(store, run.run_id) == []


def test_a_retried_attempt_schedules_nothing_and_says_so(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=5)
    [run] = _claim(store)
    store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.FAILED, error="flaky",
                                retry_delay_s=1.0,
                                follow_ups=(_follow_up(store, run.run_id, every="10m"),))],
                 AT)
    assert [t.created_by for t in store.list_triggers("a")] == ["cli"]
    [(kind, reason)] = _events(store, run.run_id)
    assert kind == "follow_up_refused" and "retried" in str(reason)


def test_refusals_are_recorded_on_the_run(store: Store) -> None:
    """Quota, min_interval, may_schedule and a request that never validated: each is a
    ``follow_up_refused`` event with its reason; the allowed ones are still created."""
    add_agent(store, now=T0, max_concurrency=5, scheduling={"max_live": 1})
    add_agent(store, "b", now=T0)
    [run] = _claim(store)
    outcome = Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED, follow_ups=(
        _follow_up(store, run.run_id, every="10m"),
        _follow_up(store, run.run_id, every="20m"),  # over max_live 1
        _follow_up(store, run.run_id, agent="b", every="10m"),  # a may not schedule b
        FollowUp(refused="schedule[3].cron: '* * *' is not a cron expression"),
    ))
    store.finish("n1", [outcome], AT)
    events = _events(store, run.run_id)
    assert events[0][0] == "follow_up"
    assert [kind for kind, _ in events[1:]] == ["follow_up_refused"] * 3
    assert "schedule[1]: agent 'a' already has 1 live agent-made triggers (max_live 1)" in \
        str(events[1][1])
    assert "agent 'a' may not schedule agent 'b'" in str(events[2][1])
    assert str(events[3][1]).startswith("schedule[3].cron")
    detail = Services(store).get_run(run.run_id)
    from agentcron.services.documents import run_detail_json

    shown = run_detail_json(*detail)["follow_ups"]
    assert [(f["trigger_id"] is not None, f["refused"] is not None) for f in shown] == [
        (True, False), (False, True), (False, True), (False, True)]
    assert store.list_triggers("b") == []


def test_a_one_shot_counts_its_min_interval_from_when_the_attempt_started(
        store: Store) -> None:
    """"In 1m" under a 1m min_interval: the run asked for it a minute ahead, so it is
    created even though the outcome is written 30 s later; 1 s short of that is refused,
    and so is a time that has passed by the write."""
    add_agent(store, now=T0, max_concurrency=5, scheduling={"min_interval": "1m"})
    [run] = _claim(store)  # started at AT
    written = AT + timedelta(seconds=30)
    store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED, follow_ups=(
        _follow_up(store, run.run_id, at=(AT + timedelta(minutes=1)).isoformat()),
        _follow_up(store, run.run_id, at=(AT + timedelta(seconds=59)).isoformat()),
        _follow_up(store, run.run_id, at=(AT + timedelta(seconds=20)).isoformat()),
    ))], written)
    events = _events(store, run.run_id)
    assert [kind for kind, _ in events] == ["follow_up", "follow_up_refused",
                                            "follow_up_refused"]
    assert store.get_trigger(str(events[0][1])).next_fire_at == AT + timedelta(minutes=1)
    assert "fires in 59s, under its min_interval 1m" in str(events[1][1])
    assert "no fire time after now" in str(events[2][1])


def test_may_schedule_lets_a_run_schedule_another_agent(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=5, scheduling={"may_schedule": ["b"]})
    add_agent(store, "b", now=T0, scheduling={"require_approval": True})
    [run] = _claim(store)
    store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED, follow_ups=(
        _follow_up(store, run.run_id, agent="b", every="1h"),
        _follow_up(store, run.run_id, every="1h"),  # no longer itself: not listed
    ))], AT)
    [made] = store.list_triggers("b")
    assert (made.created_by, made.approval, made.paused) == (
        f"run:{run.run_id}", "pending", True)
    assert [k for k, _ in _events(store, run.run_id)] == ["follow_up", "follow_up_refused"]


def test_runs_finishing_at_once_never_pass_max_live(store: Store) -> None:
    """Several engines (as several nodes) finish runs of one agent at the same moment,
    each asking for a follow-up: the agent's row lock serialises them, so exactly
    ``max_live`` are created and the rest refused, whatever the interleaving."""
    add_agent(store, now=T0, max_concurrency=20, scheduling={"max_live": 3})
    claimed = _claim(store, 8)
    outcomes = [Outcome(c.run_id, c.lease, RunStatus.SUCCEEDED,
                        follow_ups=(_follow_up(store, c.run_id, every="10m"),))
                for c in claimed]
    peers = [Store(store.url) for _ in claimed]
    try:
        race(peers, lambda s, i: s.finish("n1", [outcomes[i]], AT))
    finally:
        for peer in peers:
            peer.close()
    made = [t for t in store.list_triggers("a") if t.created_by.startswith("run:")]
    assert len(made) == 3
    kinds = [k for c in claimed for k, _ in _events(store, c.run_id)]
    assert sorted(kinds) == ["follow_up"] * 3 + ["follow_up_refused"] * 5


def test_a_run_that_keeps_scheduling_itself_is_stopped_by_the_quota(store: Store) -> None:
    """Each run of the chain schedules the next; at max_live the run says why it could
    not, and the chain of provenance runs back to the first trigger."""
    add_agent(store, now=T0, max_concurrency=100, scheduling={"max_live": 3,
                                                              "min_interval": "1m"})
    [run] = _claim(store)
    Services(store).pause_trigger("origin-a", AT)
    now = AT
    for _ in range(4):
        store.finish("n1", [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED, follow_ups=(
            _follow_up(store, run.run_id, now, every="1m", overlap="allow"),))], now)
        events = _events(store, run.run_id)
        if events[-1][0] == "follow_up_refused":
            break
        now += timedelta(minutes=1)
        store.fire_due(now)
        newest = store.get_trigger(str(events[-1][1]))
        [run] = [c for c in store.claim_runs("n1", 100, now) if c.trigger_id == newest.id]
    assert events[-1][0] == "follow_up_refused"
    assert "max_live 3" in str(events[-1][1])
    made = [t for t in store.list_triggers("a") if t.created_by.startswith("run:")]
    assert len(made) == 3
    deepest = max(made, key=lambda t: t.created_at)
    assert len(Services(store).trigger_chain(deepest)) == 4  # three runs, then the origin
