"""schemathesis over /openapi.json against a real ``agentcron serve`` on PostgreSQL: no
5xx, and every response conforms to the schema (status code, content type, body).

The node under fuzz runs with an empty PATH (a fuzzed command agent finds no program to
run) and AGENTCRON_HTTP_DENY_PRIVATE=1. The run is bounded: a fixed seed, a few examples
per operation. Its summary, JUnit and NDJSON reports go to test-output/schemathesis/.

Hostile values are in the database while it is fuzzed (written straight into the tables: a
payload nested 300 deep, a 3 MiB one, a lone surrogate), so every read is also a read of
them; and every operation that takes a body is sent each hostile JSON class by hand.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agentcron.store.schema import metadata
from tests.support.api_server import ApiServer, api_server
from tests.support.procs import REPO

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

OUT = REPO / "test-output" / "schemathesis"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    tmp = tmp_path_factory.mktemp("fuzz")
    empty = tmp / "empty-path"
    empty.mkdir()
    env = {"PATH": str(empty), "AGENTCRON_HTTP_DENY_PRIVATE": "1"}
    with api_server(pg_url, tmp, "fuzz-node", env=env) as server:
        with server.client("admin") as admin:
            admin.put("/api/v1/agents/fuzz", json={
                "kind": "python", "config": {"target": "agentcron.examples:hello"}})
            admin.post("/api/v1/triggers", json={"agent": "fuzz", "cron": "*/5 * * * *"})
            admin.post("/api/v1/triggers", json={"agent": "fuzz", "webhook": True})
            admin.post("/api/v1/agents/fuzz/fire", json={"payload": {"name": "fuzz"}})
            plant_hostile_values(server, admin)
        yield server


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


# What PostgreSQL's json type lets in when written straight to it (it refuses NaN).
STORED_HOSTILE = [nested(300), {"blob": "x" * (3 * 1024 * 1024)}, {"t": "\ud800"}]
# Every hostile JSON class, as a body's text.
HOSTILE_BODIES = ["[" * 65 + "]" * 65, "[" * 100_000 + "]" * 100_000, '{"t": "\\ud800"}',
                  '{"payload": {"x": NaN}}', '{"payload": [Infinity]}',
                  '{"payload": ' + "[" * 200 + "]" * 200 + "}",
                  '{"payload": {"t": "\\udfff"}}',
                  json.dumps({"payload": {"blob": "x" * (300 * 1024)}})]


def plant_hostile_values(server: ApiServer, admin: httpx.Client) -> None:
    triggers, runs = metadata.tables["triggers"], metadata.tables["runs"]
    for value in STORED_HOSTILE:
        created = admin.post("/api/v1/triggers", json={"agent": "fuzz", "every": "1h",
                                                       "paused": True}).json()
        run_id = admin.post("/api/v1/agents/fuzz/fire", json={}).json()["id"]
        server.wait_run(run_id)
        with server.store.engine.begin() as conn:
            conn.execute(triggers.update().where(triggers.c.id == created["id"])
                         .values(payload=value))
            conn.execute(runs.update().where(runs.c.id == run_id)
                         .values(payload=value, output="o" * (2 * 1024 * 1024)))


def responses(ndjson: Path) -> tuple[int, Counter[int]]:
    """(HTTP calls made, how many got each status) from schemathesis' NDJSON events."""
    statuses: Counter[int] = Counter()
    for line in ndjson.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if not finished:
            continue
        for interaction in finished["recorder"].get("interactions", {}).values():
            status = (interaction.get("response") or {}).get("status_code")
            if status is not None:
                statuses[int(status)] += 1
    return sum(statuses.values()), statuses


def test_schemathesis_finds_no_server_error_and_no_schema_violation(fuzzed: ApiServer
                                                                    ) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in [*OUT.glob("*.xml"), *OUT.glob("*.ndjson")]:
        old.unlink()
    schema_url = f"{fuzzed.base}/openapi.json"
    operations = len([m for p in httpx.get(schema_url).json()["paths"].values() for m in p])
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", schema_url,
        "--header", f"Authorization: Bearer {fuzzed.tokens['admin']}",
        "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--seed", "4242",
        "--phases", "examples,coverage,fuzzing", "--workers", "1",
        "--generation-database", "none", "--request-timeout", "20", "--no-color",
        "--report", "junit,ndjson", "--report-dir", str(OUT),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=OUT)
    output = done.stdout + done.stderr
    assert fuzzed.tokens["admin"] not in output  # schemathesis sanitises the header
    (OUT / "summary.txt").write_text(output)
    assert done.returncode == 0, output[-6000:]

    cases = ET.parse(next(OUT.glob("*.xml"))).getroot().iter("testcase")
    tested = [case.get("name") for case in cases]
    assert len(tested) == operations, (tested, operations)
    match = re.search(r"(\d+) generated", output)
    assert match is not None and int(match.group(1)) >= 3 * operations, output[-2000:]
    calls, statuses = responses(next(OUT.glob("*.ndjson")))
    assert calls >= 3 * operations and not any(s >= 500 for s in statuses)
    covered = (f"schemathesis: {len(tested)} operations, {calls} calls, statuses "
               f"{dict(sorted(statuses.items()))}, 0 failures\n")
    (OUT / "summary.txt").write_text(covered + output)
    print(covered)
    log = Path(fuzzed.proc.log_path).read_text(errors="replace")
    assert "api_unexpected_error" not in log


def test_every_body_taking_operation_refuses_hostile_json_without_a_server_error(
        fuzzed: ApiServer) -> None:
    schema = httpx.get(f"{fuzzed.base}/openapi.json").json()
    with fuzzed.client("admin") as admin:
        # The fuzzer may have deleted what the fixture made: make the targets again.
        admin.put("/api/v1/agents/hostile", json={
            "kind": "python", "config": {"target": "agentcron.examples:hello"}})
        trigger = admin.post("/api/v1/triggers", json={"agent": "hostile", "every": "1h",
                                                       "paused": True}).json()
        run = admin.post("/api/v1/agents/hostile/fire", json={}).json()
        ids = {"name": "hostile", "trigger_id": trigger["id"], "run_id": run["id"],
               "worker_id": "hostile-worker"}
        sent = 0
        for path, methods in schema["paths"].items():
            for method, operation in methods.items():
                if "requestBody" not in operation:
                    continue
                url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
                for body in HOSTILE_BODIES:
                    answer = admin.request(method, url, content=body.encode(),
                                           headers={"content-type": "application/json"})
                    assert answer.status_code < 500, (method, path, body[:80], answer.text)
                    assert answer.status_code in (400, 401, 403, 404, 409, 413, 422), (
                        method, path, body[:80], answer.status_code, answer.text[:300])
                    sent += 1
    assert sent >= 3 * len(HOSTILE_BODIES)
