"""Plain data that crosses layers: what the store returns and the engine and agents consume.

These are frozen dataclasses, not ORM objects: a value read from the database is a snapshot,
and anything that changes state goes back through a store operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED}
)
ACTIVE_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})


class OverlapPolicy(StrEnum):
    SKIP = "skip"
    QUEUE = "queue"
    ALLOW = "allow"
    REPLACE = "replace"


class CatchupMode(StrEnum):
    COALESCE = "coalesce"
    ALL = "all"


class TriggerKind(StrEnum):
    CRON = "cron"
    INTERVAL = "interval"
    ONCE = "once"
    WEBHOOK = "webhook"


class AgentKind(StrEnum):
    PYTHON = "python"
    COMMAND = "command"
    HTTP = "http"
    LLM = "llm"
    REMOTE = "remote"
    """Run by a worker that pulls the run over HTTP; nodes never execute it themselves."""


class OnBudget(StrEnum):
    """What happens when a run of an agent over its budget would start."""

    SKIP = "skip"
    """The run becomes ``skipped`` (reason ``budget_exceeded``); later fires are judged anew."""
    PAUSE = "pause"
    """The same, and the agent's triggers are paused until a user resumes them."""


#: Most of a payload or an output a listing reads and shows, in bytes of UTF-8 JSON (of text,
#: for output). The store reads no more than this many characters (plus one, to tell a cut).
PREVIEW_BYTES = 1024


@dataclass(frozen=True)
class Cut:
    """A stored payload too large for a listing: ``head`` is the start of its JSON text (at
    least ``PREVIEW_BYTES`` characters, so that a reader knows it was cut)."""

    head: str


@dataclass(frozen=True)
class Budget:
    """An agent's optional spending limits; ``None`` means no limit of that kind.

    Days are rolling (the last 24 hours); months are calendar months in ``timezone``. What
    counts and when a run may start is defined in ``agentcron.rules.budgets``.
    """

    tokens_per_day: int | None = None
    usd_per_day: float | None = None
    tokens_per_month: int | None = None
    usd_per_month: float | None = None
    timezone: str = "UTC"
    on_budget: OnBudget = OnBudget.SKIP

    @property
    def has_limits(self) -> bool:
        return any(
            v is not None
            for v in (self.tokens_per_day, self.usd_per_day, self.tokens_per_month,
                      self.usd_per_month)
        )


@dataclass(frozen=True)
class ModelPrice:
    """USD per million input (prompt) and output (completion) tokens of one model."""

    model: str
    input_per_mtok: float
    output_per_mtok: float
    source: str = "cli"
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Pool:
    """A rate-limit pool several agents draw from; None: no limit of that kind.
    ``requests``/``tokens``: what its sliding minute holds now (when read with usage)."""

    name: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    source: str = "cli"
    updated_at: datetime | None = None
    requests: int = 0
    tokens: int = 0
    agents: tuple[str, ...] = ()


@dataclass(frozen=True)
class CostRow:
    """One group of a cost report. ``unpriced_runs`` counts runs that recorded tokens but
    have no cost (their model had no price and they reported none): the cost is then a
    lower bound."""

    key: str
    runs: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_runs: int


@dataclass(frozen=True)
class SchedulingPolicy:
    """What agents may schedule, on the agent (``[agents.NAME.scheduling]``).

    ``may_schedule``: the agents a run of THIS agent may schedule follow-ups for (``None``:
    only itself). The rest bound triggers OF this agent that agents made (created_by
    ``run:...`` or ``mcp:...``): each fires at most once per ``min_interval_s``; at most
    ``max_live`` of them live at once; each expires ``expires_after_s`` after it was made;
    with ``require_approval`` each is created ``pending`` and does not fire until a person
    approves it. Enforced by the store (``store/guardrails.py``) in the creating
    transaction; the pure checks are ``rules/scheduling.py``.
    """

    may_schedule: tuple[str, ...] | None = None
    min_interval_s: float = 60.0
    max_live: int = 100
    expires_after_s: float = 30 * 86400.0
    require_approval: bool = False

    def allows(self, own: str, target: str) -> bool:
        """Whether a run of agent ``own`` may schedule agent ``target``."""
        return target == own if self.may_schedule is None else target in self.may_schedule


