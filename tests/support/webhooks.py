"""Webhook triggers in tests: one created on an agent, and signed delivery headers."""

from __future__ import annotations

from agentcron.executors.signing import sign
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent


def webhook(store: Store, **kwargs: object) -> tuple[str, str]:
    add_agent(store, "a", T0)
    trigger, secret = Services(store).create_trigger(TriggerInput(agent="a", webhook=True,
                                                                  **kwargs), T0)  # type: ignore[arg-type]
    assert secret is not None
    return trigger.id, secret


def headers(secret: str, msg_id: str, body: bytes, stamp: int | None = None) -> dict[str, str]:
    stamp = int(T0.timestamp()) if stamp is None else stamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
            "webhook-signature": sign(secret, msg_id, stamp, body)}
