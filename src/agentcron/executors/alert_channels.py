"""How one alert reaches one channel: a signed webhook (Standard Webhooks, signed like the
http agent's requests, ``executors/signing.py``) or an Apprise URL (Slack, e-mail, Teams,
ntfy and the rest), sent in a thread because Apprise blocks.

``send`` raises ``ChannelError`` saying what went wrong; returning means delivered. The
message id (the alert's id) is the same on every attempt, so a receiver can drop the second
copy of a delivery whose node died after sending it and before recording that it had.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from agentcron.executors.signing import sign

WEBHOOK_TIMEOUT_S = 10.0


class ChannelError(Exception):
    """A channel did not take the alert (an HTTP error, no answer, Apprise refused)."""


def is_webhook(channel: str) -> bool:
    """An http(s) URL is a signed webhook; any other URL an Apprise URL."""
    return channel.lower().startswith(("http://", "https://"))


async def send(channel: str, msg_id: str, document: dict[str, Any], title: str, body: str,
               secret: str | None, client: httpx.AsyncClient) -> None:
    """Deliver one alert to ``channel``: ``document`` as the webhook's JSON ``data``, or
    ``title`` and ``body`` as an Apprise notification."""
    if is_webhook(channel):
        await _webhook(channel, msg_id, document, secret, client)
    else:
        await asyncio.to_thread(_apprise, channel, title, body)


async def _webhook(url: str, msg_id: str, document: dict[str, Any], secret: str | None,
                   client: httpx.AsyncClient) -> None:
    stamp = int(time.time())
    payload = json.dumps({"type": f"alert.{document['kind']}",
                          "timestamp": document["last_at"], "data": document},
                         separators=(",", ":"))
    headers = {"content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": str(stamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, stamp, payload)
    try:
        answer = await client.post(url, content=payload, headers=headers,
                                   timeout=WEBHOOK_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise ChannelError(f"webhook: {type(exc).__name__}: {exc}"[:300]) from None
    if not 200 <= answer.status_code < 300:
        raise ChannelError(f"webhook answered HTTP {answer.status_code}")


def _apprise(url: str, title: str, body: str) -> None:
    import apprise  # large; imported by the first node that sends to an Apprise channel

    notifier = apprise.Apprise()
    scheme = url.split("://", 1)[0]
    if not notifier.add(url):
        raise ChannelError(f"apprise: {scheme}:// URL not accepted")
    if not notifier.notify(title=title, body=body):
        raise ChannelError(f"apprise: {scheme}:// did not take the notification")