@dataclass(frozen=True)
class AgentSpec:
    """An agent as stored. ``config`` holds the kind-specific settings:

    - python: ``{"target": "module:function"}``
    - command: ``{"argv": [...], "env": {...}, "cwd": str | None, "output_limit": int}``
    - http: ``{"url": str, "secret": str | None, "headers": {...}}``
    - llm: ``{"base_url", "model", "prompt", "system", "temperature", "max_tokens",
      "api_key_env"}`` (``api_key_env`` is the *name* of an environment variable; the key
      itself is never stored)
    - remote: ``{}`` (or ``{"output_limit": int}``): a worker pulls its runs over HTTP

    ``budget`` is the agent's optional spending limit (see ``Budget``).
    """

    name: str
    kind: AgentKind
    config: dict[str, Any]
    max_concurrency: int = 1
    timeout_s: float = 300.0
    max_attempts: int = 3
    zombie_timeout_s: float | None = None
    retry_backoff_s: float = 2.0
    description: str | None = None
    source: str = "cli"
    created_at: datetime | None = None
    budget: Budget | None = None
    #: The circuit breaker's default for this agent's triggers (``Trigger``).
    pause_after_failures: int | None = None
    tags: tuple[str, ...] = ()
    """Only nodes that offer one of these tags (or name the agent) run it; see
    ``rules.routing``."""
    scheduling: SchedulingPolicy = field(default_factory=SchedulingPolicy)
    """What agent-made triggers of this agent may be, and what its runs may schedule."""
    keys: KeyPolicy | None = None
    """Its concurrency key and per-key limit; None: runs are not keyed."""
    pool: str | None = None
    """The rate-limit pool its runs draw from (``rules.rates``; ``store/pools.py``)."""
    rate: str | None = None
    """Its own rate limit, normalised (``"60/m"``; ``rules.rates.parse_rate``)."""


@dataclass(frozen=True)
class KeyPolicy:
    """An agent's concurrency key (``rules/keys.py``): at most ``max_per_key`` running runs
    share a key rendered from ``template``; ``weights`` gives some keys more turns per
    round of the fair order (default 1)."""

    template: str
    max_per_key: int
    weights: Mapping[str, int] = field(default_factory=dict)

    def weight(self, key: str) -> int:
        return self.weights.get(key, 1)


