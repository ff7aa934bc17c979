"""Agents in the service layer: ``AgentInput`` (an agent as every front door states it) and
``AgentService``, which validates one before the store is touched."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentcron.errors import ConflictError, NotFoundError, ValidationError
from agentcron.executors.registry import add_import_paths, resolve_target
from agentcron.executors.validation import validate_agent_config
from agentcron.models import AgentKind, AgentSpec, KeyPolicy
from agentcron.rules.budgets import parse_budget
from agentcron.rules.keys import check_template, check_weights
from agentcron.rules.rates import check_pool_name, parse_rate
from agentcron.rules.routing import check_tags
from agentcron.schedule.durations import parse_duration
from agentcron.services.documents import has_masked, restore_masked
from agentcron.services.scheduling import parse_policy
from agentcron.services.validate import (
    check_breaker,
    check_int_between,
    check_json,
    check_name,
    check_one_of,
    check_printable,
)

if TYPE_CHECKING:  # the store brings in SQLAlchemy; the CLI imports this at start-up
    from agentcron.store import Store

MAX_DESCRIPTION = 2000

Duration = str | int | float


@dataclass(frozen=True)
class AgentInput:
    """An agent as a user states it: durations as typed (``"5m"`` or seconds), ``budget``
    holding optional limits as in the agents file (see ``rules.budgets.parse_budget``),
    ``on_budget`` ``skip`` or ``pause``, and ``tags`` its routing tags (``rules.routing``).
    The CLI, the agents file, the Python API and the HTTP API each build one;
    ``AgentService.build`` is the one place it is validated."""

    name: str
    kind: str | AgentKind
    config: Mapping[str, Any]
    max_concurrency: int = 1
    timeout: Duration = "5m"
    max_attempts: int = 3
    zombie_timeout: Duration | None = None
    retry_backoff: Duration = "2s"
    description: str | None = None
    budget: Mapping[str, Any] | None = None
    on_budget: str | None = None
    pause_after_failures: int | None = None  # the breaker's default for its triggers
    tags: Sequence[str] = ()
    #: What agents may schedule (``services.scheduling.parse_policy``); None: the defaults.
    scheduling: Mapping[str, Any] | None = None
    #: A template over the payload (``{{ tenant }}``, ``rules/keys.py``): runs with the same
    #: rendered key share ``max_per_key`` running places; None: runs are not keyed.
    concurrency_key: str | None = None
    max_per_key: int | None = None  # with a concurrency_key; default 1
    key_weights: Mapping[str, int] | None = None  # turns per round of the fair order
    #: The rate-limit pool its runs draw from (``agentcron pools``); None: none.
    pool: str | None = None
    #: Its own rate limit across nodes, ``"60/m"`` (also ``/s``, ``/h``); None: none.
    rate: str | None = None


# The settings any kind of agent has (all but what it is and what it runs), by the names
# ``AgentInput`` uses: front doors whose models use the same names copy them by this list.
AGENT_SETTINGS: tuple[str, ...] = tuple(
    f.name for f in fields(AgentInput) if f.name not in ("name", "kind", "config"))


def agent_settings(source: object) -> dict[str, Any]:
    """The ``AGENT_SETTINGS`` that ``source`` (a request body, an agents-file entry) has,
    read by name; the ones it lacks keep ``AgentInput``'s defaults."""
    return {name: getattr(source, name) for name in AGENT_SETTINGS if hasattr(source, name)}


def import_problem(spec: AgentSpec, *folders: str | os.PathLike[str]) -> ValidationError | None:
    """Why a python agent's target cannot be imported here (with ``folders`` and the working
    directory on the import path, as a node has them), or None when it can (or the agent is
    not a python one). Importing runs the module's top-level code, as the node's first run
    of it would."""
    if spec.kind is not AgentKind.PYTHON:
        return None
    add_import_paths(*folders, os.getcwd())
    try:
        resolve_target(str(spec.config["target"]))
    except ValidationError as exc:
        return exc
    return None


