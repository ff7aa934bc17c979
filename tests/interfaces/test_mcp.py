"""The MCP front door, driven by the official SDK's own client against real processes:
``agentcron mcp`` over stdio on a SQLite file (a real node on the same file fires what it
makes), and ``/mcp`` on a real ``agentcron serve`` on PostgreSQL over Streamable HTTP.
Tokens: what each scope may do, a token limited to agents, and no token at all."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from agentcron.mcp_server import TOOL_NAMES
from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.support.api_server import ApiServer, api_server
from tests.support.helpers import await_until
from tests.support.nodes import agent_runs
from tests.support.procs import REPO, ServeProcess

pytestmark = pytest.mark.slow

HELLO = {"kind": "python", "config": {"target": "agentcron.examples:hello"}}
#: ``bot`` lets agents schedule it a second ahead (the default guardrail is a minute).
SOON = {"min_interval": "1s"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AGENTCRON_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "src"),
                                         env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _answer(result: CallToolResult) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


def _error(result: CallToolResult) -> str:
    assert result.is_error, result.content
    text: str = result.content[0].text  # type: ignore[union-attr]
    return text


async def _succeeded_run(store: Store, agent: str, trigger_id: str) -> str:
    """Wait (on the store) until a run of ``trigger_id`` has succeeded; its id."""
    def done() -> str | None:
        return next((r.id for r in agent_runs(store, agent)
                     if r.trigger_id == trigger_id and r.status is RunStatus.SUCCEEDED), None)

    run_id: str = await await_until(done, 30, f"a run of {trigger_id} to succeed",
                                    interval=0.1)
    return run_id


# -- stdio: agentcron mcp -------------------------------------------------------------------


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[tuple[str, Services]]:
    url = f"sqlite:///{tmp_path}/mcp.db"
    store = Store(url)
    store.upgrade()
    services = Services(store)
    for name in ("bot", "other"):
        services.add_agent(services.build_agent(
            name, HELLO["kind"], HELLO["config"], scheduling=SOON if name == "bot" else None))
    yield url, services
    store.close()


@asynccontextmanager
async def stdio_session(db_url: str, token: str, log: Path) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "agentcron", "--db", db_url, "mcp"],
                                   env=_env(AGENTCRON_TOKEN=token), cwd=str(log.parent))
    with log.open("a") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(
                read, write) as session:
            await session.initialize()
            yield session


def test_stdio_lists_the_tools_and_a_trigger_it_makes_fires(
        sqlite_db: tuple[str, Services], tmp_path: Path) -> None:
    url, services = sqlite_db
    _, token = services.access.create_token("desk-agent", "schedule")
    node = ServeProcess(url, "mcp-node", tmp_path)

    async def scenario() -> None:
        async with stdio_session(url, token, tmp_path / "mcp.log") as session:
            tools = {t.name: t for t in (await session.list_tools()).tools}
            assert sorted(tools) == sorted(TOOL_NAMES)
            schema = tools["create_trigger"].input_schema
            assert schema["required"] == ["agent"]
            assert {"cron", "tz", "every", "at", "delay", "payload", "name"} <= set(
                schema["properties"])
            made = _answer(await session.call_tool(
                "create_trigger", {"agent": "bot", "delay": "1s",
                                   "payload": {"name": "stdio"}, "name": "check-soon"}))
            assert made["kind"] == "once" and made["source"] == "mcp"
            assert made["created_by"] == "mcp:desk-agent" and made["expires_at"]
            run_id = await _succeeded_run(services.store, "bot", made["id"])
            listed = _answer(await session.call_tool("list_runs", {"trigger": "check-soon"}))
            assert [r["id"] for r in listed["runs"]] == [run_id]
            shown = _answer(await session.call_tool("show_run", {"run": run_id}))
            assert shown["status"] == "succeeded"
            assert "hello, stdio" in shown["output"]
            assert shown["input_tokens"] == 12 and shown["model"] == "example-model"
            costs = _answer(await session.call_tool("cost_report", {}))
            assert [r["key"] for r in costs["rows"]] == ["bot"]

    try:
        asyncio.run(scenario())
    finally:
        node.stop()
        node.cleanup()


def test_stdio_errors_name_the_field_and_the_fix_and_write_nothing(
        sqlite_db: tuple[str, Services], tmp_path: Path) -> None:
    url, services = sqlite_db
    _, token = services.access.create_token("desk-agent", "schedule")

    async def scenario() -> None:
        async with stdio_session(url, token, tmp_path / "mcp.log") as session:
            bad_cron = _error(await session.call_tool(
                "create_trigger", {"agent": "bot", "cron": "61 * * * *"}))
            assert "cron: minute field '61' is out of range" in bad_cron
            assert "e.g." in bad_cron
            both = _error(await session.call_tool(
                "create_trigger", {"agent": "bot", "every": "5m", "cron": "* * * * *"}))
            assert "schedule:" in both and "give exactly one of" in both
            no_unit = _error(await session.call_tool(
                "create_trigger", {"agent": "bot", "every": "5"}))
            assert "every:" in no_unit
            missing = _error(await session.call_tool("show_trigger", {"trigger": "nope"}))
            assert "trigger 'nope' not found" in missing
            # The token is checked at every call: revoked, it stops working at once.
            await asyncio.to_thread(services.access.revoke_token, "desk-agent")
            revoked = _error(await session.call_tool("list_agents", {}))
            assert "invalid or revoked token" in revoked

    asyncio.run(scenario())
    assert services.triggers.all() == []


def test_stdio_a_token_limited_to_an_agent_sees_and_acts_on_it_only(
        sqlite_db: tuple[str, Services], tmp_path: Path) -> None:
    url, services = sqlite_db
    theirs = services.add_trigger(TriggerInput(agent="other", cron="0 9 * * *"))
    _, token = services.access.create_token("bot-only", "schedule", agents=["bot"])

    async def scenario() -> None:
        async with stdio_session(url, token, tmp_path / "mcp.log") as session:
            agents = _answer(await session.call_tool("list_agents", {}))
            assert [a["name"] for a in agents["agents"]] == ["bot"]
            refused = _error(await session.call_tool(
                "create_trigger", {"agent": "other", "every": "1h"}))
            assert "may only act on agents bot, not 'other'" in refused
            assert "not 'other'" in _error(await session.call_tool(
                "fire_agent", {"agent": "other"}))
            assert "not 'other'" in _error(await session.call_tool(
                "pause_trigger", {"trigger": theirs.id}))
            assert _answer(await session.call_tool("list_triggers", {}))["triggers"] == []
            made = _answer(await session.call_tool(
                "create_trigger", {"agent": "bot", "cron": "0 9 * * MON", "tz": "Europe/Paris"}))
            listed = _answer(await session.call_tool("list_triggers", {}))
            assert [t["id"] for t in listed["triggers"]] == [made["id"]]

    asyncio.run(scenario())
    assert services.get_trigger(theirs.id).paused is False


def test_stdio_a_read_token_reads_but_cannot_change(
        sqlite_db: tuple[str, Services], tmp_path: Path) -> None:
    url, services = sqlite_db
    _, token = services.access.create_token("reader", "read")

    async def scenario() -> None:
        async with stdio_session(url, token, tmp_path / "mcp.log") as session:
            assert len(_answer(await session.call_tool("list_agents", {}))["agents"]) == 2
            for tool, args in (("create_trigger", {"agent": "bot", "every": "1h"}),
                               ("fire_agent", {"agent": "bot"})):
                refused = _error(await session.call_tool(tool, args))
                assert "has scope 'read'" in refused and "--scope schedule" in refused

    asyncio.run(scenario())
    assert services.triggers.all() == []


def test_stdio_refuses_to_start_without_a_live_token_mcp_takes(
        sqlite_db: tuple[str, Services], tmp_path: Path) -> None:
    url, services = sqlite_db
    _, worker = services.access.create_token("w", "worker", agents=["bot"])
    _, revoked = services.access.create_token("gone", "schedule")
    services.access.revoke_token("gone")

    def start(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agentcron", "--db", url, "mcp"],
                              env=_env(**env), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, cwd=tmp_path)

    missing = start()
    assert missing.returncode == 2
    assert "AGENTCRON_TOKEN: is not set" in missing.stderr
    assert "Traceback" not in missing.stderr
    for value, expected in ((revoked, "invalid or revoked token"),
                            ("act_" + "x" * 43, "invalid or revoked token"),
                            (worker, "scope 'worker', which cannot use MCP")):
        answer = start(AGENTCRON_TOKEN=value)
        assert answer.returncode == 1, answer.stderr
        assert expected in answer.stderr
        assert "Traceback" not in answer.stderr


# -- HTTP: /mcp on serve --------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(pg_url, tmp_path_factory.mktemp("mcp")) as server:
        with server.client() as admin:
            for name in ("bot", "other"):
                body = {**HELLO, "scheduling": SOON} if name == "bot" else HELLO
                assert admin.put(f"/api/v1/agents/{name}", json=body).status_code == 200
        yield server


def _token(srv: ApiServer, name: str, scope: str, agents: list[str] | None = None) -> str:
    from agentcron.services.access import Access

    access = Access(srv.store)
    if any(t.name == name for t in access.list_tokens()):
        access.revoke_token(name)
    return access.create_token(name, scope, agents=agents)[1]


@asynccontextmanager
async def http_session(srv: ApiServer, token: str) -> AsyncIterator[ClientSession]:
    client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                timeout=httpx2.Timeout(30))
    async with client, streamable_http_client(f"{srv.base}/mcp", http_client=client) as (
            read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@pytest.mark.postgres
def test_http_lists_the_tools_and_a_trigger_it_makes_fires(srv: ApiServer) -> None:
    token = _token(srv, "http-agent", "schedule")

    async def scenario() -> None:
        async with http_session(srv, token) as session:
            names = sorted(t.name for t in (await session.list_tools()).tools)
            assert names == sorted(TOOL_NAMES)
            made = _answer(await session.call_tool(
                "create_trigger", {"agent": "bot", "delay": "1s", "payload": {"name": "web"}}))
            run_id = await _succeeded_run(srv.store, "bot", made["id"])
            shown = _answer(await session.call_tool("show_run", {"run": run_id}))
            assert shown["status"] == "succeeded" and "hello, web" in shown["output"]
            bad = _error(await session.call_tool(
                "create_trigger", {"agent": "bot", "cron": "* * * *"}))
            assert bad.count("cron:") == 1

    asyncio.run(scenario())
    with srv.client("read") as reader:
        shown = reader.get("/api/v1/triggers", params={"created_by": "mcp:"}).json()
    assert {t["created_by"] for t in shown["triggers"]} == {"mcp:http-agent"}


@pytest.mark.postgres
def test_http_limits_a_token_to_its_agents_and_a_read_token_to_reading(
        srv: ApiServer) -> None:
    limited = _token(srv, "bot-only", "schedule", agents=["bot"])
    reader = srv.tokens["read"]

    async def scenario() -> None:
        async with http_session(srv, limited) as session:
            assert "not 'other'" in _error(await session.call_tool(
                "create_trigger", {"agent": "other", "every": "1h"}))
            agents = _answer(await session.call_tool("list_agents", {}))
            assert [a["name"] for a in agents["agents"]] == ["bot"]
        async with http_session(srv, reader) as session:
            assert "has scope 'read'" in _error(await session.call_tool(
                "create_trigger", {"agent": "bot", "every": "1h"}))
            assert _answer(await session.call_tool("list_runs", {"limit": 1}))["runs"] \
                is not None

    asyncio.run(scenario())


def _raw(srv: ApiServer, method: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Send only a request's head, declaring a body (under the node's 1 MiB limit) that
    never comes: an answer means the server answered without reading the body (reading
    it would wait for the body, and the test would time out)."""
    port = int(srv.base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (f"{method} /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/json\r\nAccept: application/json\r\n"
                f"Content-Length: {512 * 1024}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    head_text, _, body = answer.partition(b"\r\n\r\n")
    return int(head_text.split(b" ")[1]), json.loads(body)


@pytest.mark.postgres
def test_http_without_a_live_token_is_refused_before_the_body_is_read(
        srv: ApiServer) -> None:
    status, body = _raw(srv, "POST", {})
    assert status == 401 and body["detail"].startswith("missing credentials")
    status, body = _raw(srv, "POST", {"Authorization": "Bearer act_" + "y" * 43})
    assert status == 401 and body["detail"] == "invalid or revoked token"
    worker = _token(srv, "w", "worker", agents=["bot"])
    status, body = _raw(srv, "POST", {"Authorization": f"Bearer {worker}"})
    assert status == 403 and "cannot use MCP" in body["detail"]
    answer = httpx.get(f"{srv.base}/mcp", timeout=10)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.postgres
def test_a_schedule_token_is_for_mcp_only(srv: ApiServer) -> None:
    token = _token(srv, "sched", "schedule")
    answer = httpx.get(f"{srv.base}/api/v1/agents", timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 403
    assert "may only be used over MCP" in answer.json()["detail"]


def test_tokens_create_takes_agents_for_a_schedule_token(cli: Any) -> None:
    made = cli("tokens", "create", "s", "--scope", "schedule", "--agents", "b,a", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["agents"] == ["a", "b"]
    unlimited = cli("tokens", "create", "s2", "--scope", "schedule", "--json")
    assert unlimited.exit_code == 0 and "agents" not in json.loads(unlimited.stdout)
    refused = cli("tokens", "create", "r", "--scope", "read", "--agents", "a")
    assert refused.exit_code == 2
    assert "only --scope worker or schedule takes --agents" in refused.output
    capped = cli("tokens", "create", "s3", "--scope", "schedule", "--max-live", "5", "--json")
    assert capped.exit_code == 0 and json.loads(capped.stdout)["max_live"] == 5
    listed = {t["name"]: t["max_live"] for t in json.loads(cli("tokens", "list", "--json").stdout)}
    assert listed == {"s": None, "s2": None, "s3": 5}
    table = cli("tokens", "list").stdout
    assert "MAX LIVE" in table
    for args, says in ((("--scope", "read", "--max-live", "5"), "only --scope schedule, write"),
                       (("--scope", "schedule", "--max-live", "-1"), "max_live: invalid -1")):
        bad = cli("tokens", "create", "x", *args)
        assert bad.exit_code == 2 and says in bad.output, bad.output


@pytest.mark.postgres
def test_http_answers_behind_a_proxy_that_keeps_its_public_host(srv: ApiServer) -> None:
    """The node serves on 127.0.0.1; a reverse proxy in front of it sends its own public
    Host and Origin. The bearer token is the guard, so the call is answered."""
    token = _token(srv, "proxied", "schedule", agents=["bot"])
    answer = httpx.post(
        f"{srv.base}/mcp", timeout=30,
        headers={"Authorization": f"Bearer {token}", "Host": "agentcron.example.com",
                 "Origin": "https://agentcron.example.com",
                 "Accept": "application/json, text/event-stream",
                 "MCP-Protocol-Version": "2025-06-18"},
        json={"jsonrpc": "2.0", "id": 7, "method": "tools/call",
              "params": {"name": "list_agents", "arguments": {}}})
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert result["isError"] is False
    assert [a["name"] for a in result["structuredContent"]["agents"]] == ["bot"]


GUARDED = {"min_interval": "10m", "max_live": 1, "expires_after": "2d",
           "require_approval": True}


async def _hit_each_guardrail(session: ClientSession, agent: str, token_name: str) -> None:
    """Every guardrail of an agent whose policy is ``GUARDED``, through ``create_trigger``:
    each refusal names the setting and what to change; what is made is pending."""
    async def create(**args: Any) -> CallToolResult:
        return await session.call_tool("create_trigger", {"agent": agent, **args})

    too_often = _error(await create(every="1m"))
    assert "scheduling:" in too_often and "min_interval" in too_often
    assert f"[agents.{agent}.scheduling] min_interval" in too_often
    too_soon = _error(await create(delay="5m"))
    assert "min_interval" in too_soon
    made = _answer(await create(every="1h", name=f"{agent}-hourly"))
    assert made["approval"] == "pending" and made["paused"] is True
    assert made["created_by"] == f"mcp:{token_name}"
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(days=1) < expires - datetime.now(UTC) <= timedelta(days=2)
    # Pending approval: the agent cannot resume it itself.
    assert "approve" in _error(await session.call_tool(
        "resume_trigger", {"trigger": f"{agent}-hourly"}))
    full = _error(await create(every="2h", name=f"{agent}-second"))
    assert "max_live" in full and "delete one" in full


def test_stdio_each_guardrail_refuses_with_a_reason_a_model_can_act_on(
        sqlite_db: tuple[str, Services], tmp_path: Path) -> None:
    url, services = sqlite_db
    services.add_agent(services.build_agent("guarded", HELLO["kind"], HELLO["config"],
                                            scheduling=GUARDED))
    _, token = services.access.create_token("desk-agent", "schedule")

    async def scenario() -> None:
        async with stdio_session(url, token, tmp_path / "mcp.log") as session:
            await _hit_each_guardrail(session, "guarded", "desk-agent")

    asyncio.run(scenario())
    made = services.store.list_triggers(agent="guarded")
    assert [(t.name, t.approval) for t in made] == [("guarded-hourly", "pending")]


@pytest.mark.postgres
def test_http_each_guardrail_refuses_with_a_reason_a_model_can_act_on(
        srv: ApiServer) -> None:
    with srv.client() as admin:
        assert admin.put("/api/v1/agents/guarded-web",
                         json={**HELLO, "scheduling": GUARDED}).status_code == 200
    token = _token(srv, "web-agent", "schedule")

    async def scenario() -> None:
        async with http_session(srv, token) as session:
            await _hit_each_guardrail(session, "guarded-web", "web-agent")

    asyncio.run(scenario())
    made = srv.store.list_triggers(agent="guarded-web")
    assert [(t.name, t.approval) for t in made] == [("guarded-web-hourly", "pending")]


@pytest.mark.postgres
def test_http_takes_a_trigger_through_its_life_and_fires_an_agent(srv: ApiServer) -> None:
    """show, pause, resume and delete a trigger it made, list by who made it, and fire an
    agent now: each tool's answer, and the store after it."""
    token = _token(srv, "life-agent", "schedule")
    store = srv.store

    async def scenario() -> None:
        async with http_session(srv, token) as session:
            async def call(tool: str, **args: Any) -> Any:
                return _answer(await session.call_tool(tool, args))

            made = await call("create_trigger", agent="bot", every="1h", name="life")
            shown = await call("show_trigger", trigger="life")
            assert (shown["id"], shown["created_by"]) == (made["id"], "mcp:life-agent")
            mine = await call("list_triggers", created_by="mcp:life-agent")
            assert [t["id"] for t in mine["triggers"]] == [made["id"]]
            assert (await call("list_triggers", created_by="cli"))["triggers"] == []
            assert (await call("pause_trigger", trigger="life"))["paused"] is True
            assert store.get_trigger(made["id"]).paused
            assert (await call("resume_trigger", trigger=made["id"]))["paused"] is False
            assert not store.get_trigger(made["id"]).paused
            fired = await call("fire_agent", agent="bot", payload={"name": "now"})
            run = await await_until(
                lambda: (lambda r: r if r.status is RunStatus.SUCCEEDED else None)(
                    store.get_run(fired["id"])), 30, "the fired run to succeed", interval=0.1)
            assert "hello, now" in (run.output or "")
            assert (await call("delete_trigger", trigger="life")) == {
                "id": made["id"], "deleted": True}
            assert "life" not in [t.name for t in store.list_triggers(agent="bot")]

    asyncio.run(scenario())


def _readme_config(kind: str) -> dict[str, Any]:
    """The README's MCP client configuration for ``kind`` (stdio or http): its one server."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- mcp-config:{kind} -->\n+```json\n(.*?)```", text, re.S)
    assert found is not None, f"no <!-- mcp-config:{kind} --> block in the README"
    server: dict[str, Any] = json.loads(found.group(1))["mcpServers"]["agentcron"]
    return server


def test_the_readme_s_stdio_client_configuration_works_as_written(
        sqlite_db: tuple[str, Services], tmp_path: Path) -> None:
    """Launched exactly as the README's desktop configuration says (its command, args and
    environment, with a real token and database put in), the server answers the SDK's
    client."""
    url, services = sqlite_db
    _, token = services.access.create_token("desk-config", "schedule")
    config = _readme_config("stdio")
    env = dict(config["env"])
    assert set(env) == {"AGENTCRON_TOKEN", "AGENTCRON_DATABASE_URL"}
    env.update(AGENTCRON_TOKEN=token, AGENTCRON_DATABASE_URL=url)
    command = shutil.which(config["command"], path=str(Path(sys.executable).parent))
    assert command is not None, config["command"]
    params = StdioServerParameters(command=command, args=config["args"], env=_env(**env),
                                   cwd=str(tmp_path))

    async def scenario() -> list[str]:
        with (tmp_path / "mcp.log").open("a") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(
                    read, write) as session:
                await session.initialize()
                agents = _answer(await session.call_tool("list_agents", {}))
                return sorted(a["name"] for a in agents["agents"])

    assert asyncio.run(scenario()) == ["bot", "other"]


@pytest.mark.postgres
def test_the_readme_s_http_client_configuration_works_as_written(srv: ApiServer) -> None:
    config = _readme_config("http")
    assert config["type"] == "http" and config["url"].endswith("/mcp")
    token = _token(srv, "http-config", "schedule")
    headers = {k: v.replace("act_...", token) for k, v in config["headers"].items()}
    url = srv.base + "/" + config["url"].split("/", 3)[3]  # the README's path, this node

    async def scenario() -> list[str]:
        client = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30))
        async with client, streamable_http_client(url, http_client=client) as (
                read, write), ClientSession(read, write) as session:
            await session.initialize()
            return sorted(t.name for t in (await session.list_tools()).tools)

    assert asyncio.run(scenario()) == sorted(TOOL_NAMES)

