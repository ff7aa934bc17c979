"""The chaos soak's leak verdict (``chaos.trend``): a sustained slope over many samples fails,
noise and a single step or spike do not, and too few samples cannot pass."""

from __future__ import annotations

import random

import pytest

from chaos.local import CONNECTIONS, RSS_FLOOR_MB, RSS_MB_PER_HOUR
from chaos.trend import LeakBound, allowed_rise, leak, theil_sen_per_hour, trend

RSS = LeakBound(RSS_MB_PER_HOUR, RSS_FLOOR_MB)


def _series(seconds: float, every_s: float, value: object) -> list[tuple[float, float]]:
    """Samples from t=20 s (after warm-up) every ``every_s`` for ``seconds``."""
    assert callable(value)
    n = int(seconds / every_s) + 1
    return [(20.0 + i * every_s, float(value(20.0 + i * every_s))) for i in range(n)]


def test_the_slope_of_an_exact_line_is_its_slope_per_hour() -> None:
    points = [(float(t), 2.0 * t + 1.0) for t in range(10)]
    assert theil_sen_per_hour(points) == pytest.approx(7200.0)
    fit = trend(points)
    assert fit.rise == pytest.approx(18.0)
    assert (fit.first, fit.last, fit.low, fit.high, fit.samples) == (1.0, 19.0, 1.0, 19.0, 10)


def test_one_more_connection_in_a_short_window_is_not_a_leak() -> None:
    """The failure that made this check: 17 connections, then 18, over 38 s (the short
    soak samples every 2 s)."""
    fit = trend(_series(38, 2, lambda t: 17 if t < 40 else 18))
    assert fit.slope_per_hour is not None and fit.slope_per_hour > 0
    assert leak("connections", fit, CONNECTIONS) is None


def test_connections_that_climb_in_a_short_window_are_a_leak() -> None:
    # One more connection every 8 s: 5 over the window, hundreds an hour.
    rng = random.Random(1)
    fit = trend(_series(40, 2, lambda t: 17 + int((t - 20) / 8) + rng.choice((-1, 0, 0, 1))))
    failure = leak("PostgreSQL connections", fit, CONNECTIONS)
    assert failure is not None and failure.startswith("PostgreSQL connections grew")


def test_flat_but_noisy_connections_are_not_a_leak() -> None:
    rng = random.Random(2)
    for seed_round in range(200):
        fit = trend(_series(40, 2, lambda t: 17 + rng.randint(-3, 3)))
        assert leak("connections", fit, CONNECTIONS) is None, (seed_round, fit)


@pytest.mark.parametrize("where", [0, 10, 20])
def test_a_single_spike_anywhere_in_the_window_is_not_a_leak(where: int) -> None:
    points = _series(40, 2, lambda t: 17)
    points[where] = (points[where][0], 40.0)  # a burst of overflow connections, once
    assert leak("connections", trend(points), CONNECTIONS) is None


def test_noisy_flat_rss_is_not_a_leak_on_a_short_or_a_long_window() -> None:
    rng = random.Random(3)
    short = trend(_series(40, 2, lambda t: 100 + rng.gauss(0, 3)))
    long = trend(_series(1200, 10, lambda t: 100 + rng.gauss(0, 3)))
    assert leak("RSS", short, RSS) is None
    assert leak("RSS", long, RSS) is None


def test_rss_that_grows_steadily_is_a_leak_on_a_short_window() -> None:
    rng = random.Random(4)
    fit = trend(_series(40, 2, lambda t: 100 + 0.5 * (t - 20) + rng.gauss(0, 3)))
    failure = leak("n1 RSS", fit, RSS, " MB")
    assert failure is not None and "n1 RSS grew" in failure


def test_a_slow_leak_over_a_long_window_is_judged_by_the_bound_per_hour() -> None:
    """60 MB/h over 20 min is only 20 MB, yet it fails: the bound per hour allows 20 MB/h,
    and the window is long enough that the floor no longer hides it."""
    rng = random.Random(5)
    fit = trend(_series(1200, 10, lambda t: 100 + 60 * t / 3600 + rng.gauss(0, 3)))
    assert fit.slope_per_hour == pytest.approx(60, abs=10)
    assert leak("RSS", fit, RSS) is not None
    assert allowed_rise(RSS, fit) == RSS_FLOOR_MB
    day = trend(_series(24 * 3600, 60, lambda t: 100 + RSS_MB_PER_HOUR * 0.9 * t / 3600))
    assert allowed_rise(RSS, day) == pytest.approx(24 * RSS_MB_PER_HOUR, rel=0.01)
    assert leak("RSS", day, RSS) is None


def test_too_few_samples_cannot_pass() -> None:
    fit = trend(_series(8, 2, lambda t: 17))
    failure = leak("connections", fit, CONNECTIONS)
    assert failure is not None and "only 5 samples" in failure
    assert leak("connections", trend([]), CONNECTIONS) is not None
