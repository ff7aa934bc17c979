"""store.fire_plan.decide: what one firing batch plans, pure, over rows as read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agentcron.store.fire_plan import decide

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _row(trigger_id: str, next_fire_at: datetime) -> dict[str, Any]:
    """A due interval trigger (every second, catch-up all) as ``_read_due`` reads it."""
    return {"id": trigger_id, "agent": "a", "kind": "interval", "cron": None,
            "timezone": "UTC", "every_s": 1.0, "at": None, "anchor_at": T0, "start_at": T0,
            "end_at": None, "jitter_s": 0.0, "payload": None, "overlap": "allow",
            "catchup_window_s": 3600.0, "catchup_mode": "all",
            "next_fire_at": next_fire_at, "n_queued": 0, "n_running": 0, "key_policy": None}


def test_a_batch_plans_at_most_max_runs_and_leaves_the_rest_due() -> None:
    now = T0 + timedelta(seconds=9)  # the first trigger is due ten times
    rows = [_row("tr_behind", T0), _row("tr_next", T0)]
    decision = decide(rows, now, max_runs=3)
    assert [r["scheduled_for"] for r in decision.new_runs] == [
        T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    # Cut short: advanced to its first time left out, nothing counted as missed.
    [advance] = decision.advances
    assert advance["id"] == "tr_behind"
    assert advance["next_fire_at"] == T0 + timedelta(seconds=3) and advance["missed"] == 0
    # Past the budget a row is left as it was: no run, no advance, due for the next batch.
    assert {r["trigger_id"] for r in decision.new_runs} == {"tr_behind"}


def test_without_a_budget_a_batch_plans_every_due_time() -> None:
    now = T0 + timedelta(seconds=9)
    decision = decide([_row("tr_behind", T0), _row("tr_next", T0)], now)
    assert len(decision.new_runs) == 20
    assert {a["next_fire_at"] for a in decision.advances} == {T0 + timedelta(seconds=10)}
