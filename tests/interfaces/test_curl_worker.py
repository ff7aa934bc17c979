"""The worker protocol is language neutral: a worker written only with bash and curl
(``tests/support/remote_worker.sh``) claims, beats for and completes a run of a remote agent
through a real ``agentcron serve`` process, waiting in a long poll until the run is fired."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentcron.services import Services
from agentcron.services.access import Access
from agentcron.services.agents import AgentInput
from tests.support.api_server import ApiServer, api_server
from tests.support.helpers import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SCRIPT = Path(__file__).resolve().parent.parent / "support" / "remote_worker.sh"


@pytest.fixture
def srv(pg_url: str, tmp_path: Path) -> Iterator[ApiServer]:
    with api_server(pg_url, tmp_path) as server:
        yield server


def test_a_curl_worker_claims_beats_and_completes_a_run(srv: ApiServer,
                                                         tmp_path: Path) -> None:
    agents = Services(srv.store).agents
    agents.save(agents.build(AgentInput(name="shell", kind="remote", config={}), "cli"))
    _, secret = Access(srv.store).create_token("curl", "worker", agents=["shell"])
    out = (tmp_path / "worker.out").open("wb")
    worker = subprocess.Popen(
        ["bash", str(SCRIPT)], stdout=out, stderr=subprocess.STDOUT,
        env={**os.environ, "AGENTCRON_URL": srv.base, "AGENTCRON_TOKEN": secret,
             "AGENT": "shell", "WORKER_ID": "bash-1", "ONCE": "1"})
    try:
        # The worker is (or soon will be) waiting in its claim; the run is fired now.
        wait_until(lambda: any(w.id == "bash-1" for w in srv.store.list_workers()), 30,
                   "the curl worker to claim")
        with srv.client("write") as api:
            fired = api.post("/api/v1/agents/shell/fire", json={"payload": {"x": 1}})
            assert fired.status_code in (200, 201, 202), fired.text
            run_id = fired.json()["id"]
        run = srv.wait_run(run_id, timeout=60)
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.out").read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
        out.close()
    assert run["output"] == "done by bash-1"
    assert run["node_id"] == "worker:bash-1"
    log = (tmp_path / "worker.out").read_text()
    assert '"revoked":[]' in log and '"status":"succeeded"' in log


def test_the_readme_shows_the_curl_worker_that_is_tested() -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = re.search(r"<!-- curl-worker -->\n+```bash\n(?P<body>.*?)```", readme, re.S)
    assert block is not None
    assert block.group("body") == SCRIPT.read_text()
