"""Webhook triggers in the service layer and the store, on SQLite and PostgreSQL: signature
checks, replay refusal, one run per delivery, and deliveries in the same microsecond."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest

from agentcron.errors import ConflictError, NotFoundError, ValidationError
from agentcron.executors.signing import SignatureError
from agentcron.models import RunStatus, TriggerKind
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import runs_of
from tests.support.webhooks import headers, webhook


def test_a_webhook_trigger_never_fires_on_its_own(store: Store) -> None:
    tid, secret = webhook(store)
    trigger = store.get_trigger(tid)
    assert trigger.kind is TriggerKind.WEBHOOK and trigger.next_fire_at is None
    assert trigger.overlap.value == "allow"
    assert secret.startswith("whsec_") and len(secret) > 40
    assert store.fire_due(T0 + timedelta(days=365)).queued == 0
    assert "webhook" in Services(store).describe(trigger)


def test_a_signed_delivery_is_one_run_with_the_body_as_payload(store: Store) -> None:
    tid, secret = webhook(store)
    body = json.dumps({"event": "push"}).encode()
    delivery = Services(store).receive_webhook(tid, headers(secret, "m1", body), body, T0)
    [run] = runs_of(store, tid)
    assert run.id == delivery.run_id and run.status is RunStatus.QUEUED
    assert run.payload == {"event": "push"} and run.scheduled_for == T0


def test_a_replay_is_refused_and_queues_nothing(store: Store) -> None:
    tid, secret = webhook(store)
    body = b"{}"
    svc = Services(store)
    svc.receive_webhook(tid, headers(secret, "m1", body), body, T0)
    with pytest.raises(ConflictError, match="already delivered"):
        svc.receive_webhook(tid, headers(secret, "m1", body), body, T0 + timedelta(seconds=1))
    assert len(runs_of(store, tid)) == 1


def test_deliveries_in_the_same_microsecond_get_distinct_scheduled_times(store: Store
                                                                        ) -> None:
    """Webhook runs are keyed (trigger_id, scheduled_for) like scheduled ones; the store
    moves each one a microsecond past the previous fire, so none collides or is lost."""
    tid, secret = webhook(store)
    body = b"{}"
    svc = Services(store)
    ids = [svc.receive_webhook(tid, headers(secret, f"m{i}", body), body, T0).run_id
           for i in range(5)]
    runs = sorted(runs_of(store, tid), key=lambda r: r.scheduled_for)
    assert sorted(r.id for r in runs) == sorted(ids)
    assert [r.scheduled_for for r in runs] == [T0 + timedelta(microseconds=i)
                                               for i in range(5)]


@pytest.mark.parametrize("tamper, message", [
    (lambda h: {**h, "webhook-signature": "v1,AAAA"}, "no webhook-signature matches"),
    (lambda h: {k: v for k, v in h.items() if k != "webhook-id"}, "missing webhook-id"),
    (lambda h: {**h, "webhook-timestamp": "soon"}, "not unix seconds"),
])
def test_bad_signatures_are_refused(store: Store, tamper: object, message: str) -> None:
    tid, secret = webhook(store)
    body = b"{}"
    with pytest.raises(SignatureError, match=message):
        Services(store).receive_webhook(tid, tamper(headers(secret, "m", body)),  # type: ignore[operator]
                                        body, T0)
    assert runs_of(store, tid) == []


def test_the_timestamp_must_be_within_five_minutes(store: Store) -> None:
    tid, secret = webhook(store)
    body = b"{}"
    svc = Services(store)
    old = int((T0 - timedelta(seconds=301)).timestamp())
    new = int((T0 + timedelta(seconds=301)).timestamp())
    with pytest.raises(SignatureError, match="too old"):
        svc.receive_webhook(tid, headers(secret, "m", body, old), body, T0)
    with pytest.raises(SignatureError, match="too new"):
        svc.receive_webhook(tid, headers(secret, "m", body, new), body, T0)
    ok = int((T0 - timedelta(seconds=299)).timestamp())
    svc.receive_webhook(tid, headers(secret, "m", body, ok), body, T0)


def test_a_body_that_is_not_json_is_refused_after_the_signature(store: Store) -> None:
    tid, secret = webhook(store)
    body = b"<xml/>"
    with pytest.raises(ValidationError) as exc:
        Services(store).receive_webhook(tid, headers(secret, "m", body), body, T0)
    assert exc.value.field == "body"
    assert runs_of(store, tid) == []


def test_unknown_and_non_webhook_triggers_are_not_found(store: Store) -> None:
    _tid, secret = webhook(store)
    cron = Services(store).add_trigger(TriggerInput(agent="a", cron="* * * * *"), T0)
    body = b"{}"
    for target in (cron.id, "tr_000000000000", "tr_\x00"):
        with pytest.raises(NotFoundError):
            Services(store).receive_webhook(target, headers(secret, "m", body), body, T0)


def test_a_paused_trigger_refuses_and_records_nothing(store: Store) -> None:
    tid, secret = webhook(store)
    svc = Services(store)
    svc.pause_trigger(tid, T0)
    body = b"{}"
    with pytest.raises(ConflictError, match="paused"):
        svc.receive_webhook(tid, headers(secret, "m", body), body, T0)
    svc.resume_trigger(tid, T0)
    svc.receive_webhook(tid, headers(secret, "m", body), body, T0)  # same id, now accepted
    assert len(runs_of(store, tid)) == 1


def test_overlap_skip_records_a_skipped_run(store: Store) -> None:
    tid, secret = webhook(store, overlap="skip")
    svc = Services(store)
    body = b"{}"
    first = svc.receive_webhook(tid, headers(secret, "m1", body), body, T0)
    second = svc.receive_webhook(tid, headers(secret, "m2", body), body, T0)
    assert first.status is RunStatus.QUEUED and second.status is RunStatus.SKIPPED
    assert second.reason is not None and "overlap" in second.reason


def test_old_deliveries_are_pruned(store: Store) -> None:
    tid, secret = webhook(store)
    body = b"{}"
    Services(store).receive_webhook(tid, headers(secret, "m1", body), body, T0)
    assert store.prune_webhook_deliveries(T0) == 0
    assert store.prune_webhook_deliveries(T0 + timedelta(hours=2)) == 1


@pytest.mark.postgres
def test_concurrent_replays_are_accepted_once(pg_store: Store) -> None:
    """Eight threads deliver the same webhook-id at once: exactly one run."""
    tid, secret = webhook(pg_store)
    body = b'{"n": 1}'
    results: list[str] = []
    start = threading.Barrier(8)

    def deliver() -> None:
        start.wait()
        try:
            Services(pg_store).receive_webhook(tid, headers(secret, "same", body), body, T0)
            results.append("accepted")
        except ConflictError:
            results.append("replay")

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["accepted"] + ["replay"] * 7
    assert len(runs_of(pg_store, tid)) == 1


def test_the_cli_prints_the_secret_once(tmp_path: object) -> None:
    from typer.testing import CliRunner

    from agentcron.cli import app

    db = f"sqlite:///{tmp_path}/cli.db"
    runner = CliRunner()
    assert runner.invoke(app, ["--db", db, "agents", "add", "a", "--python",
                               "agentcron.examples:noop"]).exit_code == 0
    result = runner.invoke(app, ["--db", db, "triggers", "add", "a", "--webhook", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["secret"].startswith("whsec_") and doc["url_path"] == f"/hooks/{doc['id']}"
    shown = runner.invoke(app, ["--db", db, "triggers", "show", doc["id"], "--json"])
    assert doc["secret"] not in shown.stdout
    bad = runner.invoke(app, ["--db", db, "triggers", "add", "a", "--webhook", "--every", "1m"])
    assert bad.exit_code == 2 and "webhook" in bad.output
