"""``AGENTCRON_CLOCK_OFFSET_S``: the fault injection the chaos suite's skew scenario uses to
run a node whose own clock is wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentcron.engine.clock import DatabaseClock
from agentcron.errors import ValidationError
from agentcron.server import clock_from_env


@pytest.mark.parametrize("offset", [300.0, -300.0])
def test_the_offset_moves_the_nodes_own_clock_only(offset: float) -> None:
    clock = clock_from_env({"AGENTCRON_CLOCK_OFFSET_S": f"{offset:g}"})
    assert isinstance(clock, DatabaseClock)
    assert clock.store_now() is None  # what is due and what is stale: the database's clock
    skew = (clock.local_now() - datetime.now(UTC)).total_seconds()
    assert abs(skew - offset) < 5


def test_no_offset_means_no_clock_of_its_own() -> None:
    assert clock_from_env({}) is None
    assert clock_from_env({"AGENTCRON_CLOCK_OFFSET_S": " "}) is None


def test_a_bad_offset_is_refused_with_the_variable_named() -> None:
    with pytest.raises(ValidationError) as caught:
        clock_from_env({"AGENTCRON_CLOCK_OFFSET_S": "5m"})
    assert caught.value.field == "AGENTCRON_CLOCK_OFFSET_S"
