"""What one firing batch does, decided in pure Python before anything is written: for the
locked due rows, the runs to insert (with their overlap outcome), how far to advance each
trigger, which fires were missed and which rows cannot be planned (quarantined). The
schedule maths (``schedule.plan_fires``) and the overlap rule (``rules.overlap``) decide;
``store.firing`` reads the rows and writes the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from agentcron.models import CatchupMode, ClaimedRun, OverlapPolicy, RunStatus
from agentcron.rules.ids import new_run_id
from agentcron.rules.overlap import ActiveRuns, decide_overlap
from agentcron.schedule.base import Schedule
from agentcron.schedule.catchup import plan_fires
from agentcron.schedule.jitter import jitter_offset
from agentcron.schedule.spec import SPEC_FIELDS, schedule_of_fields

# Upper bound on runs one batch inserts (catch-up in `all` mode can ask for many per
# trigger). Keeps the PostgreSQL VALUES list under its 65,535 parameter limit.
MAX_RUNS_PER_BATCH = 4000

# A broken_reason is one line, at most this long.
MAX_REASON_CHARS = 500

@dataclass(frozen=True)
class MissedFires:
    trigger_id: str
    agent: str
    count: int
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True)
class BrokenTrigger:
    """A trigger this batch quarantined, with why (one line)."""

    trigger_id: str
    agent: str
    reason: str


def broken_reason(exc: BaseException) -> str:
    """``Type: first line of the message``, bounded: what ``broken_reason`` stores."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:MAX_REASON_CHARS]


@dataclass
class Decision:
    new_runs: list[dict[str, Any]] = field(default_factory=list)
    advances: list[dict[str, Any]] = field(default_factory=list)
    replace_trigger_ids: list[str] = field(default_factory=list)
    missed: list[MissedFires] = field(default_factory=list)
    # Triggers fired ahead of their time: kept only if their run is claimed at once.
    ahead_trigger_ids: set[str] = field(default_factory=set)
    broken: list[BrokenTrigger] = field(default_factory=list)

    def hold_back(self, waiting: list[dict[str, Any]], claimed: list[ClaimedRun]) -> int:
        """The firing node is full: the triggers of runs it could have started now but
        had no slot for are left due (not inserted, not advanced), to be fired by a node
        with a free slot, oldest first. Queuing them instead would make every run cost a
        third write (queued, claimed, finished) just when the database has the least to
        spare, and a queued ready run stops every later fire-time claim of its agent (it
        keeps its turn). A trigger with a claimed run keeps the runs before its first one
        left waiting and is advanced only to that time, so the rest fire later from there
        (``_cut``). Never a trigger whose runs it replaces (the replace is already
        written). Returns how many triggers were held back."""
        replaced = set(self.replace_trigger_ids)
        started = {run.trigger_id for run in claimed}
        cut_at: dict[str, datetime] = {}  # each trigger's first run left waiting
        for run in waiting:
            tid, at = run["trigger_id"], run["scheduled_for"]
            if tid not in replaced and (tid not in cut_at or at < cut_at[tid]):
                cut_at[tid] = at
        held = {tid for tid in cut_at if tid not in started}
        cuts = {tid: at for tid, at in cut_at.items() if tid in started}
        if held or cuts:
            self.new_runs = [r for r in self.new_runs if r["trigger_id"] not in held
                             and not (r["trigger_id"] in cuts
                                      and r["scheduled_for"] >= cuts[r["trigger_id"]])]
            self.advances = [_cut(a, cuts[a["id"]], self.new_runs) if a["id"] in cuts else a
                             for a in self.advances if a["id"] not in held]
            self.missed = [m for m in self.missed if m.trigger_id not in held]
        return len(held)

    def drop_ahead_unless_claimed(self) -> int:
        """A run fired ahead must be started by this node at its time; one it could not
        claim is not inserted, and its trigger is left as it was, to fire at its time.
        Returns how many triggers were left."""
        unclaimed = {run["trigger_id"] for run in self.new_runs
                     if run["trigger_id"] in self.ahead_trigger_ids
                     and run["status"] != RunStatus.RUNNING.value}
        if unclaimed:
            self.new_runs = [r for r in self.new_runs if r["trigger_id"] not in unclaimed]
            self.advances = [a for a in self.advances if a["id"] not in unclaimed]
        return len(unclaimed)


def _cut(advance: dict[str, Any], at: datetime, kept: list[dict[str, Any]]) -> dict[str, Any]:
    """A trigger's advance when only its runs before ``at`` are inserted: it is next due
    at ``at``, and its fired and skipped counts are those of the runs kept (its missed
    times, all before them, stay counted)."""
    mine = [r for r in kept if r["trigger_id"] == advance["id"]]
    skipped = [r["scheduled_for"] for r in mine if r["status"] == RunStatus.SKIPPED.value]
    return {**advance, "next_fire_at": at,
            "last_fired_at": max((r["scheduled_for"] for r in mine), default=None),
            "skipped": len(skipped), "last_skipped_at": max(skipped, default=None)}


