"""What the dashboard shows of a run and an agent, in-process: costs as the CLI shows them
(``unpriced`` for tokens without a price, enough digits for a small cost), a command's
stderr, the agent's progress, the link of a retry, and durations as they are written."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from agentcron.models import Outcome, RunStatus, Usage
from agentcron.services.documents import format_cost, run_json
from agentcron.store import Store
from tests.support.dashboard import session_client, sign_in
from tests.support.helpers import add_agent

NOW = datetime.now(UTC)  # the agents page sums the last 7 days


def _finish(store: Store, outcome_for: dict[str, Outcome]) -> dict[str, str]:
    """Fire one run per key, claim them all and finish each with its outcome."""
    ids = {key: store.fire_now("a", None, NOW) for key in outcome_for}
    claimed = {run.run_id: run for run in store.claim_runs("n1", 10, NOW)}
    outcomes = []
    for key, template in outcome_for.items():
        run = claimed[ids[key]]
        if template.status is RunStatus.RUNNING:  # left running, with progress only
            store.record_progress(run.run_id, run.lease, "n1", template.output, NOW)
            continue
        outcomes.append(Outcome(run.run_id, run.lease, template.status, output=template.output,
                                stderr=template.stderr, usage=template.usage))
    store.finish("n1", outcomes, NOW)
    return ids


def test_costs_stderr_progress_and_retry_link_on_the_run_pages(sqlite_store: Store) -> None:
    store = sqlite_store
    add_agent(store, "a", now=NOW, max_concurrency=10, timeout="5m")
    ids = _finish(store, {
        "unpriced": Outcome("", 0, RunStatus.SUCCEEDED, output="x",
                            usage=Usage(1200, 300, None, "no-price-model")),
        "small": Outcome("", 0, RunStatus.SUCCEEDED, output="y",
                         usage=Usage(1000, 10, 0.000156, "m")),
        "stderr": Outcome("", 0, RunStatus.SUCCEEDED, output="out", stderr="careful: disk"),
        "busy": Outcome("", 0, RunStatus.RUNNING, output="step 3 of 7"),
    })
    retry_id = store.retry_run(ids["small"], NOW)
    docs = {key: run_json(store.get_run(run_id)) for key, run_id in ids.items()}
    assert (docs["unpriced"]["unpriced"], docs["unpriced"]["cost"]) == (True, "unpriced")
    assert docs["unpriced"]["cost_usd"] is None
    assert (docs["small"]["unpriced"], docs["small"]["cost"]) == (False, "$0.000156")
    assert docs["stderr"]["cost"] is None and docs["stderr"]["unpriced"] is False
    assert format_cost(store.get_run(ids["small"])) == "$0.000156"

    async def main() -> None:
        client, token = session_client(store)
        async with client:
            await sign_in(client, token)
            listing = (await client.get("/runs")).text
            cells = re.findall(r'<td class="run-cost">([^<]*)</td>', listing)
            assert "unpriced" in cells and "$0.000156" in cells and "$0.0000" not in cells
            page = (await client.get(f"/runs/{ids['unpriced']}")).text
            assert '<dd class="run-cost">unpriced</dd>' in page
            page = (await client.get(f"/runs/{ids['stderr']}")).text
            assert "<h2>Stderr</h2>" in page and "careful: disk" in page
            page = (await client.get(f"/runs/{ids['busy']}")).text
            assert "step 3 of 7" in page
            page = (await client.get(f"/runs/{retry_id}")).text
            assert f'href="/runs/{ids["small"]}"' in page and "retry of" in page
            agents = (await client.get("/agents")).text
            assert "<td>5m</td>" in agents and "300.0 s" not in agents
            assert "+ 1 unpriced" in agents  # the day's sum leaves the unpriced run out

    asyncio.run(main())