@dataclass(frozen=True)
class Usage:
    """Token usage an agent reports for one run. Any field may be unknown."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None

    def __add__(self, other: Usage) -> Usage:
        def add_int(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        def add_float(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return Usage(
            input_tokens=add_int(self.input_tokens, other.input_tokens),
            output_tokens=add_int(self.output_tokens, other.output_tokens),
            cost_usd=add_float(self.cost_usd, other.cost_usd),
            model=other.model or self.model,
        )


@dataclass(frozen=True)
class ClaimedRun:
    """A run this node has claimed. ``lease`` is the fencing token: every later write for
    this run (heartbeat, completion) must present the same ``lease`` and node, or it is
    ignored because the run was taken over."""

    run_id: str
    lease: int
    attempt: int
    agent: AgentSpec
    trigger_id: str | None
    scheduled_for: datetime
    started_at: datetime
    deadline_at: datetime
    payload: Any = None
    # Fired ahead of its time: the store time before which it must not start.
    start_at: datetime | None = None


@dataclass(frozen=True)
class ExecutionResult:
    """What an executor says about one attempt.

    ``retry_after_s`` is how long the agent's server asked to be left alone (an HTTP
    ``Retry-After``); a retry then waits at least that long, and at least the backoff.
    """

    ok: bool
    output: str | None = None
    error: str | None = None
    retryable: bool = True
    stderr: str | None = None
    usage: Usage | None = None
    retry_after_s: float | None = None
    #: Follow-up triggers the agent asked for (``ctx.schedule``, an answer's ``"schedule"``
    #: list, a command's ``::agentcron:schedule`` lines), as stated: each should be a JSON
    #: object with the keys of ``executors.follow_ups.REQUEST_KEYS`` (``in`` already turned
    #: into ``at``). Not validated here: the trigger service's one validator decides.
    schedule: tuple[Any, ...] = ()


@dataclass(frozen=True)
class FollowUp:
    """A trigger a run asked for (``ctx.schedule``, an answer's ``"schedule"`` list).

    ``row`` is the trigger's columns as the trigger service validated them (what
    ``NewTrigger.row()`` gives), which ``Store.finish`` writes in the outcome's own fenced
    transaction, under the guardrails of ``store/guardrails.py``; ``refused`` says why the
    request never reached the store (it did not validate). Exactly one of them is set.
    """

    row: dict[str, Any] | None = None
    refused: str | None = None


@dataclass(frozen=True)
class Outcome:
    """A finished attempt, ready to be written by ``Store.finish``.

    ``status`` is succeeded, failed or cancelled. When ``retry_delay_s`` is set the run goes
    back to queued for another attempt that long after the write (measured on the store's
    clock) instead of ending ``failed``. ``follow_ups`` are created only if the outcome's
    fenced update succeeds, so a stale attempt schedules nothing.
    """

    run_id: str
    lease: int
    status: RunStatus
    output: str | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    stderr: str | None = None
    retry_delay_s: float | None = None
    follow_ups: tuple[FollowUp, ...] = ()
    #: The attempt's last progress line (kept when None: nothing new to say).
    progress: str | None = None


@dataclass(frozen=True)
class Trigger:
    id: str
    agent: str
    kind: TriggerKind
    name: str | None
    cron: str | None
    timezone: str
    every_s: float | None
    at: datetime | None
    anchor_at: datetime | None
    start_at: datetime | None
    end_at: datetime | None
    jitter_s: float
    payload: Any
    overlap: OverlapPolicy
    catchup_window_s: float
    catchup_mode: CatchupMode
    paused: bool
    next_fire_at: datetime | None
    last_fired_at: datetime | None
    missed_count: int
    last_missed_at: datetime | None
    created_at: datetime
    source: str = "cli"
    #: Quarantine: set when firing could not plan this trigger (or its row could not be
    #: read); a broken trigger does not fire until it is resumed or updated.
    broken_at: datetime | None = None
    broken_reason: str | None = None
    #: Fires the overlap policy skipped (counted here, so their run rows can be pruned
    #: after a short window), and the scheduled time of the latest one.
    skipped_count: int = 0
    last_skipped_at: datetime | None = None
    #: The circuit breaker: paused after this many consecutive failed runs (final failures,
    #: after retries); ``None`` takes the agent's default (none: no breaker).
    pause_after_failures: int | None = None
    #: Final failures since the last success or resume.
    consecutive_failures: int = 0
    #: Why agentcron paused this trigger (the circuit breaker, or its agent's budget with
    #: ``on_budget = "pause"``); ``None`` when a user paused it or it is not paused. A
    #: resume clears it.
    paused_reason: str | None = None
    #: Who made the trigger: ``cli``, ``file``, ``python``, ``api:<token name>``,
    #: ``mcp:<token name>`` or ``run:<run id>`` (``source`` is the kind of front door).
    created_by: str = "cli"
    #: An agent-made trigger does not fire after this (its ``end_at`` is at most this).
    expires_at: datetime | None = None
    #: ``pending`` (paused until a person approves it), ``approved``, or ``None`` (no
    #: approval was required).
    approval: str | None = None


@dataclass(frozen=True)
class Run:
    id: str
    trigger_id: str | None
    agent: str
    scheduled_for: datetime
    status: RunStatus
    reason: str | None
    attempt: int
    lease: int
    node_id: str | None
    payload: Any
    coalesced: int
    queued_at: datetime
    run_after: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deadline_at: datetime | None
    output: str | None
    error: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    model: str | None
    progress: str | None = None
    """The last progress line the running attempt reported (``RunContext.heartbeat``)."""
    stderr: str | None = None
    """A command agent's stderr (its stdout is the output), on success and on failure."""
    retry_of: str | None = None
    """The succeeded run this run re-runs (a user's retry of a succeeded run)."""
    concurrency_key: str | None = None
    """Its key under its agent's ``KeyPolicy``, rendered once when the run was made (None:
    the agent had no key then)."""
    waiting_reason: str | None = None
    """Why a queued run is not starting (``pool openai at 500/500 requests/min``), as the
    last claim that held it back wrote it; read ``waiting``, which shows it only while the
    run is queued."""

    @property
    def waiting(self) -> str | None:
        """Why this run is not starting, while it is queued (None once it started or ended,
        whatever ``waiting_reason`` still holds). Every listing shows this."""
        return self.waiting_reason if self.status is RunStatus.QUEUED else None


