"""Standard Webhooks signatures (https://www.standardwebhooks.com), with the stdlib only.

Signed content is ``"{webhook-id}.{webhook-timestamp}.{body}"``; the signature is HMAC-SHA256
with the secret's key bytes, sent as ``webhook-signature: v1,<base64>`` (several space-separated
signatures may be sent during a key rotation; one match is enough). A secret is either
``whsec_<base64 key>`` or a raw string whose UTF-8 bytes are the key.

The HTTP executor signs outgoing requests with ``sign``; the webhook trigger checks incoming
ones with ``verify``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

from agentcron.errors import AgentcronError

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


class SignatureError(AgentcronError):
    """A webhook request whose signature headers are missing, stale or do not match."""


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key for ``secret``. Raises ``ValueError`` for an empty or undecodable secret."""
    if isinstance(secret, bytes):
        key = secret
    elif secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            # Pad: some providers hand out unpadded base64; extra '=' are ignored.
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"secret after '{SECRET_PREFIX}' is not valid base64") from exc
    else:
        key = secret.encode()
    if not key:
        raise ValueError("secret is empty")
    return key


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value (``"v1,<base64>"``) for one message."""
    raw = body.encode() if isinstance(body, str) else body
    return "v1," + base64.b64encode(_digest(secret_key(secret), msg_id, timestamp, raw)).decode()


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes | str,
    now: datetime | float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> None:
    """Check a signed request; return quietly or raise ``SignatureError`` saying what is wrong.

    ``headers`` may be any mapping (header names are matched case-insensitively); ``body`` is
    the raw request body, byte for byte; ``now`` is a datetime or unix seconds, so callers and
    tests choose the clock. The timestamp must be within ``tolerance_s`` of ``now`` either way,
    which bounds replays; deduplicating ``webhook-id`` is the caller's job.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        if not lowered.get(name):
            raise SignatureError(f"missing {name} header")
    msg_id, stamp, signatures = (
        lowered["webhook-id"],
        lowered["webhook-timestamp"],
        lowered["webhook-signature"],
    )
    # Unix seconds have 10 digits until the year 2286; a longer number is no time at all
    # (and one of hundreds of digits overflows the float arithmetic below).
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise SignatureError(f"webhook-timestamp {stamp[:40]!r} is not unix seconds")
    timestamp = int(stamp)
    now_s = now.timestamp() if isinstance(now, datetime) else float(now)
    if timestamp < now_s - tolerance_s:
        raise SignatureError(f"webhook-timestamp is {int(now_s - timestamp)}s old (too old)")
    if timestamp > now_s + tolerance_s:
        raise SignatureError(f"webhook-timestamp is {int(timestamp - now_s)}s ahead (too new)")
    try:
        key = secret_key(secret)
    except ValueError as exc:
        raise SignatureError(f"cannot verify: {exc}") from exc
    raw = body.encode() if isinstance(body, str) else body
    expected = _digest(key, msg_id, timestamp, raw)
    for candidate in signatures.split():
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue  # other schemes (v1a: asymmetric) are not ours to check
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, given):
            return
    raise SignatureError("no webhook-signature matches (wrong secret or modified body)")


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()
