"""Remote workers: the rules of the worker protocol, shared by every front door.

A worker speaks with a ``worker`` token limited to named agents (``services/access.py``). It
claims runs of those agents (``ClaimInput``), beats for all the runs it holds in one call
(``BeatInput``), and completes (``CompleteInput``) or releases each run, presenting the
run's ``lease``: a write with a stale lease changes nothing and is refused
(``ConflictError``). Output and error are cut to the agent's ``output_limit`` with the same
marker a local run's get; usage is checked like any number a user gives.

The long poll itself (waiting without a database connection until a run is ready) lives in
the API route; ``claim_once`` is one attempt.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from agentcron.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from agentcron.executors.base import output_limit, truncate
from agentcron.executors.context import PROGRESS_LIMIT
from agentcron.executors.follow_ups import NOT_SUCCEEDED, refused_all
from agentcron.models import AgentKind, AgentSpec, FollowUp, Outcome, RunStatus, Usage, Worker
from agentcron.rules.claims import MAX_CLAIM
from agentcron.rules.retry import backoff_delay_s
from agentcron.rules.scheduling import MAX_FOLLOW_UPS
from agentcron.schedule.durations import parse_duration
from agentcron.services.access import Scope
from agentcron.services.follow_ups import FollowUps
from agentcron.services.triggers import TriggerService
from agentcron.services.validate import check_int_between, check_printable
from agentcron.store import Store
from agentcron.store.tokens import ApiToken
from agentcron.store.workers import WORKER_PREFIX, ClaimResult, WorkerCall, node_id_of

MAX_WAIT_S = 60.0
"""The longest a claim waits for a run (a longer ``wait`` is cut to this)."""
MAX_BEAT_RUNS = 1000
MAX_COMPLETE = 1000
"""The most outcomes one batched complete carries."""
_WORKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


class WorkerState(StrEnum):
    IDLE = "idle"
    ACTIVE = "active"
    DRAINING = "draining"
    LOST = "lost"


def worker_state(worker: Worker, now: datetime) -> WorkerState:
    """lost: silent for its zombie timeout; else draining (it said so), active (runs in
    flight) or idle."""
    if worker.heartbeat_at < now - timedelta(seconds=worker.zombie_timeout_s):
        return WorkerState.LOST
    if worker.draining:
        return WorkerState.DRAINING
    return WorkerState.ACTIVE if worker.running else WorkerState.IDLE


def check_worker_id(value: Any) -> str:
    if not isinstance(value, str) or not _WORKER_ID.fullmatch(value):
        raise ValidationError("worker_id", f"{str(value)[:80]!r} is not a worker id",
                              "1 to 64 letters, digits and . _ : @ -, starting with a "
                              "letter or digit")
    return value


@dataclass(frozen=True)
class ClaimInput:
    worker_id: str
    agents: list[str]
    max: int = 1
    wait: str | float | int | None = None
    version: str | None = None


@dataclass(frozen=True)
class RunLease:
    id: str
    lease: int
    progress: str | None = None  # the run's latest progress line, sent when it changed


@dataclass(frozen=True)
class BeatInput:
    runs: list[RunLease] = field(default_factory=list)
    draining: bool = False


@dataclass(frozen=True)
class UsageInput:
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None


@dataclass(frozen=True)
class CompleteInput:
    lease: int
    status: str
    output: str | None = None
    error: str | None = None
    retry: bool = False
    usage: UsageInput | None = None
    #: Follow-up requests (``executors/follow_ups.py``): created with the outcome if it
    #: succeeded and its write is this attempt's.
    schedule: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Claim:
    """A checked claim: who claims, for which agents, how many runs, how long to wait."""

    call: WorkerCall
    agents: list[str]
    max: int
    wait_s: float


class WorkerService:
    def __init__(self, store: Store, default_zombie_timeout_s: float = 60.0, *,
                 follow_ups: FollowUps | None = None) -> None:
        self.store = store
        self.default_zombie_timeout_s = default_zombie_timeout_s
        self.follow_ups = follow_ups or FollowUps(TriggerService(store))

    # -- the protocol -----------------------------------------------------------------------

    def check_claim(self, token: ApiToken, given: ClaimInput, address: str = "") -> Claim:
        """Validate a claim before any wait: the worker id, the agents (each allowed by the
        token, else ``ForbiddenError`` naming it; each a remote agent, else
        ``ValidationError``), ``max`` (1..100) and ``wait`` (a duration; cut to 60 s)."""
        call = self._call(token, given.worker_id, address, given.version)
        if not isinstance(given.agents, list) or not given.agents:
            raise ValidationError("agents", "name at least one agent to claim runs of",
                                  '"agents": ["my-agent"]')
        names = sorted({str(a) for a in given.agents})
        allowed = set(token.agents or [])
        for name in names:
            if name not in allowed:
                raise ForbiddenError(f"token {token.name!r} may not run agent {name!r}; it "
                                     f"is limited to {', '.join(sorted(allowed)) or 'none'}")
        for name in names:
            spec = self.store.get_agent(name)  # NotFoundError names it
            if spec.kind is not AgentKind.REMOTE:
                raise ValidationError("agents", f"agent {name!r} is a {spec.kind.value} "
                                      "agent: nodes run it, not workers",
                                      f"agentcron agents add {name} --remote")
        limit = check_int_between(given.max, "max", 1, MAX_CLAIM)
        wait = 0.0 if given.wait is None else parse_duration(given.wait, "wait",
                                                              allow_zero=True)
        return Claim(call, names, limit, min(wait, MAX_WAIT_S))

    def claim_once(self, claim: Claim) -> ClaimResult:
        """One attempt at the claim: the worker's row refreshed, up to ``max`` runs."""
        return self.store.worker_claim(claim.call, claim.agents, claim.max)

    def beat(self, token: ApiToken, worker_id: str, given: BeatInput, address: str = ""
             ) -> list[str]:
        """Keep the worker and its runs alive; returns the ids of the runs it must stop."""
        call = self._call(token, worker_id, address, None)
        if len(given.runs) > MAX_BEAT_RUNS:
            raise ValidationError("runs", f"{len(given.runs)} runs; at most {MAX_BEAT_RUNS}")
        inflight = [(r.id, check_int_between(r.lease, "runs.lease", 0, 2**31 - 1))
                    for r in given.runs]
        progress = [(r.id, r.lease, _text(r.progress, "runs.progress")[:PROGRESS_LIMIT])
                    for r in given.runs if r.progress is not None]
        revoked = self.store.worker_beat(call, inflight, draining=given.draining)
        for run_id, lease, line in progress:
            # Fenced like the beat itself: a run no longer this worker's keeps its progress.
            if run_id not in revoked:
                self.store.record_progress(run_id, lease, call.node_id, line)
        return revoked

    def complete(self, token: ApiToken, run_id: str, given: CompleteInput) -> RunStatus:
        """Record the outcome of the attempt holding ``lease``; returns the run's status
        after it (``queued`` when it will be retried). A failure with ``retry`` is retried
        as the agent's policy says (attempts left, backoff), exactly as a local run's.
        ``ConflictError`` (nothing changed) when the lease is stale."""
        _status(given.status)
        _usage(given.usage)
        run, node_id = self._held(token, run_id, given.lease)
        outcome, after = self._outcome(run, given, {})
        result = self.store.worker_finish(node_id, outcome)
        if not result.applied:
            raise _stale(run.id, given.lease)
        return after

    def complete_many(self, token: ApiToken, worker_id: str,
                      given: list[tuple[str, CompleteInput]], address: str = ""
                      ) -> list[tuple[str, RunStatus | None]]:
        """``complete`` for many runs of the worker ``worker_id``, in one transaction: for
        each (run id, outcome) in order, the run's status after it, or None when its lease
        is stale or another worker holds it (that one changed nothing; the others stand).
        Every outcome is checked first: a bad one (``ValidationError`` naming
        ``outcomes[i].field``), an unknown run (404) or another agent's (403) refuses the
        whole call and nothing is written."""
        call = self._call(token, worker_id, address, None)
        if not isinstance(given, list) or not 1 <= len(given) <= MAX_COMPLETE:
            raise ValidationError("outcomes", f"{len(given)} outcomes",
                                  f"send 1 to {MAX_COMPLETE} per call")
        ids = [run_id for run_id, _ in given]
        if len(set(ids)) != len(ids):
            raise ValidationError("outcomes", "a run appears twice",
                                  "send one outcome per run")
        for i, (_, item) in enumerate(given):
            try:
                if not isinstance(item.lease, int) or isinstance(item.lease, bool):
                    raise ValidationError("lease", "must be the integer lease the claim gave")
                _status(item.status)
                _usage(item.usage)
                for name in ("output", "error"):
                    value = getattr(item, name)
                    if value is not None:
                        _text(value, name)
            except ValidationError as exc:
                raise ValidationError(f"outcomes[{i}].{exc.field}", exc.message,
                                      exc.hint) from None
        heads = self.store.run_heads(ids)
        allowed = set(token.agents or [])
        for run_id in ids:
            head = heads.get(run_id)
            if head is None:
                raise NotFoundError("run", run_id)
            if head.agent not in allowed:
                raise ForbiddenError(f"token {token.name!r} may not run agent {head.agent!r}")
        specs: dict[str, Any] = {}
        outcomes: list[Outcome] = []
        after: dict[str, RunStatus] = {}
        for run_id, item in given:
            head = heads[run_id]
            # Fenced here on the holder, and again in the store on (lease, worker).
            if (head.lease != item.lease or head.node_id != call.node_id
                    or head.holder_token != token.name):
                continue
            outcome, status = self._outcome(head, item, specs)
            outcomes.append(outcome)
            after[run_id] = status
        applied = set(self.store.worker_finish_many(call.node_id, outcomes).applied
                      if outcomes else [])
        return [(run_id, after[run_id] if run_id in applied else None) for run_id in ids]

    def _outcome(self, run: Any, given: CompleteInput, specs: dict[str, Any]
                 ) -> tuple[Outcome, RunStatus]:
        """The checked outcome for ``run``, and the run's status once it is written;
        ``specs`` caches agents across a batch."""
        status = _status(given.status)
        usage = _usage(given.usage)
        spec = specs.get(run.agent)
        if spec is None:
            spec = specs[run.agent] = self.store.get_agent(run.agent)
        limit = output_limit(spec.config)
        output = None if given.output is None else truncate(_text(given.output, "output"),
                                                            limit)
        error = None if given.error is None else truncate(_text(given.error, "error"), limit)
        delay: float | None = None
        if status is RunStatus.FAILED and given.retry and run.attempt < spec.max_attempts:
            delay = backoff_delay_s(run.attempt, spec.retry_backoff_s)
        outcome = Outcome(run.id, given.lease, status, output=output, error=error,
                          usage=usage, retry_delay_s=delay,
                          follow_ups=self._follow_ups(run, status, given.schedule, spec))
        return outcome, RunStatus.QUEUED if delay is not None else status

    def _follow_ups(self, run: Any, status: RunStatus, requests: Sequence[Any],
                    spec: AgentSpec) -> tuple[FollowUp, ...]:
        """A remote run's follow-ups, built as a node builds its runs' (only a succeeded
        attempt's; ``services/follow_ups.py``). Nothing is read when there are none."""
        if not requests:
            return ()
        if len(requests) > MAX_FOLLOW_UPS + 1:
            raise ValidationError("schedule", f"{len(requests)} follow-ups",
                                  f"at most {MAX_FOLLOW_UPS} per run")
        if status is not RunStatus.SUCCEEDED:
            return refused_all(requests, NOT_SUCCEEDED)
        return self.follow_ups.build(run.id, run.agent, requests, self.store.now(),
                                     spec=spec)

    def release(self, token: ApiToken, run_id: str, lease: int) -> None:
        """Hand the run back to the queue, its attempt given back."""
        run, node_id = self._held(token, run_id, lease)
        if not self.store.worker_release(node_id, run.id, lease):
            raise _stale(run.id, lease)

    # -- what people see --------------------------------------------------------------------

    def list(self) -> list[Worker]:
        return self.store.list_workers(self.default_zombie_timeout_s)

    # -- helpers ------------------------------------------------------------------------------

    def _call(self, token: ApiToken, worker_id: str, address: str, version: str | None
              ) -> WorkerCall:
        if token.scope != Scope.WORKER.value:
            raise ForbiddenError(f"token {token.name!r} has scope {token.scope!r}; the "
                                 "worker protocol needs a worker token")
        return WorkerCall(check_worker_id(worker_id), token.name, address,
                          check_printable(version, "version", 32) or "")

    def _held(self, token: ApiToken, run_id: str, lease: Any) -> tuple[Any, str]:
        """The run a worker writes for, and the worker id holding it: 404 for an unknown
        run, 403 for another agent's, 409 (stale) unless a worker of this token holds
        ``lease``. The write itself is fenced again in the store."""
        if not isinstance(lease, int) or isinstance(lease, bool):
            raise ValidationError("lease", "must be the integer lease the claim gave")
        if token.scope != Scope.WORKER.value:
            raise ForbiddenError(f"token {token.name!r} has scope {token.scope!r}; the "
                                 "worker protocol needs a worker token")
        run = self.store.run_head(run_id)
        if run is None:
            raise NotFoundError("run", run_id)
        if run.agent not in (token.agents or []):
            raise ForbiddenError(f"token {token.name!r} may not run agent {run.agent!r}")
        node_id = run.node_id or ""
        if (run.lease != lease or not node_id.startswith(WORKER_PREFIX)
                or run.holder_token != token.name):
            raise _stale(run.id, lease)
        return run, node_id


