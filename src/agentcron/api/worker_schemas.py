"""The worker protocol's request and response bodies (``api/routes/workers.py``): exact
schemas, so the OpenAPI document shows any client what to send."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agentcron.api.schemas import Duration, Number, StrictIn
from agentcron.rules.scheduling import MAX_FOLLOW_UPS


class ClaimBody(StrictIn):
    """A worker's claim: a long poll that answers as soon as a run is ready, or with no
    runs after ``wait``."""

    worker_id: str = Field(description="The worker's own stable id: 1..64 letters, digits, "
                                       ". _ : @ -; its runs show node `worker:<id>`")
    agents: list[str] = Field(description="Remote agents to claim runs of; each must be "
                                          "one the token is limited to")
    max: int = Field(1, description="Most runs to hand out, 1..100")
    wait: Duration | None = Field(None, description="How long to wait for a run, e.g. "
                                                    "\"20s\" (cut to 60 s); none: answer at "
                                                    "once")
    version: str | None = Field(None, description="What the worker runs, shown in listings")
    outcomes: list[OutcomeBody] = Field(
        default_factory=list, max_length=1000,
        description="Outcomes of runs this worker finished, written (as by `POST "
                    "/api/v1/workers/{worker_id}/complete`) before the claim: one call "
                    "reports what ended and asks for more. Answered in `results`")


class ClaimedRunOut(BaseModel):
    id: str
    lease: int = Field(description="The fencing token: present it with every write")
    attempt: int
    agent: str
    trigger_id: str | None
    scheduled_for: str | None
    payload: Any
    deadline_at: str | None = Field(description="Stop by then; the run is cancelled after")
    zombie_timeout_s: float | None = Field(
        default=None, description="A worker silent this long (no heartbeat) loses the run "
                                  "to another; it stops the run a little before")


class ClaimOut(BaseModel):
    runs: list[ClaimedRunOut]
    results: list[OutcomeOut] = Field(default_factory=list,
                                      description="One per outcome the claim carried, in "
                                                  "the order sent")


class RunLeaseBody(StrictIn):
    id: str
    lease: int
    progress: str | None = Field(None, description="The run's latest progress line (cut to "
                                 "1,000 characters); send it when it changed")


class BeatBody(StrictIn):
    """One call keeps the worker and all its runs alive."""

    runs: list[RunLeaseBody] = Field(default_factory=list,
                                     description="Every run the worker holds, with its lease")
    draining: bool = Field(False, description="The worker is stopping: it claims no more")


class BeatOut(BaseModel):
    revoked: list[str] = Field(description="Runs to stop at once: cancelled, finished or "
                                           "taken over (their writes would be refused)")


class UsageBody(StrictIn):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: Number | None = None
    model: str | None = None


class CompleteBody(StrictIn):
    lease: int
    status: str = Field(description="succeeded or failed")
    output: str | None = None
    error: str | None = None
    retry: bool = Field(False, description="A failure another attempt may fix: retried as "
                                           "the agent's policy says (attempts, backoff)")
    usage: UsageBody | None = None
    schedule: list[dict[str, Any]] = Field(
        default_factory=list, max_length=MAX_FOLLOW_UPS,
        description="Follow-up triggers the run asked for, created with a succeeded outcome "
                    "in its transaction (a stale outcome creates none). Each an object with "
                    "exactly one of `at` (ISO 8601), `in` (a duration, counted from the "
                    "write), `cron` (with `tz`) or `every`, and optionally `agent` (default: "
                    "the run's), `payload`, `name`. A request that does not validate or "
                    "that the agent's guardrails refuse is recorded on the run as a "
                    "`follow_up_refused` event; the outcome is written anyway")


class OutcomeBody(CompleteBody):
    """One run's outcome in a batched complete."""

    id: str = Field(description="The run's id")


class CompleteManyBody(StrictIn):
    """Outcomes of runs the worker holds, written in one transaction."""

    outcomes: list[OutcomeBody] = Field(min_length=1, max_length=1000,
                                        description="1 to 1,000 outcomes, one per run")


class OutcomeOut(BaseModel):
    id: str
    status: str = Field(description="The run's status after the write (queued: it will be "
                                    "attempted again), or `stale`: the lease is stale or "
                                    "the run is not this worker's; nothing was changed "
                                    "(stop working on it)")


class CompleteManyOut(BaseModel):
    results: list[OutcomeOut] = Field(description="One per outcome, in the order sent")


class ReleaseBody(StrictIn):
    lease: int


class RunWrittenOut(BaseModel):
    id: str
    status: str = Field(description="The run's status after the write (queued: it will be "
                                    "attempted again)")


class WorkerOut(BaseModel):
    id: str
    agents: list[str]
    state: str = Field(description="idle, active, draining or lost")
    running: int
    last_seen: str | None
    version: str
    address: str
    token: str | None
    started_at: str | None
    zombie_timeout_s: float


ClaimBody.model_rebuild()
ClaimOut.model_rebuild()
