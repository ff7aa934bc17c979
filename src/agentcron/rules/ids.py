"""Identifier generation.

Run ids are UUIDv7 (RFC 9562): time-ordered, so the primary-key index of a table that takes
thousands of inserts a second stays append-mostly. Python 3.11 has no ``uuid.uuid7``.
Trigger ids are short and typeable because people paste them into the CLI.
"""

from __future__ import annotations

import os
import random
import time

_TRIGGER_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, no i/l/o/u


# Run ids need uniqueness, not secrecy (they are not credentials), and the ticker makes
# thousands a second: a seeded PRNG per process is enough and far cheaper than urandom.
_random = random.Random(os.urandom(16))
# A forked child must not replay its parent's sequence.
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))


def new_run_id() -> str:
    unix_ms = time.time_ns() // 1_000_000
    rand_a = _random.getrandbits(12)
    rand_b = _random.getrandbits(62)
    text = f"{unix_ms & 0xFFFFFFFFFFFF:012x}7{rand_a:03x}{(0b10 << 62) | rand_b:016x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


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


#: The shape of a run id: ``x`` is a lower-case hex digit.
RUN_ID_TEMPLATE = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
#: The shortest run-id prefix accepted in place of a whole id.
MIN_RUN_PREFIX = 4


def is_run_id_prefix(text: str) -> bool:
    """True when ``text`` (lower case) is the start of a well-formed run id: hex digits,
    with dashes where a run id has them."""
    if not 0 < len(text) <= len(RUN_ID_TEMPLATE):
        return False
    return all(c == "-" if t == "-" else c in "0123456789abcdef"
               for c, t in zip(text, RUN_ID_TEMPLATE, strict=False))


def run_id_range(prefix: str) -> tuple[str, str]:
    """The lowest and highest run ids that start with ``prefix`` (``is_run_id_prefix``).
    Both have a run id's shape, dashes in the same places, so every id starting with the
    prefix lies between them in any collation that orders hex digits (a plain ``LIKE``
    alone cannot use the primary-key index under PostgreSQL's usual collations)."""
    rest = RUN_ID_TEMPLATE[len(prefix):]
    return (prefix + rest.replace("x", "0"), prefix + rest.replace("x", "f"))
