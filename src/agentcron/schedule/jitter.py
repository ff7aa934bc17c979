"""Deterministic jitter: spread runs of many triggers that share a schedule.

The offset is a pure function of (trigger id, scheduled time), so every node computes the
same ``run_after`` for the same run and a restart never re-rolls it.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta

from agentcron.schedule.zones import ensure_utc


def jitter_offset(trigger_id: str, scheduled_for: datetime, max_jitter_s: float) -> timedelta:
    """An offset in ``[0, max_jitter_s)`` at microsecond resolution; zero when the max is 0.

    Uses blake2b (not ``hash()``, which is salted per process) of the trigger id and the
    scheduled time in UTC ISO 8601, so the same instant written in another zone gives the same
    offset. ``ValueError`` for a negative or non-finite max.
    """
    if not math.isfinite(max_jitter_s) or max_jitter_s < 0:
        raise ValueError(f"max_jitter_s must be a finite number >= 0, got {max_jitter_s!r}")
    max_us = int(max_jitter_s * 1_000_000)
    if max_us <= 0:
        return timedelta(0)
    key = f"{trigger_id}\x00{ensure_utc(scheduled_for, 'scheduled_for').isoformat()}"
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    # Scale a uniform 64-bit integer into [0, max_us) without floating point.
    return timedelta(microseconds=(int.from_bytes(digest, "big") * max_us) >> 64)