def parse_keys(spec: AgentInput) -> KeyPolicy | None:
    """The agent's concurrency key policy, or None; ``max_per_key`` and ``key_weights``
    without a ``concurrency_key`` are refused (they would do nothing)."""
    if spec.concurrency_key is None:
        for name, value in (("max-per-key", spec.max_per_key),
                            ("key-weights", spec.key_weights)):
            if value is not None and value != {}:
                raise ValidationError(name, "applies only to an agent with a concurrency key",
                                      "set concurrency_key too, e.g. '{{ tenant }}'")
        return None
    return KeyPolicy(
        template=check_template(spec.concurrency_key, "concurrency-key"),
        max_per_key=check_int_between(1 if spec.max_per_key is None else spec.max_per_key,
                                      "max-per-key", 1, 100_000),
        weights=check_weights(spec.key_weights, "key-weights"),
    )


class AgentService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def build(self, spec: AgentInput, source: str = "cli") -> AgentSpec:
        """Validate an agent without storing it; ``ValidationError`` names the first bad
        field, as the CLI spells it."""
        check_name(spec.name, "name")
        kind = spec.kind.value if isinstance(spec.kind, AgentKind) else spec.kind
        agent_kind: AgentKind = check_one_of(kind, AgentKind, "kind")
        return AgentSpec(
            name=spec.name,
            kind=agent_kind,
            config=validate_agent_config(agent_kind,
                                         dict(check_json(self._unmasked(spec), "config"))),
            max_concurrency=check_int_between(spec.max_concurrency, "max-concurrency", 1,
                                              100_000),
            timeout_s=parse_duration(spec.timeout, "timeout"),
            max_attempts=check_int_between(spec.max_attempts, "max-attempts", 1, 100),
            zombie_timeout_s=(
                None if spec.zombie_timeout is None
                else parse_duration(spec.zombie_timeout, "zombie-timeout")
            ),
            retry_backoff_s=parse_duration(spec.retry_backoff, "retry-backoff"),
            description=check_printable(spec.description, "description", MAX_DESCRIPTION),
            source=source,
            budget=parse_budget(spec.budget, spec.on_budget),
            pause_after_failures=check_breaker(spec.pause_after_failures),
            tags=check_tags(spec.tags if spec.tags is not None else ()),
            scheduling=parse_policy(spec.scheduling),
            keys=parse_keys(spec),
            pool=None if spec.pool is None else check_pool_name(spec.pool),
            rate=None if spec.rate is None else parse_rate(spec.rate).text,
        )

    def _unmasked(self, spec: AgentInput) -> dict[str, Any]:
        """The config with secrets sent back masked (a shown document, PUT back as it is)
        replaced by the stored ones; the store is read only when there is a mask."""
        config = dict(spec.config)
        if not has_masked(config):
            return config
        try:
            stored: dict[str, Any] | None = self.store.get_agent(spec.name).config
        except NotFoundError:
            stored = None
        return restore_masked(config, stored)

    def save(self, spec: AgentSpec, now: datetime | None = None) -> AgentSpec:
        """Create or replace an agent (validated with ``build``)."""
        self.store.upsert_agent(spec, now)
        return self.store.get_agent(spec.name)

    def create(self, spec: AgentSpec, now: datetime | None = None, *,
               how_to_replace: str | None = None) -> AgentSpec:
        """Create an agent; ``ConflictError`` if one of that name exists (``save`` replaces
        it instead). ``how_to_replace`` ends the error: the front door's way to replace
        (default: the API's PUT)."""
        try:
            self.store.get_agent(spec.name)
        except NotFoundError:
            return self.save(spec, now)
        how = how_to_replace or f"PUT /api/v1/agents/{spec.name} replaces it"
        raise ConflictError(f"agent {spec.name!r} already exists; {how}")

    def get(self, name: str) -> AgentSpec:
        check_name(name, "name")
        return self.store.get_agent(name)

    def all(self) -> list[AgentSpec]:
        return self.store.list_agents()

    def busiest_keys(self, name: str, limit: int = 10) -> list[tuple[str, int]]:
        """(concurrency key, running runs) of the agent's fullest keys, at most ``limit``."""
        check_name(name, "name")
        check_int_between(limit, "limit", 1, 1000)
        return self.store.busiest_keys(name, limit)

    def footprint(self, name: str) -> tuple[int, int, int]:
        """What removing agent ``name`` touches: (its triggers, which are deleted; its
        queued runs, which are cancelled; its runs in all, which stay in the history)."""
        check_name(name, "name")
        return self.store.agent_footprint(name)

    def remove(self, name: str, now: datetime | None = None) -> int:
        """Delete an agent and its triggers; returns how many queued runs were cancelled."""
        return self.store.delete_agent(name, now)
