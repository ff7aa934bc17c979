"""Standard Webhooks signing, checked against the independent ``standardwebhooks`` package."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks
from hypothesis import given
from hypothesis import strategies as st

from agentcron.executors.signing import SignatureError, secret_key, sign, verify

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
STAMP = int(NOW.timestamp())
BODY = b'{"run_id":"r1","payload":{"a":1}}'


def headers(signature: str, msg_id: str = "msg_1", stamp: int = STAMP) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_sign_matches_the_reference_implementation() -> None:
    reference = standardwebhooks.Webhook(WHSEC).sign("msg_1", NOW, BODY.decode())
    assert sign(WHSEC, "msg_1", STAMP, BODY) == reference
    raw = "a raw secret"
    reference = standardwebhooks.Webhook(raw.encode()).sign("msg_1", NOW, BODY.decode())
    assert sign(raw, "msg_1", STAMP, BODY) == reference
    assert sign(raw.encode(), "msg_1", STAMP, BODY.decode()) == reference


def test_verify_accepts_what_the_reference_signs() -> None:
    signature = standardwebhooks.Webhook(WHSEC).sign("msg_1", NOW, BODY.decode())
    verify(WHSEC, headers(signature), BODY, NOW)
    # Header names are case-insensitive; several signatures (key rotation), one match is enough.
    rotated = f"v1,{base64.b64encode(b'x' * 32).decode()} v1a,bm9wZQ== {signature}"
    verify(WHSEC, {k.upper(): v for k, v in headers(rotated).items()}, BODY.decode(), STAMP)


def test_unpadded_whsec_secret_is_accepted() -> None:
    padded = "whsec_" + base64.b64encode(b"0123456789abcdefg").decode()
    assert padded.endswith("=")
    assert secret_key(padded.rstrip("=")) == b"0123456789abcdefg"


@pytest.mark.parametrize("bad", ["whsec_", "whsec_not base64!", ""])
def test_bad_secrets_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        secret_key(bad)


def signed() -> dict[str, str]:
    return headers(sign(WHSEC, "msg_1", STAMP, BODY))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h.pop("webhook-id"), "missing webhook-id header"),
        (lambda h: h.pop("webhook-timestamp"), "missing webhook-timestamp header"),
        (lambda h: h.pop("webhook-signature"), "missing webhook-signature header"),
        (lambda h: h.update({"webhook-timestamp": "12.5"}), "is not unix seconds"),
        (lambda h: h.update({"webhook-timestamp": "9" * 400}), "is not unix seconds"),
        (lambda h: h.update({"webhook-timestamp": "1" * 5000}), "is not unix seconds"),
        (lambda h: h.update({"webhook-timestamp": str(STAMP - 301)}), "too old"),
        (lambda h: h.update({"webhook-timestamp": str(STAMP + 301)}), "too new"),
        (lambda h: h.update({"webhook-id": "msg_2"}), "no webhook-signature matches"),
        (lambda h: h.update({"webhook-signature": "v1,%%%"}), "no webhook-signature matches"),
        (lambda h: h.update({"webhook-signature": "v2," + h["webhook-signature"][3:]}), "no "),
    ],
)
def test_verify_rejects_with_a_clear_reason(
    mutate: Callable[[dict[str, str]], object], message: str
) -> None:
    h = signed()
    mutate(h)
    with pytest.raises(SignatureError, match=message):
        verify(WHSEC, h, BODY, NOW)


def test_verify_rejects_a_modified_body_and_a_wrong_secret() -> None:
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify(WHSEC, signed(), BODY + b" ", NOW)
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify("whsec_" + base64.b64encode(b"other key").decode(), signed(), BODY, NOW)


def test_tolerance_is_inclusive_and_configurable() -> None:
    verify(WHSEC, signed(), BODY, NOW + timedelta(seconds=300))
    verify(WHSEC, signed(), BODY, NOW - timedelta(seconds=300))
    with pytest.raises(SignatureError, match="too old"):
        verify(WHSEC, signed(), BODY, NOW + timedelta(seconds=11), tolerance_s=10)


@given(
    key=st.binary(min_size=1, max_size=64),
    msg_id=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() == s and s.isprintable()),
    body=st.binary(max_size=500),
    flip=st.integers(min_value=0),
)
def test_round_trip_and_any_flipped_byte_fails(
    key: bytes, msg_id: str, body: bytes, flip: int
) -> None:
    h = headers(sign(key, msg_id, STAMP, body), msg_id)
    verify(key, h, body, STAMP)
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        with pytest.raises(SignatureError):
            verify(key, h, tampered, STAMP)
