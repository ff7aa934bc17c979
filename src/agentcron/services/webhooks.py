"""Webhook deliveries in the service layer: a signed delivery checked and turned into a
run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from agentcron.errors import ValidationError
from agentcron.executors.signing import verify
from agentcron.services.validate import check_payload, known_id, now_or_store
from agentcron.store import Store
from agentcron.store.webhooks import Delivery

MAX_WEBHOOK_ID = 255


class WebhookService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def receive(self, trigger_id: str, headers: Mapping[str, str], body: bytes,
                now: datetime | None = None) -> Delivery:
        """Check one delivery and turn it into a run.

        Order: unknown trigger (NotFoundError), bad or stale signature (SignatureError),
        body not JSON (ValidationError), paused trigger or replayed ``webhook-id``
        (ConflictError). The signature covers ``webhook-id.webhook-timestamp.body`` and
        is compared in constant time; the timestamp must be within 5 minutes of now.
        """
        target = self.store.webhook_target(known_id(trigger_id, "webhook trigger"))
        moment = now_or_store(self.store, now)
        verify(target.secret, headers, body, moment)
        webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        if len(webhook_id) > MAX_WEBHOOK_ID:
            raise ValidationError("webhook-id", "is too long", f"at most {MAX_WEBHOOK_ID}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError("body", f"is not UTF-8 ({exc.reason})",
                                  "send a JSON document as the request body") from None
        payload = check_payload(text, is_json_text=True, field="body")
        return self.store.deliver_webhook(target.trigger_id, webhook_id, payload,
                                          moment.astimezone(UTC))
