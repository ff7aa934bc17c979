"""Whether a quantity sampled during a storm (a node's RSS, the database's connections) grows.

A leak is a sustained slope over many samples, not one reading higher than another: a pool
opens one more connection under a burst, an allocator takes one more arena, a sample lands
in a garbage collection. So the verdict is drawn from a robust fit over every sample taken
after warm-up, and a series is judged to leak only when the rise that fit gives over the
window is larger than each of

- what the bound per hour allows over that window (what matters on a long window);
- the quantity's floor, a step that is not a trend (what matters on a short window: over
  40 s, one more connection would otherwise read as 90 an hour);
- five standard errors of the fitted rise, estimated from the series' own scatter around
  the fit: a rise that noise alone could make is not evidence of anything (noise exceeds
  that in fewer than one series in 10,000 of 20 samples).

The slope is Theil-Sen's (the median of the slopes between every pair of samples), so a
single outlier, wherever it falls in the window, moves it little; a least-squares fit, whose
end points have the most leverage, would let one late spike decide the verdict.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

HOUR_S = 3600.0
MAX_POINTS = 600
SIGNIFICANCE = 5.0  # standard errors of the fitted rise that noise is allowed


@dataclass(frozen=True)
class LeakBound:
    """What a series may do without being called a leak.

    ``per_hour``: sustained growth allowed, in the quantity's unit per hour.
    ``floor``: the rise over the window that noise alone can make; never below it.
    ``min_samples``: fewer samples than this cannot tell a leak from noise, and fail the
    check (a leak check that did not measure must not pass silently).
    """

    per_hour: float
    floor: float
    min_samples: int = 10


@dataclass(frozen=True)
class Trend:
    """The fit of one series: its robust slope and the rise it implies over the window."""

    samples: int
    window_s: float
    slope_per_hour: float | None  # None with fewer than 3 samples or no spread in time
    rise: float  # slope over the window (0 when there is no slope)
    rise_stderr: float  # how far noise alone moves ``rise`` (one standard error)
    first: float | None
    last: float | None
    low: float | None
    high: float | None
    mean: float | None


def theil_sen_per_hour(points: list[tuple[float, float]]) -> float | None:
    """The median of the slopes between every pair of (seconds, value) points with
    different times, per hour; None with fewer than 3 points or all at one time."""
    if len(points) < 3:
        return None
    # Pairs grow as the square of the samples: thin a very long series evenly (a day
    # sampled every 10 s) rather than compare 37 million pairs.
    step = -(-len(points) // MAX_POINTS)
    points = sorted(points)[::step]
    slopes = [(y2 - y1) / (x2 - x1)
              for i, (x1, y1) in enumerate(points) for x2, y2 in points[i + 1:]
              if x2 != x1]
    if not slopes:
        return None
    return statistics.median(slopes) * HOUR_S


def _rise_stderr(points: list[tuple[float, float]], slope_per_s: float,
                 window_s: float) -> float:
    """One standard error of ``slope * window``: the scatter around the fitted line over
    the spread of the sample times. The scatter is the residuals' standard deviation, not a
    median absolute deviation: on a score of samples the latter comes out several times too
    small now and then, and an outlier can only make the check more lenient, never trip it."""
    if len(points) < 3:
        return 0.0
    xs = [x for x, _ in points]
    mean_x = statistics.fmean(xs)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    residuals = [y - slope_per_s * x for x, y in points]
    centre = statistics.fmean(residuals)
    sigma = (sum((r - centre) ** 2 for r in residuals) / (len(points) - 2)) ** 0.5
    return float(sigma * window_s / sxx ** 0.5)


def trend(points: list[tuple[float, float]]) -> Trend:
    """Fit a series of (seconds, value) samples (any order)."""
    points = sorted(points)
    values = [v for _, v in points]
    window = points[-1][0] - points[0][0] if len(points) > 1 else 0.0
    slope = theil_sen_per_hour(points)
    per_s = (slope or 0.0) / HOUR_S
    return Trend(
        samples=len(points), window_s=window, slope_per_hour=slope,
        rise=per_s * window, rise_stderr=_rise_stderr(points, per_s, window),
        first=values[0] if values else None, last=values[-1] if values else None,
        low=min(values, default=None), high=max(values, default=None),
        mean=statistics.fmean(values) if values else None)


def allowed_rise(bound: LeakBound, fit: Trend) -> float:
    """The largest fitted rise over the fit's window that is not a leak."""
    return max(bound.per_hour * fit.window_s / HOUR_S, bound.floor,
               SIGNIFICANCE * fit.rise_stderr)


def leak(name: str, fit: Trend, bound: LeakBound, unit: str = "") -> str | None:
    """Why ``fit`` is a leak (or could not be judged), or None when it is flat enough."""
    if fit.samples < bound.min_samples or fit.slope_per_hour is None:
        return (f"{name}: only {fit.samples} samples after warm-up (at least "
                f"{bound.min_samples} needed to tell a leak from noise)")
    allowed = allowed_rise(bound, fit)
    if fit.rise > allowed:
        return (f"{name} grew {fit.rise:.1f}{unit} over {fit.window_s:.0f}s "
                f"({fit.slope_per_hour:.1f}{unit}/h; allowed {allowed:.1f}{unit}: "
                f"{bound.per_hour:g}{unit}/h, never below {bound.floor:g}{unit} nor "
                f"{SIGNIFICANCE:g} standard errors, {fit.rise_stderr:.2f}{unit})")
    return None
