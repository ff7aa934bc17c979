"""Alert delivery by real nodes to a real loopback receiver, on SQLite and PostgreSQL: a
failed run's alert arrives once, signed, naming the agent, trigger, run, reason and a
dashboard link; a 500 is retried with growing delays; several nodes delivering at once
send each alert once; an alert leased by a node that died is sent by another, once; and
an Apprise ``json://`` URL reaches the receiver too."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from agentcron.engine.node import Node
from agentcron.executors import Executors
from agentcron.models import AlertKind, AlertStatus
from agentcron.services import Services
from agentcron.services.alerts import AlertRuleInput
from agentcron.services.trigger_input import TriggerInput
from agentcron.store import Store
from agentcron.store.alerts import raise_alert
from tests.support.alert_receiver import Receiver
from tests.support.helpers import await_until, wait_until
from tests.support.nodes import node_settings, python_agent, run_node
from tests.support.procs import ServeProcess

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = {"alert_interval_s": 0.05, "alert_retry_s": 0.2, "dashboard_url": "https://cron.example"}


def _delivered(store: Store, n: int) -> bool:
    alerts = store.list_alerts(limit=1000)
    return len(alerts) == n and all(a.status is AlertStatus.DELIVERED for a in alerts)


def test_a_failed_trigger_run_is_alerted_once(store: Store, receiver: Receiver) -> None:
    python_agent(store, "bad", "tests.support.agents:broken")
    svc = Services(store)
    now = store.now()
    trigger = svc.add_trigger(TriggerInput(agent="bad", every="1h", name="hourly",
                                           start=(now + timedelta(seconds=1)).isoformat()))
    svc.alerts.add(AlertRuleInput(agent="bad", kind="failed", trigger="hourly",
                                  channels=[receiver.url()], webhook_secret=SECRET))

    async def scenario(node: Node) -> None:
        await await_until(lambda: _delivered(store, 1), message="the alert delivered")
        await asyncio.sleep(0.3)  # room for a wrong second delivery to show up

    run_node(store, scenario, **FAST)
    [request] = receiver.received
    Webhook(SECRET).verify(request.raw, request.headers)  # raises unless signed right
    data = request.body["data"]
    assert request.body["type"] == "alert.failed"
    assert (data["agent"], data["trigger_id"], data["count"]) == ("bad", trigger.id, 1)
    assert data["reason"] == ("failed after attempt 1: PermanentError: this agent never "
                              "works")
    assert data["link"] == f"https://cron.example/runs/{data['run_id']}"
    assert request.headers["webhook-id"] == data["id"]


def test_a_500_is_retried_with_growing_delays(store: Store, receiver: Receiver) -> None:
    python_agent(store, "a", "agentcron.examples:noop")
    svc = Services(store)
    svc.alerts.add(AlertRuleInput(agent="a", kind="paused", channels=[receiver.url()]))
    receiver.statuses.extend([500, 500])
    with store.engine.begin() as conn:
        raise_alert(conn, AlertKind.PAUSED, "a", None, None, "paused by its breaker",
                    store.now())

    async def scenario(node: Node) -> None:
        await await_until(lambda: _delivered(store, 1), message="delivered after retries")

    run_node(store, scenario, **FAST)
    ids = receiver.ids()
    assert len(ids) == 3 and len(set(ids)) == 1  # the same message, three attempts
    gaps = [b.at - a.at for a, b in pairwise(receiver.received)]
    # The store holds each retry back for 0.2 s, then 0.4 s (lower bounds only).
    assert gaps[0] >= 0.2 * 0.9 and gaps[1] >= 0.4 * 0.9
    [alert] = store.list_alerts()
    assert alert.attempts == 3 and alert.last_error is None


def _raise_many(store: Store, receiver: Receiver, n: int) -> None:
    """``n`` rules on one event, each sending to its own path: ``n`` alerts."""
    svc = Services(store)
    python_agent(store, "a", "agentcron.examples:noop")
    for i in range(n):
        svc.alerts.add(AlertRuleInput(agent="a", kind="paused",
                                      channels=[receiver.url(f"/r{i}")]))
    with store.engine.begin() as conn:
        assert raise_alert(conn, AlertKind.PAUSED, "a", None, None, "paused",
                           store.now()) == n


def test_three_nodes_deliver_each_alert_once(store: Store, receiver: Receiver) -> None:
    _raise_many(store, receiver, 12)
    stores = [Store(store.url) for _ in range(3)]

    async def main() -> None:
        nodes = [Node(s, node_settings(s, **FAST), Executors()) for s in stores]
        for node in nodes:
            await node.start()
        try:
            await await_until(lambda: _delivered(store, 12), message="all delivered")
            await asyncio.sleep(0.3)
        finally:
            for node in nodes:
                await node.drain()

    try:
        asyncio.run(main())
    finally:
        for s in stores:
            s.close()
    assert sorted(Counter(r.path for r in receiver.received).values()) == [1] * 12
    assert len(set(receiver.ids())) == 12


def test_an_alert_leased_by_a_node_that_died_is_sent_by_another_once(
        store: Store, receiver: Receiver) -> None:
    _raise_many(store, receiver, 1)
    # Taken before the claim: its lease runs from the store's clock read inside it, so it
    # surely ends no earlier than began + 1.0 however long the rest of the claim takes (a
    # garbage collection, the commit's flush).
    began = time.monotonic()
    # A node leases the alert and dies before sending: nothing settles its lease.
    [leased] = store.claim_alerts("dead-node", 10, lease_s=1.0)

    async def scenario(node: Node) -> None:
        await await_until(lambda: _delivered(store, 1), message="delivered by another")
        await asyncio.sleep(0.3)

    run_node(store, scenario, **FAST)
    assert receiver.ids() == [leased.alert.id]
    assert receiver.received[0].at - began >= 1.0  # not before the dead node's lease ended
    [alert] = store.list_alerts()
    assert alert.node_id != "dead-node" and alert.attempts == 2


def test_an_apprise_url_reaches_a_loopback_receiver(store: Store, receiver: Receiver) -> None:
    python_agent(store, "a", "agentcron.examples:noop")
    svc = Services(store)
    port = receiver.base.rsplit(":", 1)[1]
    svc.alerts.add(AlertRuleInput(agent="a", kind="paused",
                                  channels=[f"json://127.0.0.1:{port}/apprise"]))
    with store.engine.begin() as conn:
        raise_alert(conn, AlertKind.PAUSED, "a", "tr_x", None, "paused by its breaker",
                    store.now())

    async def scenario(node: Node) -> None:
        await await_until(lambda: _delivered(store, 1), message="delivered through Apprise")

    run_node(store, scenario, **FAST)
    [body] = receiver.bodies("/apprise")
    assert "paused" in body["title"] and "a" in body["title"]
    assert "paused by its breaker" in body["message"]
    assert "https://cron.example/runs?trigger=tr_x" in body["message"]


def test_a_dead_man_alerts_when_the_trigger_never_succeeds(store: Store,
                                                           receiver: Receiver) -> None:
    """The trigger's agent fails every run (no success), so within twice its interval the
    switch trips; the node delivers it."""
    python_agent(store, "bad", "tests.support.agents:broken", max_attempts=1)
    svc = Services(store)
    svc.add_trigger(TriggerInput(agent="bad", every="1s", name="often"))
    svc.alerts.add(AlertRuleInput(agent="bad", kind="dead_man", trigger="often", after="2x",
                                  channels=[receiver.url()], group_window="1h"))

    async def scenario(node: Node) -> None:
        await await_until(lambda: receiver.received, message="the dead man's alert")

    run_node(store, scenario, **FAST)
    data = receiver.bodies()[0]["data"]
    assert data["kind"] == "dead_man" and "no successful run within 2s" in data["reason"]


def test_a_node_killed_while_delivering_leaves_the_alert_to_another(
        store: Store, receiver: Receiver, tmp_path: Path) -> None:
    """A real node process is killed (SIGKILL) while its request is at the receiver; a
    second node sends the alert once the first one's lease has run out, under the same
    webhook-id, and it is recorded delivered once, by the second node."""
    _raise_many(store, receiver, 1)
    receiver.hold_first = True
    env = {"AGENTCRON_ALERT_INTERVAL": "0.1s", "AGENTCRON_ALERT_LEASE": "2s"}
    first = ServeProcess(store.url, "first", tmp_path, env=env)
    second = None
    try:
        wait_until(lambda: receiver.received, message="the first node's request")
        first.kill9()
        receiver.release.set()
        [alert] = store.list_alerts()
        assert alert.status is AlertStatus.SENDING and alert.node_id == "first"
        second = ServeProcess(store.url, "second", tmp_path, env=env)
        wait_until(lambda: _delivered(store, 1), message="delivered by the second node")
    finally:
        first.cleanup()
        if second is not None:
            second.stop()
            second.cleanup()
    [alert] = store.list_alerts()
    assert alert.node_id == "second" and alert.attempts == 2
    assert receiver.ids() == [alert.id, alert.id]  # the same message: the receiver's key
