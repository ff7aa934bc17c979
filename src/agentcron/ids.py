"""Identifier generation.

Run ids are UUIDv7 (RFC 9562): time-ordered, so the primary-key index of a table that takes
thousands of inserts a second stays append-mostly. Python 3.11 has no ``uuid.uuid7``.
Trigger ids are short and typeable because people paste them into the CLI.
"""

from __future__ import annotations

import os
import time
import uuid

_TRIGGER_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, no i/l/o/u


def new_run_id() -> str:
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= (rand >> 68) << 64 & (((1 << 12) - 1) << 64)  # 12 random bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def new_trigger_id() -> str:
    raw = int.from_bytes(os.urandom(8), "big")
    chars = []
    for _ in range(12):
        chars.append(_TRIGGER_ALPHABET[raw & 31])
        raw >>= 5
    return "tr_" + "".join(chars)


def new_node_id() -> str:
    import socket

    host = socket.gethostname().split(".")[0][:24]
    return f"{host}-{os.getpid()}-{os.urandom(2).hex()}"
