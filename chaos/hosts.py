"""Nodes on hosts of their own: network namespaces joined by a bridge, so a scenario can
cut, thin or slow one node's link to the database while the others carry on.

The root namespace gets a bridge at ``10.231.<net>.1/24`` (``<net>`` is the cluster's port
modulo 256, so the CI cluster and the one long runs use never share a network); node ``i``
runs in namespace ``ac<port>n<i>``, at ``10.231.<net>.<10 + i>`` on a veth pair whose other
end is on the bridge. The suite's PostgreSQL cluster and the counting receiver listen on
the bridge address as well as loopback. Nothing is routed anywhere else: the namespaces
have no default route, so a node can reach the suite's own addresses and nothing more.

Faults are ``iptables`` rules inside one node's namespace, so they touch that node alone:

- ``drop``: its packets to and from the database port vanish. Connections hang until TCP
  gives up (the dangerous case: the node cannot tell a slow database from a gone one).
- ``refuse``: its packets to the database port are answered with a TCP reset, and
  connections fail at once.
- ``loss``: a share of all its packets is dropped at random, in both directions; TCP
  retransmits them.

Everything is set up and torn down by the suite (as root); ``check`` says why a machine
cannot, and a scenario's leftovers from an earlier run that was killed are removed first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any


class HostsError(RuntimeError):
    pass


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise HostsError(f"{' '.join(args)} exited {done.returncode}: "
                         f"{(done.stderr or done.stdout).strip()}")
    return done


def check() -> str | None:
    """Why this machine cannot give nodes hosts of their own, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian's {package})"
    probe = "acprobe"
    _run("ip", "netns", "del", probe, check=False)
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {(made.stderr or made.stdout).strip()}"
    try:
        rules = _run("ip", "netns", "exec", probe, "iptables", "-S", check=False)
        if rules.returncode != 0:
            return f"iptables does not work in a namespace: {rules.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


@dataclass(frozen=True)
class Network:
    """Where the nodes live: ``hosts`` gives each a network namespace of its own
    (``chaos.hosts``); ``delay_ms``, ``jitter_ms`` put a slow link (``chaos.delay``) between
    every node and the database."""

    hosts: bool = False
    delay_ms: float = 0.0
    jitter_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"hosts": self.hosts, "delay_ms_each_way": self.delay_ms,
                "jitter_ms": self.jitter_ms}


@dataclass
class Hosts:
    """The bridge and one namespace per node, for the cluster listening on ``db_port``."""

    db_port: int
    names: list[str] = field(default_factory=list)

    @property
    def net(self) -> int:
        return self.db_port % 256

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge: where the database and the receiver
        listen for the nodes."""
        return f"10.231.{self.net}.1"

    @property
    def subnet(self) -> str:
        return f"10.231.{self.net}.0/24"

    @property
    def bridge(self) -> str:
        return f"ac{self.db_port}br"

    def namespace(self, index: int) -> str:
        return f"ac{self.db_port}n{index}"

    def setup(self) -> None:
        self.teardown()
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def add(self, index: int) -> str:
        """Make node ``index``'s namespace, joined to the bridge; returns its name (run the
        node with ``ip netns exec NAME``)."""
        name = self.namespace(index)
        outside, inside = f"ac{self.db_port}h{index}", f"ac{self.db_port}v{index}"
        _run("ip", "netns", "add", name)
        self.names.append(name)
        _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        _run("ip", "link", "set", inside, "netns", name)
        _run("ip", "link", "set", outside, "master", self.bridge)
        _run("ip", "link", "set", outside, "up")
        _run("ip", "netns", "exec", name, "ip", "addr", "add",
             f"10.231.{self.net}.{10 + index}/24", "dev", inside)
        _run("ip", "netns", "exec", name, "ip", "link", "set", inside, "up")
        _run("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        return name

    def cut(self, name: str, how: str, port: int | None = None) -> None:
        """Cut ``name``'s link to the database (or to ``port`` on the gateway, an API node's):
        ``drop`` or ``refuse`` (see the module)."""
        to = str(port or self.db_port)
        if how == "drop":
            self._rule(name, "OUTPUT", "-d", self.gateway, "-p", "tcp", "--dport", to,
                       "-j", "DROP")
            self._rule(name, "INPUT", "-s", self.gateway, "-p", "tcp", "--sport", to,
                       "-j", "DROP")
        elif how == "refuse":
            self._rule(name, "OUTPUT", "-d", self.gateway, "-p", "tcp", "--dport", to,
                       "-j", "REJECT", "--reject-with", "tcp-reset")
        else:
            raise ValueError(f"unknown cut {how!r}: drop or refuse")

    def lose(self, name: str, share: float) -> None:
        """Drop ``share`` of ``name``'s packets at random, both ways (loopback spared)."""
        for chain, face in (("OUTPUT", "-o"), ("INPUT", "-i")):
            self._rule(name, chain, "!", face, "lo", "-m", "statistic", "--mode", "random",
                       "--probability", f"{share:g}", "-j", "DROP")

    @staticmethod
    def retransmits(name: str) -> int:
        """TCP segments ``name`` has retransmitted (its ``/proc/net/snmp``)."""
        lines = [line.split() for line in _run("ip", "netns", "exec", name, "cat",
                                               "/proc/net/snmp").stdout.splitlines()
                 if line.startswith("Tcp:")]
        header, values = lines[0], lines[1]
        return int(values[header.index("RetransSegs")])

    def heal(self, name: str) -> None:
        _run("ip", "netns", "exec", name, "iptables", "-F")

    @staticmethod
    def _rule(name: str, chain: str, *spec: str) -> None:
        _run("ip", "netns", "exec", name, "iptables", "-A", chain, *spec)

    def teardown(self) -> None:
        """Remove the namespaces (their veths go with them) and the bridge, including any an
        earlier run left behind."""
        listed = _run("ip", "netns", "list", check=False).stdout.split("\n")
        prefix = f"ac{self.db_port}n"
        for line in listed:
            name = line.split(" ")[0]
            if name.startswith(prefix):
                _run("ip", "netns", "del", name, check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        self.names.clear()