def _schedule_of(row: RowMapping) -> Schedule:
    return schedule_of_fields(tuple([row[name] for name in SPEC_FIELDS]))


# A stored value's member by a dict lookup: calling the enum is several times slower, and
# this runs twice for every due row. A bad value still gets the enum's own ValueError.
_CATCHUP_MODES = {mode.value: mode for mode in CatchupMode}
_OVERLAPS = {policy.value: policy for policy in OverlapPolicy}


def decide(rows: list[RowMapping], now: datetime, max_runs: int = MAX_RUNS_PER_BATCH
           ) -> Decision:
    """Pure: which runs to insert and how to advance each trigger, for locked due rows,
    planning at most ``max_runs`` runs (the rows past them are left as they are, due, for
    the next batch; a row cut short is advanced to its first time left out).

    A row not due yet (``next_fire_at`` after ``now``: the caller fires ahead) gets exactly
    one run, for its ``next_fire_at``, and is listed in ``ahead_trigger_ids``. A row whose
    planning raises is listed in ``broken`` with the error and contributes nothing else."""
    decision = Decision()
    budget = min(max_runs, MAX_RUNS_PER_BATCH)
    # Only SQLite's rows say whether their payload text is JSON (PostgreSQL's jsonb is).
    check_payload = bool(rows) and "payload_ok" in rows[0]
    for row in rows:
        if budget <= 0:
            break  # left locked but untouched: the next batch takes it
        try:
            new_runs, advance, missed, replace, ahead = _plan_row(row, now, budget,
                                                                  check_payload)
        except Exception as exc:  # any planning error of this row: quarantine it
            decision.broken.append(BrokenTrigger(row["id"], row["agent"], broken_reason(exc)))
            continue
        budget -= len(new_runs)
        decision.new_runs += new_runs
        decision.advances.append(advance)
        if missed is not None:
            decision.missed.append(missed)
        if replace:
            decision.replace_trigger_ids.append(row["id"])
        if ahead:
            decision.ahead_trigger_ids.add(row["id"])
    return decision


def _plan_row(row: RowMapping, now: datetime, budget: int, check_payload: bool
              ) -> tuple[list[dict[str, Any]], dict[str, Any], MissedFires | None, bool, bool]:
    """One row's part of ``decide``: (its new runs, its advance, its missed fires, whether
    its active runs are replaced, whether it fires ahead). Raises whatever its schedule
    maths raises; nothing is added to the batch's decision until the whole row is
    planned."""
    trigger_id, agent, payload = row["id"], row["agent"], row["payload"]
    if check_payload and payload is not None and row["payload_ok"] == 0:
        raise ValueError("the payload stored for this trigger is not valid JSON")
    schedule = _schedule_of(row)
    mode = _CATCHUP_MODES.get(row["catchup_mode"]) or CatchupMode(row["catchup_mode"])
    next_fire_at = row["next_fire_at"]
    ahead = next_fire_at > now
    # Ahead: planned as if it were that moment (one fire time, nothing missed).
    plan = plan_fires(schedule, next_fire_at, next_fire_at if ahead else now,
                      row["catchup_window_s"], mode, max_runs=budget)
    overlap = decide_overlap(
        _OVERLAPS.get(row["overlap"]) or OverlapPolicy(row["overlap"]),
        ActiveRuns(queued=bool(row["n_queued"]), running=bool(row["n_running"])),
        len(plan.fire_times))
    coalesced = plan.coalesced if mode is CatchupMode.COALESCE else 1
    jitter_s = row["jitter_s"]
    new_runs: list[dict[str, Any]] = []
    skipped: list[datetime] = []
    for scheduled, new_run in zip(plan.fire_times, overlap.new_runs, strict=True):
        status = new_run.status
        if status is RunStatus.SKIPPED:
            skipped.append(scheduled)
        new_runs.append({
            "id": new_run_id(),
            "trigger_id": trigger_id,
            "agent": agent,
            "scheduled_for": scheduled,
            "status": status.value,
            "reason": new_run.reason,
            "payload": payload,
            "coalesced": coalesced,
            "queued_at": now,
            "run_after": scheduled + jitter_offset(trigger_id, scheduled, jitter_s),
            "finished_at": None if status is RunStatus.QUEUED else now,
            "node_id": None,
            "lease": 0,
            "attempt": 0,
            "started_at": None,
            "heartbeat_at": None,
            "deadline_at": None,
            "shard": 0,
        })
    missed = (MissedFires(trigger_id, agent, plan.missed, plan.first_missed, plan.last_missed)
              if plan.missed else None)
    advance = {
        "id": trigger_id,
        "next_fire_at": plan.next_fire_at,
        "missed": plan.missed,
        "last_missed_at": plan.last_missed,
        "last_fired_at": plan.fire_times[-1] if plan.fire_times else None,
        "skipped": len(skipped),
        "last_skipped_at": max(skipped) if skipped else None,
    }
    return new_runs, advance, missed, overlap.cancel_active, ahead
