"""The chaos suite (``python -m chaos``) in its short form: every scenario storms for about
30 s (the soak 45 s) against real ``agentcron serve`` processes, on a PostgreSQL cluster of
its own that it creates, restarts and stops (never the one other tests use), and must come
out with 0 duplicate fires, 0 missing fires and 0 lost runs. It uses the cluster
``15/chaos_ci`` on port 5445, apart from the one long runs by hand use. The long form and its
last results are in the README's "Fault injection" section and ``chaos/results/``.

``partition``, ``slow-link`` and ``flaky-link`` give each node a network namespace of its
own; where this machine cannot make them (not root, no ``iptables``) they are skipped
saying why, and fail instead when ``AGENTCRON_REQUIRE_NETNS=1`` (CI sets it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chaos import hosts
from chaos.pg import Cluster
from chaos.scenarios import SCENARIOS
from tests.support.procs import REPO

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SHORT_FORM_S = {"kill": 30, "pause": 30, "database": 30, "skew": 30, "deploy": 30, "soak": 45,
                "partition": 35, "slow-link": 30, "flaky-link": 30, "worker-partition": 35}


def test_every_scenario_has_a_short_form() -> None:
    assert set(SHORT_FORM_S) == set(SCENARIOS)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario", list(SHORT_FORM_S))
def test_short_form_verdict(scenario: str, tmp_path: Path) -> None:
    problem = Cluster.check_tools()
    if problem is not None:
        if os.environ.get("AGENTCRON_REQUIRE_PG") == "1":
            pytest.fail(f"the chaos suite needs its own PostgreSQL cluster: {problem}")
        pytest.skip(f"the chaos suite needs its own PostgreSQL cluster: {problem}")
    if SCENARIOS[scenario].network.hosts and (problem := hosts.check()) is not None:
        if os.environ.get("AGENTCRON_REQUIRE_NETNS") == "1":
            pytest.fail(f"{scenario} needs network namespaces: {problem}")
        pytest.skip(f"{scenario} needs network namespaces: {problem}")
    out = tmp_path / f"{scenario}.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO),
                                         env.get("PYTHONPATH", "")])
    env["CHAOS_WORKDIR"] = str(tmp_path / "work")
    # A cluster of its own too, so a long chaos run by hand (on 15/chaos, 5444) never makes
    # CI wait for its lock.
    env.setdefault("CHAOS_PG_CLUSTER", "chaos_ci")
    env.setdefault("CHAOS_PG_PORT", "5445")
    done = subprocess.run(
        [sys.executable, "-m", "chaos", scenario, "--duration", str(SHORT_FORM_S[scenario]),
         "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=570, check=False)
    report = f"{done.stdout}\n{done.stderr[-4000:]}"
    assert out.exists(), f"no results written:\n{report}"
    result = json.loads(out.read_text())
    figures = result["figures"]
    print(f"\n{result['verdict_line']} ({result['wall_time_s']}s)")
    assert figures["fires_expected"] > 0
    assert (figures["duplicate_fires"], figures["missing_fires"], figures["runs_lost"]) == (
        0, 0, 0), f"{result['verdict_line']}\n{figures['lost_examples'][:5]}\n{report}"
    assert (figures["early_fires"], figures["unexpected_fires"]) == (0, 0), report
    assert figures["fires_seen"] == figures["fires_expected"]
    assert result["failures"] == [], f"{result['failures']}\n{report}"
    assert result["verdict"] == "PASS" and done.returncode == 0, report
    # The README's table row for it comes from that JSON.
    from chaos import markdown

    [row] = [line for line in markdown.render(tmp_path, [scenario]).splitlines()
             if line.startswith(f"| {scenario} |")]
    assert f"| {figures['fires_expected']:,} | {figures['fires_seen']:,} | 0 | 0 | 0 | 0 |" in row
    assert row.endswith("| PASS |"), row
