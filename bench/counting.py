"""The one counting code every system's figures come from.

A step offers ``triggers`` jobs that each fire on every whole second. The measured window
is ``[window_start, window_end)`` in *scheduled* time (whole seconds, after the warm-up),
so ``triggers * seconds`` fires are expected. After the window the system gets ``grace``
seconds to run what it owes, then it is stopped and:

- **fires/s**: agent starts whose *start* fell inside the window, per second (what the
  system delivered, whatever it was catching up on);
- **lag**: agent start minus scheduled time, over the fires scheduled in the window;
- **missed**: (job, scheduled time) pairs in the window that never ran (by the end of the
  grace period);
- **duplicates**: runs of a (job, scheduled time) pair beyond its first.

A step is **sustained** when the system delivered at least 95 % of the offered rate,
missed nothing and kept its lag p99 within ``SUSTAINED_P99_S`` (1 s): a system that fires
everything many seconds late has not kept up, whatever its rate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: The lag p99 a sustained step stays within.
SUSTAINED_P99_S = 1.0


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _ms(value: float) -> float | None:
    return None if value != value else round(value * 1000, 1)


def summarise(records: Iterable[tuple[Any, float, float]], *, triggers: int,
              window_start: float, window_end: float) -> dict[str, Any]:
    """Figures for one step from ``(job, scheduled_ts, started_ts)`` records."""
    seconds = round(window_end - window_start)
    expected = triggers * seconds
    seen: set[tuple[Any, int]] = set()
    lags: list[float] = []
    in_window = 0
    duplicates = 0
    started_in_window = 0
    for job, scheduled, started in records:
        if window_start <= started < window_end:
            started_in_window += 1
        slot = round(scheduled)
        if not window_start <= slot < window_end:
            continue
        in_window += 1
        lags.append(started - scheduled)
        key = (job, slot)
        if key in seen:
            duplicates += 1
        else:
            seen.add(key)
    lags.sort()
    ran = len(seen)
    fires_per_s = started_in_window / seconds if seconds else 0.0
    missed = max(0, expected - ran)
    return {
        "offered_per_s": triggers,
        "window_s": seconds,
        "expected": expected,
        "ran": ran,
        "fires_per_s": round(fires_per_s, 1),
        "lag_p50_ms": _ms(percentile(lags, 50)),
        "lag_p99_ms": _ms(percentile(lags, 99)),
        "lag_max_ms": _ms(lags[-1] if lags else float("nan")),
        "missed": missed,
        "duplicates": duplicates,
        "sustained": bool(expected and missed == 0 and fires_per_s >= 0.95 * triggers
                          and lags and percentile(lags, 99) <= SUSTAINED_P99_S),
    }
