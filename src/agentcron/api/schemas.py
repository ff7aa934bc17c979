"""Request and response bodies of the API (they make the OpenAPI schema). Responses are
built from the same JSON documents the CLI prints with ``--json``
(``agentcron.services.documents``), so the two never disagree; each response model declares
exactly its document's keys (``tests/interfaces/test_documents.py`` fails when they drift).
Request bodies only check types; every rule about values is the service layer's."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentcron.models import AgentSpec, Node, Run, RunEvent, Trigger
from agentcron.services.documents import (
    agent_json,
    next_fires_json,
    node_json,
    run_detail_json,
    run_json,
    trigger_json,
)

Number = int | float
Duration = str | Number


class StrictIn(BaseModel):
    """A request body: an unknown field is refused (422 naming it), never ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    detail: str
    field: str | None = None
    hint: str | None = None


# -- agents -------------------------------------------------------------------------------


class BudgetBody(StrictIn):
    """An agent's spending limits, in the shape ``AgentOut.budget`` shows them (so a GET's
    budget can be PUT back as it is). Values are checked by the service layer."""

    tokens_per_day: int | None = None
    usd_per_day: Number | None = None
    tokens_per_month: int | None = None
    usd_per_month: Number | None = None
    tz: str | None = None
    on_budget: str | None = Field(None, description="skip (default) or pause")


class SchedulingBody(StrictIn):
    """What agents may schedule: which agents a run of this agent may schedule, and the
    bounds on triggers of this agent that agents make (runs' follow-ups, MCP clients)."""

    may_schedule: list[str] | None = Field(
        None, description="agents a run of this agent may schedule (default: itself)")
    min_interval: Duration | None = Field(None, description="default 1m")
    max_live: int | None = Field(None, description="live agent-made triggers, default 100")
    expires_after: Duration | None = Field(None, description="default 30d")
    require_approval: bool | None = Field(
        None, description="created pending until a person approves it (default false)")


class AgentBody(StrictIn):
    """An agent's whole definition: a PUT replaces the agent, so a setting left out gets its
    default (a budget left out means no budget)."""

    kind: str = Field(description="python, command, http or llm")
    config: dict[str, Any] = Field(
        description="python: {target}; command: {command | argv, env, inherit_env, cwd}; "
                    "http: {url, secret, headers}. Secret values are shown as ******** and "
                    "a ******** sent back keeps the stored value")
    max_concurrency: int = 1
    timeout: Duration = "5m"
    max_attempts: int = 3
    zombie_timeout: Duration | None = None
    retry_backoff: Duration = "2s"
    description: str | None = None
    budget: BudgetBody | None = None
    pause_after_failures: int | None = Field(
        None, description="The circuit breaker's default for this agent's triggers: pause "
                          "a trigger after this many consecutive failed runs")
    tags: list[str] = Field(default_factory=list, description=(
        "routing: only nodes started with one of these tags (serve --tags) or naming the "
        "agent (serve --agents) run it"))
    scheduling: SchedulingBody | None = None
    concurrency_key: str | None = Field(None, description=(
        "a template over the payload, e.g. {{ tenant }}: runs with the same key share "
        "max_per_key running places, and keys are claimed in turn"))
    max_per_key: int | None = Field(None, description="with concurrency_key (default 1)")
    key_weights: dict[str, int] | None = Field(None, description=(
        "turns per round of the fair order for some keys (default 1 each)"))
    pool: str | None = Field(None, description="the rate-limit pool its runs draw from "
                                               "(/api/v1/pools)")
    rate: str | None = Field(None, description="its own rate limit across nodes: '60/m' "
                                               "(also /s, /h)")


class AgentCreate(AgentBody):
    name: str


class BudgetOut(BaseModel):
    tokens_per_day: int | None
    usd_per_day: float | None
    tokens_per_month: int | None
    usd_per_month: float | None
    tz: str
    on_budget: str


class AgentOut(BaseModel):
    name: str
    kind: str
    config: dict[str, Any]
    max_concurrency: int
    timeout_s: float
    max_attempts: int
    zombie_timeout_s: float | None
    retry_backoff_s: float
    description: str | None
    source: str
    created_at: str | None
    budget: BudgetOut | None
    pause_after_failures: int | None = None
    tags: list[str]
    scheduling: dict[str, Any] | None = None
    concurrency_key: str | None = None
    max_per_key: int | None = None
    key_weights: dict[str, int] | None = None
    pool: str | None = None
    rate: str | None = None

    @classmethod
    def of(cls, agent: AgentSpec) -> AgentOut:
        return cls(**agent_json(agent))


class AgentRemoved(BaseModel):
    name: str
    cancelled_runs: int


class FireBody(StrictIn):
    payload: Any = None


class FireOut(BaseModel):
    id: str
    agent: str


# -- triggers -----------------------------------------------------------------------------


class TriggerChange(StrictIn):
    cron: str | None = None
    every: Duration | None = None
    at: str | None = None
    tz: str | None = None
    payload: Any = None
    overlap: str | None = None
    catchup: Duration | None = None
    catchup_mode: str | None = None
    jitter: Duration | None = None
    start: str | None = None
    end: str | None = None
    name: str | None = None
    paused: bool | None = None
    pause_after_failures: int | None = Field(
        None, description="Circuit breaker: pause after this many consecutive failed runs "
                          "(final failures, after retries); default: the agent's")


