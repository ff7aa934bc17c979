"""``serve`` says when a run fails: one log line per failed attempt (agent, trigger, run,
attempt, error, whether it will be retried), and an error line when it ends failed for good.
Someone watching the terminal sees a broken job without opening the dashboard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from structlog.testing import capture_logs

from agentcron.engine.node import Node
from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.support.helpers import await_until
from tests.support.nodes import agent_runs, python_agent, run_node


def _failures(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] in ("run_attempt_failed", "run_failed")]


def test_each_failed_attempt_is_logged_and_the_final_failure_is_an_error(store: Store
                                                                         ) -> None:
    python_agent(store, "b", "tests.support.agents:flaky", max_attempts=1)
    python_agent(store, "r", "tests.support.agents:flaky", max_attempts=2,
                 retry_backoff="0.05s")
    trigger = Services(store).add_trigger(TriggerInput(agent="b", at=datetime.now(UTC) + timedelta(seconds=0.5)))
    retried = store.fire_now("r", None)

    async def scenario(node: Node) -> None:
        await await_until(lambda: [r for r in agent_runs(store, "b")
                                   if r.status is RunStatus.FAILED], message="b failed")
        await await_until(lambda: store.get_run(retried).status is RunStatus.SUCCEEDED,
                          message="r succeeded on its retry")

    with capture_logs() as logs:
        run_node(store, scenario)

    [failed] = agent_runs(store, "b")
    by_run = {e["run_id"]: e for e in _failures(logs)}
    assert len(_failures(logs)) == 2, _failures(logs)
    final = by_run[failed.id]
    assert final["event"] == "run_failed" and final["log_level"] == "error"
    assert (final["agent"], final["trigger_id"], final["attempt"], final["will_retry"]) == (
        "b", trigger.id, 1, False)
    assert "first attempt always fails" in final["error"]
    first = by_run[retried]
    assert first["event"] == "run_attempt_failed" and first["log_level"] == "warning"
    assert (first["agent"], first["trigger_id"], first["attempt"], first["will_retry"]) == (
        "r", None, 1, True)
