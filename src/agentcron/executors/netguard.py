"""Where ``http`` agents may connect: a guard against server-side request forgery.

An http agent's URL is typed by a user, so a node must not be steered into its cloud's
metadata service or its own private network. The guard runs in the HTTP client's network
layer, after DNS resolution and at connect time:

1. resolve the host (``Resolver``, injectable for tests);
2. check every address it resolves to: the metadata addresses (169.254.169.254,
   100.100.100.200, fd00:ec2::254) and link-local ranges (169.254.0.0/16, fe80::/10) are
   always refused; with ``AGENTCRON_HTTP_DENY_PRIVATE=1`` every address that is not
   globally routable (loopback, private, shared, unspecified, reserved) is refused too.
   An IPv6 address that embeds an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible
   ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by the embedded
   IPv4 address, since that is where the packets end up;
3. connect to a checked address, never to the name again, so a DNS answer that changes
   between the check and the connect (rebinding) cannot slip through. The URL, the
   ``Host`` header and TLS SNI/certificate checks keep the original host name.

A refused connection raises ``OutboundAddressDenied``; the executor fails the run without
retry and says which address was refused and why. Redirects are never followed (the
executor's rule), so a public URL cannot bounce the request to a refused one either.

Every agent kind that makes requests (http and llm) uses ``guarded_client``. Proxy
environment variables (``HTTPS_PROXY`` ...) are ignored; a proxy is used only when set for
agentcron explicitly with ``AGENTCRON_HTTP_PROXY`` (then the guard checks the proxy's
address, and what the proxy reaches is the proxy's policy).
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
PROXY_ENV = "AGENTCRON_HTTP_PROXY"
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"),
                      ipaddress.ip_address("100.100.100.200"),
                      ipaddress.ip_address("fd00:ec2::254")})
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))


class OutboundAddressDenied(Exception):
    """An http agent's host resolved to an address agentcron refuses to connect to."""


def deny_private_from_env(environ: dict[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(DENY_PRIVATE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def refusal(address: str, deny_private: bool) -> str | None:
    """Why ``address`` is refused, or None when it may be connected to."""
    ip = embedded_ipv4(ipaddress.ip_address(address.split("%", 1)[0]))
    if ip in METADATA:
        return "the cloud metadata address is always refused"
    if any(ip in net for net in LINK_LOCAL):
        return "link-local addresses are always refused"
    if deny_private and not ip.is_global:
        return (f"a loopback/private/non-global address, refused because "
                f"{DENY_PRIVATE_ENV}=1")
    return None


def embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4), else ``ip``.

    ``::`` and ``::1`` are IPv4-compatible in form but are the IPv6 unspecified and loopback
    addresses, so they are judged as themselves (both are non-global either way).
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in NAT64:
        return low32
    if ip in IPV4_COMPATIBLE and int(ip) > 1:
        return low32
    return ip


def proxy_from_env(environ: dict[str, str] | None = None) -> str | None:
    """The proxy URL set for agentcron (``AGENTCRON_HTTP_PROXY``), or None."""
    value = (os.environ if environ is None else environ).get(PROXY_ENV, "").strip()
    return value or None


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
    """An ``httpx.AsyncClient`` whose every connection goes through the guard, never follows
    redirects, and ignores the usual proxy environment variables (a proxy would make the
    checked address the proxy's); ``AGENTCRON_HTTP_PROXY`` sets a proxy explicitly."""
    proxy = proxy_from_env()
    transport = httpx.AsyncHTTPTransport(trust_env=False, proxy=proxy)
    pool = transport._pool
    pool._network_backend = GuardedBackend(
        pool._network_backend, resolver or system_resolver,
        deny_private_from_env() if deny_private is None else deny_private)
    client_options["follow_redirects"] = False
    return httpx.AsyncClient(transport=transport, trust_env=False, **client_options)