class TriggerCreate(TriggerChange):
    agent: str
    webhook: bool = False


class TriggerBatch(StrictIn):
    triggers: list[TriggerCreate] = Field(
        description="1 to 1,000 triggers, each as for POST /api/v1/triggers; all are "
                    "validated before any is written, and all are created or none.")


class TriggerSelect(StrictIn):
    """Many triggers: an agent's, those whose name matches a glob, or all (asked for)."""

    agent: str | None = None
    name: str | None = Field(None, description="A glob: * any characters, ? one")
    all: bool = Field(False, description="Every trigger; never implied")
    catch_up: bool = Field(False, description="Resume only: also fire the times passed "
                           "while paused within each trigger's catch-up window")


class BackfillBody(StrictIn):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: str = Field(alias="from", description="The first time of the range (included)")
    end: str = Field(alias="to", description="The last time of the range (included; not "
                     "after now)")
    mode: str = Field("all", description="all: a run per scheduled time; coalesce: one "
                      "run standing for them all")


class BackfillOut(BaseModel):
    trigger_id: str
    times: int = Field(description="Scheduled times in the range")
    queued: int = Field(description="Runs queued")
    skipped: int = Field(description="Times (or the coalesced run) that already had a run")


class TriggersChanged(BaseModel):
    count: int
    triggers: list[str]


class BrokenOut(BaseModel):
    at: str | None
    reason: str | None


class TriggerOut(BaseModel):
    id: str
    agent: str
    name: str | None
    kind: str
    description: str
    cron: str | None
    timezone: str
    every_s: float | None
    at: str | None
    anchor_at: str | None
    start_at: str | None
    end_at: str | None
    jitter_s: float
    payload: Any = None
    payload_truncated: bool = Field(False, description="A listing's payload is the start of "
                                    "its JSON text when longer than 1 KiB; show has it all.")
    overlap: str
    catchup_window_s: float
    catchup_mode: str
    paused: bool
    paused_reason: str | None = Field(
        None, description="Why agentcron paused this trigger (the circuit breaker, or its "
                          "agent's budget); null when a user paused it. A resume clears "
                          "it.")
    pause_after_failures: int | None = None
    consecutive_failures: int = Field(0, description="Failed runs since the last success "
                                      "or resume.")
    broken: BrokenOut | None = Field(
        None, description="Set when firing could not plan this trigger (or its row could "
                          "not be read): it does not fire until resumed or updated.")
    next_fire_at: str | None
    last_fired_at: str | None
    missed_count: int
    last_missed_at: str | None
    skipped_count: int = Field(0, description="Fires skipped by the overlap policy (their "
                               "run rows are pruned after AGENTCRON_SKIPPED_RETENTION).")
    last_skipped_at: str | None = None
    created_at: str | None
    source: str
    created_by: str = Field("cli", description="Who made it: cli, file, python, "
                            "api:<token name>, mcp:<token name>, run:<run id>.")
    expires_at: str | None = Field(None, description="An agent-made trigger does not fire "
                                   "after this.")
    approval: str | None = Field(None, description="pending (does not fire until approved: "
                                 "POST .../approve), approved, or null.")
    chain: list[dict[str, Any]] | None = Field(
        None, description="Where it came from, newest first: each link's trigger_id, agent, "
                          "created_by and run_id, to an origin that is not a run (shown by "
                          "GET /triggers/{id} only).")

    @classmethod
    def of(cls, trigger: Trigger, description: str, *, preview: bool = False,
           chain: list[dict[str, Any]] | None = None) -> TriggerOut:
        return cls(**trigger_json(trigger, description, preview=preview, chain=chain))


class TriggerCreated(TriggerOut):
    secret: str | None = Field(None, description="Webhook triggers only; shown this once.")
    hook_path: str | None = None


