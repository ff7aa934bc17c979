"""jitter_offset: deterministic across processes, within [0, max), spread across times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentcron.schedule.jitter import jitter_offset

WHEN = datetime(2026, 5, 1, 9, tzinfo=UTC)


def test_deterministic() -> None:
    assert jitter_offset("trg_1", WHEN, 30) == jitter_offset("trg_1", WHEN, 30)


def test_known_value_pins_the_algorithm() -> None:
    # Every node and every version must agree: changing the hash or key would move runs.
    # blake2b-64("trg_1\0" + "2026-05-01T09:00:00+00:00") = 0x8177345a752bb8ad;
    # 0x8177345a752bb8ad * 30_000_000 >> 64 = 15_171_754 microseconds.
    assert jitter_offset("trg_1", WHEN, 30) == timedelta(seconds=15, microseconds=171_754)


def test_same_instant_in_another_zone_gives_the_same_offset() -> None:
    local = WHEN.astimezone(ZoneInfo("Asia/Tokyo"))
    assert jitter_offset("trg_1", local, 30) == jitter_offset("trg_1", WHEN, 30)


def test_zero_max_means_no_jitter() -> None:
    assert jitter_offset("trg_1", WHEN, 0) == timedelta(0)
    assert jitter_offset("trg_1", WHEN, 1e-7) == timedelta(0)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_rejects_bad_max(bad: float) -> None:
    with pytest.raises(ValueError, match="max_jitter_s"):
        jitter_offset("trg_1", WHEN, bad)


def test_differs_across_scheduled_times_and_triggers() -> None:
    times = [WHEN + timedelta(minutes=k) for k in range(200)]
    offsets = {jitter_offset("trg_1", t, 60) for t in times}
    assert len(offsets) > 190  # microsecond resolution: collisions are rare
    assert jitter_offset("trg_1", WHEN, 60) != jitter_offset("trg_2", WHEN, 60)
    # roughly uniform: both halves of the range are used
    assert any(o < timedelta(seconds=30) for o in offsets)
    assert any(o >= timedelta(seconds=30) for o in offsets)


@given(
    st.text(min_size=1, max_size=40),
    st.datetimes(timezones=st.just(UTC)),
    st.floats(min_value=0, max_value=86_400 * 7, allow_nan=False),
)
def test_always_within_bounds(trigger_id: str, scheduled_for: datetime, max_s: float) -> None:
    offset = jitter_offset(trigger_id, scheduled_for, max_s)
    assert timedelta(0) <= offset
    assert offset < timedelta(seconds=max_s) or offset == timedelta(0)
