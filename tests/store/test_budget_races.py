"""Budgets under races: several nodes claim for an agent whose budget has room
for exactly one more run. Exactly one starts, whoever wins; once it has reported, the limit
is reached and every other run is skipped exactly once.

Store level, on PostgreSQL (``FOR UPDATE SKIP LOCKED``) and SQLite (``BEGIN IMMEDIATE``):
separate Store engines (separate pools, as separate nodes have) released together by a
barrier, many rounds. End to end: two real ``agentcron serve`` processes and
the OpenAI-compatible test server, an llm agent with a daily token budget."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from agentcron.models import ClaimedRun, Outcome, RunStatus, Usage
from agentcron.store import Store
from agentcron.store.budgets import budget_event_counts
from tests.conftest import T0
from tests.support.budgets import agent_with_budget, queue, runs_of_agent, statuses
from tests.support.helpers import race, wait_until
from tests.support.llm_server import LlmServer
from tests.support.procs import ServeProcess

NODES = 4
ROUNDS = 15


def test_nodes_racing_for_the_last_run_under_the_limit_start_exactly_one(store: Store) -> None:
    peers = [Store(store.url) for _ in range(NODES)]
    try:
        for round_ in range(ROUNDS):
            now = T0 + timedelta(minutes=round_)
            name = f"agent-{round_}"
            # 900 of 1,000 used, the largest run 500: room for one more run, not two.
            agent_with_budget(store, name, {"tokens_per_day": 1000}, now=now,
                              max_concurrency=50,
                              history=[(now, Usage(400, 100)), (now, Usage(300, 100))])
            waiting = queue(store, name, 6, now)
            claims: list[list[ClaimedRun]] = race(
                peers, lambda s, i, now=now: s.claim_runs(f"node-{i}", 10, now))
            started = [run for claimed in claims for run in claimed]
            assert len(started) == 1, f"round {round_}: {len(started)} runs started"
            assert statuses(store, waiting).count(RunStatus.QUEUED) == 5

            # The winner reports 100 tokens: 1,000 reached. Everyone races again: nothing
            # starts, and each waiting run is skipped once.
            [run] = started
            skipped_before = budget_event_counts()["runs_skipped"]
            store.finish(_owner(claims, run), [Outcome(run.run_id, run.lease, RunStatus.SUCCEEDED,
                                  usage=Usage(50, 50))], now)
            again = race(peers, lambda s, i, now=now: s.claim_runs(f"node-{i}", 10, now))
            assert sum(len(c) for c in again) == 0
            assert sorted(statuses(store, waiting)) == sorted(
                [RunStatus.SUCCEEDED] + [RunStatus.SKIPPED] * 5)
            assert budget_event_counts()["runs_skipped"] - skipped_before == 5
    finally:
        for peer in peers:
            peer.close()


def _owner(claims: list[list[ClaimedRun]], run: ClaimedRun) -> str:
    return next(f"node-{i}" for i, claimed in enumerate(claims) if run in claimed)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_serve_processes_start_exactly_one_run_of_an_llm_agent_at_its_budget(
    pg_store: Store, tmp_path: Path,
) -> None:
    store = pg_store
    llm = LlmServer.start()
    model = "echo;prompt_tokens=400;completion_tokens=100"  # 500 tokens a run
    key = "sk-e2e-" + os.urandom(8).hex()
    config = tmp_path / "agents.toml"
    config.write_text(f'''
[agents.writer]
llm = "{model}"
base_url = "{llm.base_url}"
api_key_env = "E2E_LLM_KEY"
prompt = "Summarise {{{{ text }}}}"
max_concurrency = 20
budget = {{ tokens_per_day = 1000 }}

[prices."{model}"]
input_per_mtok = 1.0
output_per_mtok = 2.0
''')
    nodes = [ServeProcess(store.url, f"node-{i}", tmp_path, poll_interval="0.05s",
                          extra=["--config", str(config)], env={"E2E_LLM_KEY": key})
             for i in range(2)]
    try:
        for node in nodes:
            node.wait_for_log("node_started")
        # One run first: 500 tokens used, the largest run 500, so one more run fits.
        first = store.fire_now("writer", {"text": "first"})
        wait_until(lambda: store.get_run(first).status is RunStatus.SUCCEEDED, 30,
                   "the first run to succeed")
        burst = [store.fire_now("writer", {"text": f"burst {i}"}) for i in range(6)]
        wait_until(lambda: all(s.terminal for s in statuses(store, burst)), 30,
                   "the burst to be decided")
        for node in nodes:
            assert node.stop() == 0, node.log()[-2000:]
    finally:
        for node in nodes:
            node.cleanup()
        llm.stop()

    outcome = sorted(s.value for s in statuses(store, burst))
    assert outcome == ["skipped"] * 5 + ["succeeded"], outcome
    runs = runs_of_agent(store, "writer")
    assert sum((r.input_tokens or 0) + (r.output_tokens or 0) for r in runs) == 1000
    assert all(r.cost_usd == pytest.approx(0.0006) for r in runs
               if r.status is RunStatus.SUCCEEDED)
    assert all((r.reason or "").startswith("budget_exceeded") and r.started_at is None
               for r in runs if r.status is RunStatus.SKIPPED)
    started_by = {r.node_id for r in runs if r.status is RunStatus.SUCCEEDED}
    assert started_by <= {"node-0", "node-1"}
    for node in nodes:  # the key reached the server, never a log
        assert key not in node.log()