class WebhookSecret(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret; shown this once.")
    hook_path: str


class TriggersCreated(BaseModel):
    created: int
    triggers: list[TriggerCreated]


class TriggersPage(BaseModel):
    triggers: list[TriggerOut]
    total: int
    limit: int
    offset: int


class FireTime(BaseModel):
    local: str
    utc: str | None


class NextFires(BaseModel):
    id: str
    timezone: str
    description: str
    times: list[FireTime]

    @classmethod
    def of(cls, trigger: Trigger, description: str, times: list[Any]) -> NextFires:
        return cls(**next_fires_json(trigger, times), description=description)


class Deleted(BaseModel):
    id: str
    deleted: bool = True


# -- runs ---------------------------------------------------------------------------------


class RunOut(BaseModel):
    id: str
    trigger_id: str | None
    agent: str
    status: str
    reason: str | None
    attempt: int
    node_id: str | None
    scheduled_for: str | None
    queued_at: str | None
    run_after: str | None
    started_at: str | None
    finished_at: str | None
    deadline_at: str | None
    duration_s: float | None
    coalesced: int
    payload: Any = None
    payload_truncated: bool = Field(False, description="A listing's payload is the start of "
                                    "its JSON text when longer than 1 KiB; show has it all.")
    output: str | None
    output_truncated: bool = Field(False, description="A listing shows the first 1 KiB.")
    stderr: str | None = Field(None, description="A command agent's stderr (its stdout is "
                               "the output), on success and on failure.")
    stderr_truncated: bool = Field(False, description="A listing shows the first 1 KiB.")
    error: str | None
    progress: str | None = Field(None, description="The last progress line the agent "
                                 "reported (ctx.heartbeat) in its current or last attempt.")
    retry_of: str | None = Field(None, description="The succeeded run this run retries.")
    concurrency_key: str | None = Field(
        None, description="Its key under its agent's concurrency_key, rendered when made.")
    waiting_reason: str | None = Field(None, description="Why a queued run is not starting: "
                                       "a pool or rate limit is full.")
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    unpriced: bool = Field(False, description="Tokens were recorded but the model has no "
                           "price: cost_usd is null, not zero.")
    cost: str | None = Field(None, description="The cost for people: $0.000156, unpriced, "
                             "or null without usage.")
    model: str | None

    @classmethod
    def of(cls, run: Run, *, preview: bool = False) -> RunOut:
        return cls(**run_json(run, preview=preview))


class EventOut(BaseModel):
    at: str | None
    kind: str
    attempt: int
    node_id: str | None
    message: str | None


class RunDetail(RunOut):
    events: list[EventOut]
    follow_ups: list[dict[str, Any]] = Field(
        default_factory=list, description="What the run scheduled: each follow-up's "
        "trigger_id, or why it was refused (refused), with its attempt and time.")

    @classmethod
    def with_events(cls, run: Run, events: list[RunEvent]) -> RunDetail:
        return cls(**run_detail_json(run, events))


class RunsPage(BaseModel):
    runs: list[RunOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class CancelOut(BaseModel):
    id: str
    status: str
    was: str


# -- nodes, stats, hooks ------------------------------------------------------------------


class NodeOut(BaseModel):
    id: str
    hostname: str
    pid: int
    started_at: str | None
    heartbeat_at: str | None
    zombie_timeout_s: float
    draining: bool
    alive: bool
    running: int
    agents: list[str] = Field(description="agents the node runs by name (serve --agents)")
    tags: list[str] = Field(description="tags the node offers (serve --tags)")
    runs: str = Field(description="what the node runs, in words")

    @classmethod
    def of(cls, node: Node, alive: bool) -> NodeOut:
        return cls(**node_json(node, alive))


class LagOut(BaseModel):
    samples: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None


class HourOut(BaseModel):
    start: str | None
    counts: dict[str, int]


class UsageOut(BaseModel):
    agent: str
    day: str
    runs: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class StatsOut(BaseModel):
    now: str | None
    nodes_alive: int
    nodes_total: int
    queued: int
    ready: int
    running: int
    last_24h: dict[str, int]
    hours: list[HourOut]
    fire_lag: LagOut
    start_lag: LagOut
    overdue: int = Field(description="Triggers due for over a second that no node has fired "
                         "(nodes at capacity leave them due); counted up to 100,000.")
    behind_s: float | None = Field(description="How late the oldest overdue trigger is, in "
                                   "seconds; null when firing keeps up.")
    usage: list[UsageOut]


class HookOut(BaseModel):
    run_id: str
    status: str
    scheduled_for: str | None
    reason: str | None


# -- alerts -------------------------------------------------------------------------------


class AlertRuleBody(StrictIn):
    """An alert rule (``AlertRuleInput``): see ``agentcron alerts rules add --help``."""

    agent: str
    kind: str = Field(description="failed | consecutive_failures | missed | budget | "
                                  "long_running | dead_man | paused")
    channels: list[str] = Field(description="http(s) URLs are signed webhooks; any other "
                                            "URL an Apprise URL (slack://, mailto://...)")
    trigger: str | None = Field(None, description="A trigger id or name of the agent; none: "
                                                  "every run of the agent")
    threshold: int | None = Field(None, description="consecutive_failures: N")
    after: str | float | None = Field(None, description="long_running: a duration; "
                                      "dead_man: a duration or a multiple such as 2x")
    group_window: str | float = Field("1h", description="Repeats within it are one alert")
    webhook_secret: str | None = Field(None, description="Signs webhook deliveries")


class AlertRuleOut(BaseModel):
    id: str
    agent: str
    trigger_id: str | None
    kind: str
    threshold: int | None
    after_s: float | None
    after: str | float | None
    channels: list[str]
    webhook_signed: bool
    group_window_s: float
    source: str
    created_at: str | None


class AlertOut(BaseModel):
    id: str
    rule_id: str
    kind: str
    agent: str
    trigger_id: str | None
    run_id: str | None
    reason: str | None
    count: int
    link: str | None
    status: str
    attempts: int
    first_at: str | None
    last_at: str | None
    next_attempt_at: str | None
    node_id: str | None
    delivered_at: str | None
    last_error: str | None