def _stale(run_id: str, lease: int) -> ConflictError:
    return ConflictError(f"stale lease {lease} for run {run_id}: the run was cancelled, "
                         "finished or taken over; nothing was changed (stop working on it)")


def _status(value: Any) -> RunStatus:
    if value not in (RunStatus.SUCCEEDED.value, RunStatus.FAILED.value):
        raise ValidationError("status", f"{str(value)[:40]!r} is not an outcome",
                              "succeeded or failed")
    return RunStatus(value)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(name, "must be a string or null")
    return value


def _usage(given: UsageInput | None) -> Usage:
    if given is None:
        return Usage()
    for name in ("input_tokens", "output_tokens"):
        value = getattr(given, name)
        if value is not None:
            check_int_between(value, f"usage.{name}", 0, 2**62)
    cost = given.cost_usd
    if cost is not None and (not math.isfinite(cost) or not 0 <= cost <= 1e9):
        raise ValidationError("usage.cost_usd", f"{cost!r} is not a cost",
                              "a finite number of dollars, 0 or more")
    model = check_printable(given.model, "usage.model", 100)
    return Usage(given.input_tokens, given.output_tokens, cost, model)


def worker_node_id(worker_id: str) -> str:
    """The id a worker's runs show as their node (``worker:`` + its id)."""
    return node_id_of(worker_id)
