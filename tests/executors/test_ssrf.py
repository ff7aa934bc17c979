"""Outbound safety of http agents: the metadata address and link-local ranges are always
refused, loopback/private ranges with AGENTCRON_HTTP_DENY_PRIVATE=1, all checked after DNS
resolution; the checked address is the one connected to; redirects are not followed.

A real HTTP server on 127.0.0.1 stands in for both the agent endpoint and, through an
injected resolver, for names that resolve to it. No test sends a packet beyond loopback:
refused addresses are refused before any connect.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agentcron.executors import RunContext
from agentcron.executors.http import HttpExecutor
from agentcron.executors.netguard import guarded_client, refusal
from agentcron.models import ExecutionResult
from tests.support.http_target import Server, json_route, make_run


def run_agent(url: str, *, resolver: Any = None, deny_private: bool | None = None
              ) -> ExecutionResult:
    async def main() -> ExecutionResult:
        run = make_run({"url": url})
        client = guarded_client(resolver=resolver, deny_private=deny_private,
                                follow_redirects=False)
        executor = HttpExecutor(client)
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await client.aclose()

    return asyncio.run(main())


def resolving(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]
    return resolve


@pytest.mark.parametrize("address, deny_private, refused", [
    ("169.254.169.254", False, "metadata"),
    ("fd00:ec2::254", False, "metadata"),
    ("169.254.10.1", False, "link-local"),
    ("fe80::1", False, "link-local"),
    ("fe80::1%eth0", False, "link-local"),
    ("::ffff:169.254.169.254", False, "metadata"),
    ("127.0.0.1", False, None),
    ("10.1.2.3", False, None),
    ("192.168.1.1", False, None),
    ("127.0.0.1", True, "DENY_PRIVATE"),
    ("::1", True, "DENY_PRIVATE"),
    ("10.1.2.3", True, "DENY_PRIVATE"),
    ("172.16.0.1", True, "DENY_PRIVATE"),
    ("192.168.1.1", True, "DENY_PRIVATE"),
    ("100.64.0.1", True, "DENY_PRIVATE"),
    ("0.0.0.0", True, "DENY_PRIVATE"),
    ("::ffff:10.0.0.1", True, "DENY_PRIVATE"),
    ("93.184.215.14", True, None),
    ("2606:4700::1111", True, None),
    # Alibaba Cloud's metadata address.
    ("100.100.100.200", False, "metadata"),
    # IPv6 forms that carry an IPv4 address are judged by that address.
    ("::169.254.169.254", False, "metadata"),            # IPv4-compatible
    ("64:ff9b::a9fe:a9fe", False, "metadata"),           # NAT64 of 169.254.169.254
    ("64:ff9b::169.254.10.1", False, "link-local"),
    ("2002:a9fe:a9fe::1", False, "metadata"),            # 6to4 of 169.254.169.254
    ("2002:a9fe:0a01::", False, "link-local"),
    ("::ffff:100.100.100.200", False, "metadata"),
    ("64:ff9b::7f00:1", True, "DENY_PRIVATE"),
    ("2002:7f00:1::", True, "DENY_PRIVATE"),
    ("::10.0.0.1", True, "DENY_PRIVATE"),
    ("64:ff9b::7f00:1", False, None),
    ("64:ff9b::5db8:d70e", True, None),                  # NAT64 of a public address
])
def test_refusal_rules(address: str, deny_private: bool, refused: str | None) -> None:
    reason = refusal(address, deny_private)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_the_metadata_address_is_refused_without_retry() -> None:
    result = run_agent("http://169.254.169.254/latest/meta-data/")
    assert not result.ok and not result.retryable
    assert "169.254.169.254" in (result.error or "")
    assert "metadata" in (result.error or "")


def test_a_link_local_ipv6_literal_is_refused() -> None:
    result = run_agent("http://[fe80::1]:8080/hook")
    assert not result.ok and not result.retryable
    assert "link-local" in (result.error or "")


def test_a_name_that_resolves_to_the_metadata_address_is_refused(server: Server) -> None:
    resolver = resolving({"metadata.test": ["169.254.169.254"]})
    result = run_agent("http://metadata.test/latest/meta-data/", resolver=resolver)
    assert not result.ok and not result.retryable
    assert "metadata.test resolves to 169.254.169.254" in (result.error or "")


def test_one_denied_address_among_several_refuses_the_name(server: Server) -> None:
    port = server.base.rsplit(":", 1)[1]
    resolver = resolving({"mixed.test": ["127.0.0.1", "169.254.169.254"]})
    result = run_agent(f"http://mixed.test:{port}/agent", resolver=resolver)
    assert not result.ok and "169.254.169.254" in (result.error or "")
    assert server.requests == []  # refused before connecting to any of them


def test_localhost_is_refused_under_deny_private(server: Server,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The real system resolver: `localhost` resolves to loopback, which the env var denies."""
    server.routes["/agent"] = json_route({"output": "hi"})
    port = server.base.rsplit(":", 1)[1]
    monkeypatch.setenv("AGENTCRON_HTTP_DENY_PRIVATE", "1")
    result = run_agent(f"http://localhost:{port}/agent")
    assert not result.ok and not result.retryable
    assert "AGENTCRON_HTTP_DENY_PRIVATE=1" in (result.error or "")
    assert server.requests == []


def test_loopback_is_allowed_by_default(server: Server, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    server.routes["/agent"] = json_route({"output": "hi"})
    port = server.base.rsplit(":", 1)[1]
    monkeypatch.delenv("AGENTCRON_HTTP_DENY_PRIVATE", raising=False)
    result = run_agent(f"http://localhost:{port}/agent")
    assert result.ok and result.output == "hi"


def test_the_checked_address_is_connected_to_and_the_host_name_is_kept(server: Server
                                                                        ) -> None:
    """Resolve once, check, connect to that address: the request reaches the address the
    resolver gave, with the original name in the Host header (no second lookup that DNS
    rebinding could change)."""
    server.routes["/agent"] = json_route({"output": "via checked address"})
    port = server.base.rsplit(":", 1)[1]
    lookups: list[str] = []

    async def resolve(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["169.254.169.254"]

    result = run_agent(f"http://agent.test:{port}/agent", resolver=resolve)
    assert result.ok and result.output == "via checked address"
    assert lookups == ["agent.test"]
    assert server.requests[0].headers["Host"] == f"agent.test:{port}"


def test_a_redirect_to_the_metadata_address_is_not_followed(server: Server) -> None:
    server.routes["/agent"] = (302, {"Location": "http://169.254.169.254/latest/"}, b"")
    result = run_agent(server.url("/agent"))
    assert not result.ok and not result.retryable
    assert "redirects are not followed" in (result.error or "")
    assert [r.path for r in server.requests] == ["/agent"]


def test_the_default_executor_client_is_guarded() -> None:
    """HttpExecutor() without a client of its own builds the guarded one."""
    async def main() -> ExecutionResult:
        run = make_run({"url": "http://169.254.169.254/"})
        executor = HttpExecutor()
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await executor.aclose()

    result = asyncio.run(main())
    assert not result.ok and "metadata" in (result.error or "")