@dataclass(frozen=True)
class RunEvent:
    run_id: str
    at: datetime
    kind: str
    attempt: int
    node_id: str | None
    message: str | None


@dataclass(frozen=True)
class Node:
    id: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    zombie_timeout_s: float
    draining: bool
    running: int = 0
    agents: tuple[str, ...] = ()
    """The agents the node was told to run by name (``serve --agents``)."""
    tags: tuple[str, ...] = ()
    """The tags the node offers (``serve --tags``)."""


@dataclass(frozen=True)
class Worker:
    """A remote worker as the store knows it (a row of ``nodes`` with kind ``worker``).
    ``zombie_timeout_s`` is the longest zombie timeout of its agents: past it, the worker is
    lost (each run is judged by its own agent's timeout)."""

    id: str
    agents: list[str]
    token: str | None
    address: str
    version: str
    started_at: datetime
    heartbeat_at: datetime
    zombie_timeout_s: float
    draining: bool
    running: int = 0


class AlertKind(StrEnum):
    """What an alert rule watches for."""

    FAILED = "failed"
    """A run failed after its last attempt."""
    CONSECUTIVE_FAILURES = "consecutive_failures"
    """The ``threshold``-th failed run in a row (alerted once per streak)."""
    MISSED = "missed"
    """A scheduled time older than the trigger's catch-up window was never run."""
    BUDGET = "budget"
    """Runs were skipped because the agent is over its budget."""
    LONG_RUNNING = "long_running"
    """A run still running ``duration_s`` after it started."""
    DEAD_MAN = "dead_man"
    """No successful run of the trigger within its period (a dead man's switch)."""
    PAUSED = "paused"
    """A trigger was paused for its failures (the circuit breaker)."""


class AlertStatus(StrEnum):
    OPEN = "open"
    """Waiting to be sent; repeats of the same alert are counted into it."""
    SENDING = "sending"
    """Leased to one node that is delivering it."""
    RETRYING = "retrying"
    """An attempt failed; the next one is due at ``next_attempt_at``."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Every attempt failed."""


@dataclass(frozen=True)
class AlertEvent:
    """Something that happened that alert rules of ``kind`` may want to tell a person
    about. Raised by the store in the transaction of the event itself."""

    kind: AlertKind
    agent: str
    trigger_id: str | None
    run_id: str | None
    reason: str


@dataclass(frozen=True)
class AlertRule:
    id: str
    agent: str
    trigger_id: str | None
    kind: AlertKind
    threshold: int | None
    duration_s: float | None
    interval_factor: float | None
    channels: list[str]
    group_window_s: float
    source: str
    created_at: datetime
    has_secret: bool = False


@dataclass(frozen=True)
class Alert:
    id: str
    rule_id: str
    kind: str
    agent: str
    trigger_id: str | None
    run_id: str | None
    reason: str
    link: str | None
    count: int
    first_at: datetime
    last_at: datetime
    status: AlertStatus
    attempts: int
    next_attempt_at: datetime
    node_id: str | None
    delivered_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class AlertDelivery:
    """An alert leased to one node for one attempt: what to send and where. Settled with
    ``(id, lease)``, so a node whose lease ran out cannot settle it."""

    alert: Alert
    lease: int
    channels: list[str]
    webhook_secret: str | None
