"""Node settings: defaults, overridden by ``AGENTCRON_*`` environment variables, then by
command-line flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from agentcron.errors import ValidationError
from agentcron.rules.routing import Routing, check_routing, split_list
from agentcron.schedule.durations import parse_duration

DEFAULT_DATABASE_URL = "sqlite:///agentcron.db"
#: A run fired ahead holds a slot of its node until its time: keep that short.
MAX_FIRE_LOOKAHEAD_S = 5.0

_DURATIONS = {
    "zombie_timeout_s", "drain_timeout_s", "heartbeat_interval_s", "poll_interval_s",
    "sweep_interval_s", "retention_s", "skipped_retention_s", "prune_interval_s", "timeout_grace_s",
    "fire_lookahead_s", "alert_interval_s", "alert_lease_s", "alert_retry_s",
}
_ZERO_MEANS_OFF = {"fire_lookahead_s"}
# Lists: a comma-separated string in the environment or a flag, or a list.
_LISTS = {"agents", "tags"}


@dataclass(frozen=True)
class NodeSettings:
    database_url: str = DEFAULT_DATABASE_URL
    node_id: str | None = None
    zombie_timeout_s: float = 60.0
    drain_timeout_s: float = 30.0
    heartbeat_interval_s: float = 5.0
    poll_interval_s: float = 1.0
    sweep_interval_s: float = 0.0  # 0: a quarter of the zombie timeout, 1-15 s
    timeout_grace_s: float = 0.0  # 0: the zombie timeout
    retention_s: float = 30 * 86400.0
    # Runs skipped by the overlap policy are kept this long only: the trigger counts them
    # (skipped_count), and an always-busy every-second trigger would otherwise leave
    # 86,400 rows a day for the whole retention.
    skipped_retention_s: float = 3600.0
    prune_interval_s: float = 600.0
    fire_batch: int = 500
    # Triggers with overlap "allow" are fired and claimed up to this long before their
    # time, and their runs start at it: an aligned burst is written before its second.
    fire_lookahead_s: float = 0.5
    claim_batch: int = 1000
    max_inflight: int = 2000
    thread_pool_size: int = 32
    api: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    metrics_public: bool = False  # serve /metrics without a token
    api_docs: bool = False  # serve Swagger UI at /docs
    webhook_max_bytes: int = 256 * 1024  # bigger webhook bodies get 413
    max_body_bytes: int = 1024 * 1024  # bigger request bodies get 413, counted as they arrive
    # Alerts: the links they carry start with this (the dashboard as people reach it).
    dashboard_url: str | None = None
    alert_interval_s: float = 2.0  # how often the outbox and the periodic rules are checked
    alert_lease_s: float = 60.0  # a delivery in flight is this node's for this long
    alert_retry_s: float = 5.0  # the first retry's delay; doubled for each next one
    alert_max_attempts: int = 8
    # Routing (``rules.routing``): the agents this node runs by name, and the tags it
    # offers. Neither: it runs every agent without tags.
    agents: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def routing(self) -> Routing:
        return Routing.of(self.agents, self.tags)

    @property
    def effective_sweep_interval_s(self) -> float:
        if self.sweep_interval_s > 0:
            return self.sweep_interval_s
        return min(15.0, max(1.0, self.zombie_timeout_s / 4))

    @property
    def effective_timeout_grace_s(self) -> float:
        return self.timeout_grace_s or self.zombie_timeout_s

    def validate(self) -> NodeSettings:
        if self.heartbeat_interval_s * 2 > self.zombie_timeout_s:
            raise ValidationError(
                "zombie-timeout",
                f"{self.zombie_timeout_s:g}s is shorter than two heartbeats "
                f"({self.heartbeat_interval_s:g}s each)",
                "a node would look dead between beats; use at least "
                f"{self.heartbeat_interval_s * 3:g}s",
            )
        if not 0 <= self.fire_lookahead_s <= MAX_FIRE_LOOKAHEAD_S:
            raise ValidationError(
                "fire-lookahead", f"{self.fire_lookahead_s:g}s is out of range",
                f"use 0 (fire only when due) to {MAX_FIRE_LOOKAHEAD_S:g}s",
            )
        check_routing(self.agents, self.tags)
        for name in ("fire_batch", "claim_batch", "max_inflight", "thread_pool_size",
                     "webhook_max_bytes", "max_body_bytes", "alert_max_attempts"):
            if getattr(self, name) < 1:
                raise ValidationError(name.replace("_", "-"), "must be at least 1")
        return self

    def with_overrides(self, **overrides: Any) -> NodeSettings:
        """Apply the given values; None means "not given" and keeps the current one."""
        given = {k: v for k, v in overrides.items() if v is not None}
        for key, value in list(given.items()):
            if key in _DURATIONS and isinstance(value, str):
                given[key] = parse_duration(value, key[:-2].replace("_", "-"),
                                            allow_zero=key in _ZERO_MEANS_OFF)
            elif key in _LISTS:
                given[key] = tuple(split_list(value))
        return replace(self, **given)


def settings_from_env(environ: dict[str, str] | None = None) -> NodeSettings:
    """``AGENTCRON_DATABASE_URL``, ``AGENTCRON_ZOMBIE_TIMEOUT=90s`` ... for every field;
    lists comma-separated (``AGENTCRON_TAGS=gpu,cuda``)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for f in fields(NodeSettings):
        env_name = "AGENTCRON_" + f.name.removesuffix("_s").upper()
        raw = environ.get(env_name)
        if raw is None:
            continue
        if f.name in _DURATIONS:
            values[f.name] = parse_duration(raw, env_name,
                                            allow_zero=f.name in _ZERO_MEANS_OFF)
        elif f.name in _LISTS:
            values[f.name] = tuple(split_list(raw))
        elif f.type == "bool":
            values[f.name] = raw.strip().lower() in ("1", "true", "yes", "on")
        elif f.type == "int":
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ValidationError(env_name, f"{raw!r} is not a whole number") from None
        else:
            values[f.name] = raw
    return NodeSettings(**values)
