"""The alert sender: each node's loop that checks the periodic alert rules and delivers the
outbox (``store/alerts.py``).

One pass: ``Store.check_alert_rules`` (long running, dead man's switch; exactly once across
nodes by the rules' row locks and watermarks), then ``Store.claim_alerts`` leases due alerts
to this node, sends each to every channel of its rule, and settles it fenced on its lease:
delivered, or retried after ``alert_retry_s * 2**(attempt-1)`` (at most an hour), or failed
after ``alert_max_attempts``. Sending happens outside any transaction; a node that dies
while sending leaves a lease that runs out, and another node sends the alert again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import structlog

from agentcron.engine.clock import Clock
from agentcron.engine.loop import Service
from agentcron.engine.resilience import StoreHealth, call_store
from agentcron.executors.alert_channels import ChannelError, send
from agentcron.models import AlertDelivery
from agentcron.store import Store

log = structlog.get_logger(__name__)

MAX_RETRY_DELAY_S = 3600.0
BATCH = 50


def retry_delay_s(attempt: int, base_s: float) -> float:
    """The wait after failed attempt ``attempt`` (1, 2, ...): doubling, at most an hour."""
    return float(min(MAX_RETRY_DELAY_S, base_s * 2.0 ** max(0, attempt - 1)))


def message(delivery: AlertDelivery, base_url: str | None) -> tuple[dict[str, Any], str, str]:
    """The alert as a webhook document, and as an Apprise title and body."""
    alert = delivery.alert
    link = (base_url.rstrip("/") + alert.link) if base_url and alert.link else alert.link
    document: dict[str, Any] = {
        "id": alert.id, "rule_id": alert.rule_id, "kind": alert.kind, "agent": alert.agent,
        "trigger_id": alert.trigger_id, "run_id": alert.run_id, "reason": alert.reason,
        "count": alert.count, "first_at": alert.first_at.isoformat(),
        "last_at": alert.last_at.isoformat(), "link": link,
    }
    times = f" ({alert.count} times since {alert.first_at:%Y-%m-%d %H:%M} UTC)" \
        if alert.count > 1 else ""
    title = f"agentcron: {alert.kind.replace('_', ' ')} - {alert.agent}{times}"
    lines = [alert.reason, f"agent: {alert.agent}"]
    if alert.trigger_id:
        lines.append(f"trigger: {alert.trigger_id}")
    if alert.run_id:
        lines.append(f"run: {alert.run_id}")
    if link:
        lines.append(link)
    return document, title, "\n".join(lines)


class AlertSender(Service):
    name = "alerts"

    def __init__(self, store: Store, clock: Clock, health: StoreHealth, node_id: str, *,
                 interval_s: float, lease_s: float, retry_s: float, max_attempts: int,
                 base_url: str | None) -> None:
        super().__init__(health, interval_s=interval_s)
        self.store = store
        self.clock = clock
        self.node_id = node_id
        self.lease_s = lease_s
        self.retry_s = retry_s
        self.max_attempts = max_attempts
        self.base_url = base_url
        self._client: httpx.AsyncClient | None = None

    async def step(self) -> float | None:
        now = self.clock.store_now()
        await call_store(self.health, "check_alert_rules", self.store.check_alert_rules, now)
        claimed = await call_store(self.health, "claim_alerts", self.store.claim_alerts,
                                   self.node_id, BATCH, self.lease_s, now)
        if not claimed:
            return self.interval_s
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False)
        outcomes = await asyncio.gather(*(self._deliver(d) for d in claimed))
        for delivery, error in zip(claimed, outcomes, strict=True):
            await self._settle(delivery, error)
        return None if len(claimed) == BATCH else self.interval_s

    async def _deliver(self, delivery: AlertDelivery) -> str | None:
        """Send to every channel; None when all took it, else what went wrong."""
        assert self._client is not None
        document, title, body = message(delivery, self.base_url)
        errors = []
        for channel in delivery.channels:
            try:
                await send(channel, delivery.alert.id, document, title, body,
                           delivery.webhook_secret, self._client)
            except ChannelError as exc:
                errors.append(str(exc))
            except Exception as exc:  # a channel's library failing must not stop the loop
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
        return "; ".join(errors) if errors else None

    async def _settle(self, delivery: AlertDelivery, error: str | None) -> None:
        alert = delivery.alert
        retry_in_s: float | None = None
        if error is not None and alert.attempts < self.max_attempts:
            retry_in_s = retry_delay_s(alert.attempts, self.retry_s)
        settled = await call_store(self.health, "settle_alert", self.store.settle_alert,
                                   alert.id, delivery.lease, error=error,
                                   retry_in_s=retry_in_s, now=self.clock.store_now())
        if error is None:
            log.info("alert_delivered", alert=alert.id, kind=alert.kind, agent=alert.agent,
                     count=alert.count, settled=settled)
        else:
            log.warning("alert_delivery_failed", alert=alert.id, attempt=alert.attempts,
                        error=error, retry_in_s=retry_in_s)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
