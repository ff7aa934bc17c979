"""Where ``http`` agents may connect: a guard against server-side request forgery.

An http agent's URL is typed by a user, so a node must not be steered into its cloud's
metadata service or its own private network. The guard runs in the HTTP client's network
layer, after DNS resolution and at connect time:

1. resolve the host (``Resolver``, injectable for tests);
2. check every address it resolves to: the metadata addresses (169.254.169.254,
   fd00:ec2::254) and link-local ranges (169.254.0.0/16, fe80::/10, and IPv4-mapped forms)
   are always refused; with ``AGENTCRON_HTTP_DENY_PRIVATE=1`` every address that is not
   globally routable (loopback, private, shared, unspecified, reserved) is refused too;
3. connect to a checked address, never to the name again, so a DNS answer that changes
   between the check and the connect (rebinding) cannot slip through. The URL, the
   ``Host`` header and TLS SNI/certificate checks keep the original host name.

A refused connection raises ``OutboundAddressDenied``; the executor fails the run without
retry and says which address was refused and why. Redirects are never followed (the
executor's rule), so a public URL cannot bounce the request to a refused one either.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

DENY_PRIVATE_ENV = "AGENTCRON_HTTP_DENY_PRIVATE"
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"),
                      ipaddress.ip_address("fd00:ec2::254")})
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


class OutboundAddressDenied(Exception):
    """An http agent's host resolved to an address agentcron refuses to connect to."""


def deny_private_from_env(environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(DENY_PRIVATE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def refusal(address: str, deny_private: bool) -> str | None:
    """Why ``address`` is refused, or None when it may be connected to."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA:
        return "the cloud metadata address is always refused"
    if any(ip in net for net in LINK_LOCAL):
        return "link-local addresses are always refused"
    if deny_private and not ip.is_global:
        return (f"a loopback/private/non-global address, refused because "
                f"{DENY_PRIVATE_ENV}=1")
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (IP literals map to
    themselves)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the checks above in ``connect_tcp``."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, resolver: Resolver,
                 deny_private: bool) -> None:
        self.inner = inner
        self.resolver = resolver
        self.deny_private = deny_private

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.resolver(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        if not addresses:
            raise httpcore.ConnectError(f"{host!r} resolves to no address")
        for address in addresses:
            why = refusal(address, self.deny_private)
            if why is not None:
                shown = host if host == address else f"{host} resolves to {address}:"
                raise OutboundAddressDenied(f"refused to connect to {shown} {why}")
        last: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(address, port, timeout, local_address,
                                                    socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise OutboundAddressDenied("unix sockets are not allowed for http agents")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def guarded_client(*, resolver: Resolver | None = None, deny_private: bool | None = None,
                   **client_options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose every connection goes through the guard. It ignores
    proxy environment variables (a proxy would make the checked address the proxy's)."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    pool = transport._pool
    pool._network_backend = GuardedBackend(
        pool._network_backend, resolver or system_resolver,
        deny_private_from_env() if deny_private is None else deny_private)
    return httpx.AsyncClient(transport=transport, trust_env=False, **client_options)
