"""Retry delays: exponential with full jitter, so a batch that failed together does not
retry together."""

from __future__ import annotations

import random

#: The longest a run waits before its next attempt, whatever its backoff or the
#: ``retry_after_s`` its server asked for.
MAX_RETRY_DELAY_S = 3600.0


def backoff_delay_s(attempt: int, base_s: float, rng: random.Random | None = None) -> float:
    """Delay before the attempt after ``attempt`` (1-based): uniform in
    [base, base * 2**(attempt-1)], capped at an hour."""
    draw = (rng or random).uniform
    ceiling = min(MAX_RETRY_DELAY_S, base_s * 2 ** max(0, attempt - 1))
    return draw(min(base_s, ceiling), ceiling)
