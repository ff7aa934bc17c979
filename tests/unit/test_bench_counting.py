"""The benchmark's one counting rule (``bench.counting``): a step is sustained only if it
delivered the offered rate, missed nothing and kept lag p99 within a second, and the
overload check compares steps offered at least twice the peak with that peak."""

from __future__ import annotations

from bench.counting import summarise
from bench.targets import overload_steps


def _records(triggers: int, seconds: int, lag: float) -> list[tuple[int, float, float]]:
    return [(job, 100.0 + s, 100.0 + s + lag) for s in range(seconds) for job in range(triggers)]


def test_a_step_that_fires_everything_late_is_not_sustained() -> None:
    on_time = summarise(_records(10, 5, 0.2), triggers=10, window_start=100, window_end=105)
    late = summarise(_records(10, 5, 1.5), triggers=10, window_start=100, window_end=105)
    assert on_time["missed"] == 0 and on_time["sustained"] is True
    # Nothing missed, but every fire 1.5 s late: not kept up.
    assert late["missed"] == 0 and late["lag_p99_ms"] == 1500.0
    assert late["sustained"] is False


def test_overload_steps_are_those_offered_twice_the_peak() -> None:
    fire = [{"system": "agentcron", "triggers": n, "fires_per_s": got}
            for n, got in ((1000, 1000.0), (5000, 5000.0), (10_000, 6000.0),
                           (20_000, 5700.0), (40_000, 2000.0))]
    rows = overload_steps(fire)
    assert [(r["offered"], r["factor"]) for r in rows] == [(20_000, 3.3), (40_000, 6.7)]
    assert [r["fires_per_s"] >= 0.9 * r["peak"] for r in rows] == [True, False]
