"""The follow-up builder (``services/follow_ups.py``): a run's raw requests through the one
trigger validator, on both backends (it reads the agents a request names)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentcron.models import FollowUp
from agentcron.rules.scheduling import MAX_FOLLOW_UPS
from agentcron.services import Services
from agentcron.store import Store
from tests.support.helpers import add_agent

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def built(store: Store) -> Any:
    add_agent(store, "watcher")
    add_agent(store, "other")
    follow_ups = Services(store).follow_ups

    def build(*requests: Any) -> tuple[FollowUp, ...]:
        return follow_ups.build("run_1", "watcher", list(requests), NOW)

    return build


def test_valid_requests_become_trigger_rows(built: Any) -> None:
    at, cron, every, raw_in = built(
        {"at": "2026-05-01T09:20:00+00:00", "payload": {"pr": 7}},
        {"cron": "0 9 * * 1", "tz": "Europe/Paris", "agent": "other", "name": "monday"},
        {"every": "1h"},
        {"in": "5m"},  # a worker other than the reference one may send it raw
    )
    assert all(f.refused is None and f.row is not None for f in (at, cron, every, raw_in))
    assert at.row is not None and cron.row is not None
    assert every.row is not None and raw_in.row is not None
    assert (at.row["agent"], at.row["kind"], at.row["payload"]) == ("watcher", "once",
                                                                    {"pr": 7})
    assert at.row["next_fire_at"] == datetime(2026, 5, 1, 9, 20, tzinfo=UTC)
    assert at.row["source"] == "run"
    assert (cron.row["agent"], cron.row["name"], cron.row["timezone"]) == (
        "other", "monday", "Europe/Paris")
    assert cron.row["next_fire_at"] == datetime(2026, 5, 4, 7, 0, tzinfo=UTC)
    assert every.row["next_fire_at"] == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert raw_in.row["next_fire_at"] == datetime(2026, 5, 1, 9, 5, tzinfo=UTC)


@pytest.mark.parametrize(("request_", "reason"), [
    ("later", "schedule[0].request: not a JSON object: 'later'"),
    ({"when": "1h"}, "schedule[0].when: is not a follow-up key (use agent, cron, every, at, "
                     "in, tz, payload, name)"),
    ({"cron": 5}, "schedule[0].cron: must be a string, got 5"),
    ({"every": True}, "schedule[0].every: must be a duration, got True"),
    ({"cron": "61 * * * *"}, "schedule[0].cron: minute field '61' is out of range"),
    ({"in": "5m", "cron": "* * * * *"}, "schedule[0].schedule: cron and in given together"),
    ({}, "schedule[0].schedule: no time given"),
    ({"every": "1h", "agent": "ghost"}, "schedule[0].agent: no agent named 'ghost'"),
    ({"at": "2020-01-01T00:00:00Z"}, "schedule[0].at: 2020-01-01T00:00:00+00:00 is in the "
                                     "past"),
    ({"at": "2026-05-02T00:00:00"}, "schedule[0].at: '2026-05-02T00:00:00' has no UTC offset"),
    ({"in": "nope"}, "schedule[0].in: 'nope' is not a duration"),
    ({"every": "1h", "tz": "UTC"}, "schedule[0].tz: a time zone does not apply"),
    ({"every": "1h", "name": " bad"}, "schedule[0].name: ' bad' is not a valid trigger name"),
    ({"every": "1h", "payload": {"x": float("inf")}}, "schedule[0].payload"),
])
def test_each_invalid_request_is_refused_naming_its_field(built: Any, request_: Any,
                                                          reason: str) -> None:
    [follow_up] = built(request_)
    assert follow_up.row is None
    assert follow_up.refused is not None and follow_up.refused.startswith(reason), \
        follow_up.refused


def test_a_bad_request_costs_the_others_nothing_and_indexes_are_kept(built: Any) -> None:
    ok, bad, ok2 = built({"in": "1h"}, {"cron": "nope"}, {"every": "2h"})
    assert ok.row is not None and ok2.row is not None
    assert bad.refused is not None and bad.refused.startswith("schedule[1].cron")


def test_past_the_cap_one_refusal_says_the_rest_were_dropped(built: Any) -> None:
    made = built(*([{"every": "1h"}] * (MAX_FOLLOW_UPS + 1)))
    assert len(made) == MAX_FOLLOW_UPS + 1
    assert all(f.row is not None for f in made[:MAX_FOLLOW_UPS])
    assert made[-1] == FollowUp(refused=f"schedule[{MAX_FOLLOW_UPS}]: more than "
                                        f"{MAX_FOLLOW_UPS} follow-ups in one run; 1 or "
                                        "more were dropped")
