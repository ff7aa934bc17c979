"""What ``agentcron runs`` shows of a run: the reason of a skipped run in the listing,
stderr, progress and costs as the dashboard shows them, and a retry of a succeeded run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from agentcron.models import Outcome, RunStatus, Usage
from agentcron.rules.overlap import SKIPPED_ACTIVE
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.conftest import Cli
from tests.support.helpers import add_agent


@pytest.fixture
def store(db_url: str, cli: Cli) -> Iterator[Store]:
    assert cli("db", "upgrade").exit_code == 0
    s = Store(db_url)
    yield s
    s.close()


def _out(cli: Cli, *args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
    return str(result.stdout)


def test_runs_list_shows_why_a_run_was_skipped(cli: Cli, store: Store) -> None:
    add_agent(store, "a")
    trigger = Services(store).add_trigger(TriggerInput(agent="a", every="1m"))
    first = trigger.next_fire_at
    assert first is not None
    store.fire_due(first + timedelta(seconds=1))  # queued
    store.fire_due(first + timedelta(seconds=61))  # skipped: the previous run is still active
    table = _out(cli, "runs", "list", "--status", "skipped")
    assert "REASON" in table
    # The last column, its lines joined (a long reason wraps in a narrow terminal).
    last = [line.split("│")[-2].strip() for line in table.splitlines() if "│" in line]
    assert " ".join(part for part in last if part) == SKIPPED_ACTIVE
    [skipped] = json.loads(_out(cli, "runs", "list", "--status", "skipped", "--json"))
    assert skipped["reason"] == SKIPPED_ACTIVE


def test_runs_show_has_stderr_progress_and_the_shared_cost_format(cli: Cli, store: Store
                                                                  ) -> None:
    add_agent(store, "a", max_concurrency=5)
    now = datetime.now(UTC)
    ids = [store.fire_now("a", None, now) for _ in range(3)]
    runs = {r.run_id: r for r in store.claim_runs("n1", 5, now)}
    small, unpriced, busy = (runs[i] for i in ids)
    store.record_progress(busy.run_id, busy.lease, "n1", "page 4 of 9", now)
    store.finish("n1", [
        Outcome(small.run_id, small.lease, RunStatus.SUCCEEDED, output="done",
                stderr="deprecated flag", usage=Usage(900, 20, 0.000156, "m")),
        Outcome(unpriced.run_id, unpriced.lease, RunStatus.SUCCEEDED, output="done",
                usage=Usage(900, 20, None, "no-price")),
    ], now)
    text = _out(cli, "runs", "show", small.run_id)
    assert "deprecated flag" in text and "$0.000156" in text
    assert "unpriced" in _out(cli, "runs", "show", unpriced.run_id)
    assert "page 4 of 9" in _out(cli, "runs", "show", busy.run_id)
    listing = _out(cli, "runs", "list")
    assert "$0.000156" in listing and "unpriced" in listing and "$0.0000 " not in listing
    doc = json.loads(_out(cli, "runs", "show", unpriced.run_id, "--json"))
    assert (doc["cost_usd"], doc["unpriced"], doc["cost"]) == (None, True, "unpriced")

    said = _out(cli, "runs", "retry", small.run_id)
    assert f"run {small.run_id} succeeded and keeps its output" in said
    new_id = said.strip().split("queued new run ", 1)[1].split(" ", 1)[0]
    again = json.loads(_out(cli, "runs", "show", new_id, "--json"))
    assert again["retry_of"] == small.run_id and again["status"] == "queued"
    assert json.loads(_out(cli, "runs", "show", small.run_id, "--json"))["output"] == "done"
