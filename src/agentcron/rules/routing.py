"""Routing: which agents a node runs. Pure (no I/O): the store applies it in both of its
claim paths (``claiming.claim_runs`` and the fire-time claim of ``firing.fire_due``), so a
node never starts a run the rule keeps from it, and other nodes leave such runs queued.

A node is started with a ``Routing``: the agents it is told to run by name
(``serve --agents a,b``) and the tags it offers (``serve --tags gpu``). An agent may carry
tags (``tags = ["gpu"]``). The rule:

- a node with neither names nor tags (the default) runs every agent **without tags**;
- a node with names or tags runs an agent when the agent is named, or when the agent's
  tags and the node's tags share one; nothing else;
- so an agent with tags runs only on nodes that offer one of its tags (or name it):
  "only on the GPU box" holds even when untagged nodes are running.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from agentcron.errors import ValidationError

_AGENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")  # as services.validate names
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$")
TAG_HINT = "1-40 letters, digits, '_', '.' or '-', starting with a letter or digit"
MAX_TAGS = 20


@dataclass(frozen=True)
class Routing:
    """What a node runs: agents by name, and the tags it offers. Empty: untagged agents."""

    agents: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()

    @classmethod
    def of(cls, agents: Iterable[str] = (), tags: Iterable[str] = ()) -> Routing:
        return cls(frozenset(agents), frozenset(tags))

    @property
    def open(self) -> bool:
        """True for a node told nothing: it runs the untagged agents."""
        return not self.agents and not self.tags

    def runs(self, agent: str, agent_tags: Iterable[str]) -> bool:
        """Whether a node with this routing may claim runs of ``agent`` (with its tags)."""
        tags = frozenset(agent_tags)
        if self.open:
            return not tags
        return agent in self.agents or bool(self.tags & tags)

    def describe(self) -> str:
        """In words, for listings: ``untagged agents``, ``agents a, b; tags gpu``."""
        if self.open:
            return "untagged agents"
        parts = []
        if self.agents:
            parts.append("agents " + ", ".join(sorted(self.agents)))
        if self.tags:
            parts.append("tags " + ", ".join(sorted(self.tags)))
        return "; ".join(parts)


def split_list(raw: str | Iterable[str] | None) -> list[str]:
    """``"a, b"`` or ``["a", "b,c"]`` as ``["a", "b", "c"]`` (blanks dropped, order kept,
    duplicates removed): how flags and environment variables give lists."""
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else list(raw)
    out: list[str] = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def check_tags(tags: Iterable[str], field: str = "tags") -> tuple[str, ...]:
    """Tags as given, checked: each a short word (``TAG_HINT``), at most ``MAX_TAGS``;
    duplicates dropped, order kept."""
    if isinstance(tags, str) or not isinstance(tags, Iterable):
        raise ValidationError(field, f"{str(tags)[:80]!r} is not a list of tags",
                              'give a list, e.g. tags = ["gpu"]')
    out: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not TAG.match(tag):
            raise ValidationError(field, f"{str(tag)[:80]!r} is not a valid tag", TAG_HINT)
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValidationError(field, f"{len(out)} tags given", f"use at most {MAX_TAGS}")
    return tuple(out)


def check_routing(agents: Iterable[str], tags: Iterable[str]) -> None:
    """A node's ``--agents`` and ``--tags``, checked (``ValidationError`` naming the flag)."""
    for name in agents:
        if not _AGENT.match(name):
            raise ValidationError("agents", f"{name[:80]!r} is not a valid agent name",
                                  "give agent names separated by commas: --agents a,b")
    check_tags(tags, "tags")
