"""Addressing things as people type them: a trigger by its name where the name is unique, a
run by a unique prefix of its id (as git does), what removing an agent touches, and a
webhook trigger's secret rotated. Through the services, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentcron.errors import NotFoundError, ValidationError
from agentcron.executors.signing import SignatureError
from agentcron.models import RunStatus
from agentcron.rules.ids import is_run_id_prefix, run_id_range
from agentcron.services import Services, TriggerInput
from agentcron.store import Store, transitions
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger
from tests.support.webhooks import headers, webhook

NOW = T0 + timedelta(seconds=1)

# Run ids chosen so that some prefixes are shared: the first two differ only in their last
# digit; the third shares the first 24 characters with them; the fourth is far away.
IDS = (
    "01900000-0000-7000-8000-000000000001",
    "01900000-0000-7000-8000-000000000002",
    "01900000-0000-7000-8000-00000000a000",
    "0ffff000-0000-7000-8000-000000000000",
)


def _insert_runs(store: Store) -> None:
    add_agent(store, "a", T0)
    with store.engine.begin() as conn:
        for run_id in IDS:
            conn.execute(transitions.insert_one(
                id=run_id, trigger_id=None, agent="a", scheduled_for=NOW,
                status=RunStatus.QUEUED.value, payload=None, coalesced=1, queued_at=NOW,
                run_after=NOW))


def test_a_run_is_found_by_a_unique_prefix_of_its_id(store: Store) -> None:
    _insert_runs(store)
    svc = Services(store)
    assert svc.get_run(IDS[3])[0].id == IDS[3]
    assert svc.get_run("0fff")[0].id == IDS[3]
    assert svc.get_run("01900000-0000-7000-8000-00000000a")[0].id == IDS[2]
    assert svc.get_run("01900000-0000-7000-8000-000000000002")[0].id == IDS[1]
    # Upper case, as some terminals and people type it.
    assert svc.runs.resolve("0FFF") == IDS[3]
    # Cancel and retry take a prefix too, and act on that run only.
    assert svc.cancel_run("0fff") is RunStatus.QUEUED
    assert store.get_run(IDS[3]).status is RunStatus.CANCELLED
    assert store.get_run(IDS[0]).status is RunStatus.QUEUED
    assert svc.retry_run("0fff") == IDS[3]
    assert store.get_run(IDS[3]).status is RunStatus.QUEUED


def test_an_ambiguous_run_prefix_is_refused_listing_the_runs_it_could_mean(
        store: Store) -> None:
    _insert_runs(store)
    svc = Services(store)
    with pytest.raises(ValidationError) as caught:
        svc.get_run("0190")
    error = caught.value
    assert error.field == "run"
    assert "'0190' is the start of 3 run ids" in str(error)
    for run_id in IDS[:3]:
        assert run_id in str(error)
    assert IDS[3] not in str(error)
    assert "give more characters" in str(error)
    with pytest.raises(ValidationError, match="2 run ids"):
        svc.cancel_run("01900000-0000-7000-8000-00000000000")
    assert all(store.get_run(i).status is RunStatus.QUEUED for i in IDS)


def test_a_run_prefix_must_be_long_enough_and_shaped_like_a_run_id(store: Store) -> None:
    _insert_runs(store)
    svc = Services(store)
    with pytest.raises(ValidationError, match="at least 4 characters"):
        svc.get_run("019")
    for text in ("01900000x", "0190000-", "zzzz", "", "0190 0000", "0" * 37):
        with pytest.raises(NotFoundError):
            svc.get_run(text)
    with pytest.raises(NotFoundError):
        svc.get_run("0abc")  # well formed, but no run starts so


def test_the_id_range_of_a_prefix_keeps_a_run_ids_shape() -> None:
    assert run_id_range("0190") == ("01900000-0000-0000-0000-000000000000",
                                    "0190ffff-ffff-ffff-ffff-ffffffffffff")
    assert run_id_range("01900000-") == ("01900000-0000-0000-0000-000000000000",
                                         "01900000-ffff-ffff-ffff-ffffffffffff")
    assert is_run_id_prefix("01900000-00")
    assert not is_run_id_prefix("019000000")  # a digit where the dash goes
    assert not is_run_id_prefix("0190G")


def test_a_trigger_is_found_by_its_name_where_no_other_trigger_has_it(store: Store) -> None:
    add_agent(store, "a", T0)
    add_agent(store, "b", T0)
    nightly = add_trigger(store, T0, "a", cron="0 3 * * *", name="nightly")
    other = add_trigger(store, T0, "b", every="1h", name="hourly")
    svc = Services(store)
    assert svc.get_trigger("nightly").id == nightly.id
    assert svc.get_trigger(nightly.id).id == nightly.id
    assert svc.next_fire_times("nightly", 1, NOW)[0].hour == 3
    assert svc.pause_trigger("nightly").paused is True
    assert store.get_trigger(nightly.id).paused is True
    assert svc.resume_trigger("nightly", NOW).paused is False
    changed = svc.update_trigger("nightly", {"cron": "0 4 * * *"}, NOW)
    assert changed.id == nightly.id and changed.cron == "0 4 * * *"
    assert svc.delete_trigger("hourly") == other.id
    with pytest.raises(NotFoundError):
        store.get_trigger(other.id)
    with pytest.raises(NotFoundError):
        svc.get_trigger("no such trigger")


def test_an_ambiguous_trigger_name_is_refused_listing_the_candidates(store: Store) -> None:
    add_agent(store, "a", T0)
    add_agent(store, "b", T0)
    first = add_trigger(store, T0, "a", cron="0 3 * * *", name="nightly")
    second = add_trigger(store, T0, "b", cron="0 3 * * *", name="nightly")
    svc = Services(store)
    with pytest.raises(ValidationError) as caught:
        svc.pause_trigger("nightly")
    error = caught.value
    assert error.field == "trigger"
    assert f"{first.id} (agent a)" in str(error) and f"{second.id} (agent b)" in str(error)
    assert "give the trigger's id" in str(error)
    assert not store.get_trigger(first.id).paused and not store.get_trigger(second.id).paused
    # The id always wins, even when another trigger is named like it.
    add_trigger(store, T0, "a", every="1h", name=second.id)
    assert svc.get_trigger(second.id).id == second.id


def test_the_footprint_of_an_agent_counts_what_removing_it_touches(store: Store) -> None:
    add_agent(store, "a", T0, max_concurrency=5)
    add_agent(store, "b", T0)
    add_trigger(store, T0, "a", every="1h")
    add_trigger(store, T0, "a", every="2h")
    add_trigger(store, T0, "b", every="1h")
    for _ in range(3):
        store.fire_now("a", None, NOW)
    store.fire_now("b", None, NOW)
    store.claim_runs("n1", 1, NOW)  # one of a's runs is running, not queued
    svc = Services(store)
    assert svc.agents.footprint("a") == (2, 2, 3)
    assert svc.remove_agent("a", NOW) == 2
    with pytest.raises(NotFoundError):
        svc.agents.footprint("a")


def test_rotating_a_webhook_secret_hands_out_a_new_one_and_retires_the_old(
        store: Store) -> None:
    trigger_id, old = webhook(store, name="github")
    svc = Services(store)
    trigger, new = svc.triggers.rotate_secret("github")
    assert trigger.id == trigger_id
    assert new.startswith("whsec_") and new != old
    body = b'{"x": 1}'
    with pytest.raises(SignatureError):
        svc.receive_webhook(trigger_id, headers(old, "msg_1", body), body, T0)
    delivery = svc.receive_webhook(trigger_id, headers(new, "msg_2", body), body, T0)
    assert store.get_run(delivery.run_id).payload == {"x": 1}


def test_only_a_webhook_trigger_has_a_secret_to_rotate(store: Store) -> None:
    add_agent(store, "a", T0)
    trigger = add_trigger(store, T0, "a", every="1h")
    with pytest.raises(ValidationError, match="has no secret"):
        Services(store).triggers.rotate_secret(trigger.id)
    assert Services(store).create_trigger(TriggerInput(agent="a", every="2h"), T0)[1] is None
