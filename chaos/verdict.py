"""From what the database and the receiver hold after a storm, the figures and the verdict.

Words (the README's "Fault injection" section states them too):

- **expected fire**: a (trigger, scheduled time) the trigger's schedule has between its start
  and its end. Every trigger fires every scheduled time in ``all`` catch-up mode with a 10
  minute window, and every fault is much shorter than that, so every expected fire is due.
- **duplicate fire**: a second run for the same (trigger, scheduled time): a second row in
  the database (the unique constraint makes that impossible), or the receiver seeing two
  different run ids for one (trigger, scheduled time). Must be 0.
- **missing fire**: an expected fire with no run at all. Must be 0.
- **unexpected fire**: a run for a time the schedule does not have. Must be 0.
- **early fire**: a run started or delivered before its scheduled time. Must be 0. (A run
  may be written and claimed before its time: ``allow`` triggers are fired ahead, up to
  ``--fire-lookahead``; such runs are counted as ``runs_fired_ahead``.)
- **lost run**: a run of an expected fire that did not end ``succeeded``, or that says it
  succeeded although the receiver never answered a delivery of it. Must be 0.
- **retried run**: a run that took more than one attempt (its node died or was paused with
  it, or a delivery failed). Allowed: execution is at least once.
- **duplicate delivery**: the receiver answered 200 more than once for the same run id.
  Allowed, and reported: a node can deliver and then die (or be paused past its lease)
  before its completion is written, and the run is then delivered again as a new attempt.
  The receiver can drop the repeat by its ``Idempotency-Key`` (the run id).
- **leak** (the soak): a node's RSS or the database's connections rising over the samples
  taken after warm-up by more than noise and a step can explain (``chaos.trend``). Must
  not happen.
- **recovery time** of a fault: from the moment the fault ended (the node was killed, the
  paused node was resumed, the draining node exited, the database accepted connections
  again) until every run scheduled before that moment had succeeded; the verdict line
  shows the largest.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from agentcron.models import RunStatus
from agentcron.store.schema import run_events, runs
from chaos.harness import Storm

SUCCEEDED = RunStatus.SUCCEEDED.value


def _us(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000 + 0.5)


def _epoch_us(text: str) -> int:
    return _us(datetime.fromisoformat(text))


def figures(storm: Storm) -> dict[str, Any]:
    expected: set[tuple[str, int]] = set()
    trigger_ids: set[str] = set()
    delivers: set[str] = set()  # triggers whose runs post to the receiver
    for group in storm.groups:
        times = [_us(t) for t in group.times()]
        for trigger_id in group.ids:
            trigger_ids.add(trigger_id)
            if storm.agents[group.agent].delivers:
                delivers.add(trigger_id)
            expected.update((trigger_id, t) for t in times)

    def read(conn: Any) -> tuple[list[Any], list[Any]]:
        rows = conn.execute(select(
            runs.c.id, runs.c.trigger_id, runs.c.scheduled_for, runs.c.status,
            runs.c.attempt, runs.c.queued_at, runs.c.started_at, runs.c.finished_at,
            runs.c.node_id, runs.c.error).where(runs.c.trigger_id.is_not(None))).all()
        events = conn.execute(select(run_events.c.run_id, run_events.c.kind,
                                     run_events.c.at, run_events.c.attempt,
                                     run_events.c.node_id)).all()
        return rows, events

    rows, events = storm.query(read)

    # -- the receiver's ledger --------------------------------------------------------------
    delivered: Counter[str] = Counter()
    delivered_attempts: Counter[tuple[str, int]] = Counter()
    requests = 0
    runs_per_key: dict[tuple[str, int], set[str]] = defaultdict(set)
    early_deliveries = 0
    answered_at: dict[tuple[str, int], float] = {}
    # When each attempt executed, as the receiver saw it: from its request to its answer or
    # to its client going away, whichever came first (and whether it went away).
    spans: dict[tuple[str, int], tuple[float, float, bool]] = {}
    if storm.ledger_path.exists():
        with storm.ledger_path.open(encoding="utf-8") as ledger:
            for line in ledger:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 9:
                    continue
                got, answered, run_id, attempt, trigger_id, scheduled, _key, ok, gone = parts
                ended = min(float(answered), float(gone)) if gone else float(answered)
                spans[(run_id, int(attempt))] = (float(got), ended, bool(gone))
                requests += 1
                scheduled_us = _epoch_us(scheduled)
                runs_per_key[(trigger_id, scheduled_us)].add(run_id)
                answered_at[(run_id, int(attempt))] = float(answered)
                if float(got) * 1_000_000 < scheduled_us:
                    early_deliveries += 1
                if ok == "1":
                    delivered[run_id] += 1
                    delivered_attempts[(run_id, int(attempt))] += 1

    # -- the database -----------------------------------------------------------------------
    per_key: Counter[tuple[str, int]] = Counter()
    lost: list[dict[str, Any]] = []
    retried = 0
    early_runs = 0
    fired_ahead = 0
    lags: list[float] = []
    finished_by_scheduled: list[tuple[int, float]] = []
    for row in rows:
        key = (row.trigger_id, _us(row.scheduled_for))
        per_key[key] += 1
        if row.attempt > 1:
            retried += 1
        if row.started_at is not None and row.started_at < row.scheduled_for:
            early_runs += 1
        if row.queued_at < row.scheduled_for:
            fired_ahead += 1
        # Firing lag: how late the run was written (0 when it was written ahead).
        lags.append(max(0.0, (row.queued_at - row.scheduled_for).total_seconds()))
        if key not in expected:
            continue
        if row.status != SUCCEEDED or (row.trigger_id in delivers and delivered[row.id] == 0):
            lost.append({"run_id": row.id, "trigger_id": row.trigger_id,
                         "scheduled_for": row.scheduled_for.isoformat(),
                         "status": row.status, "attempt": row.attempt, "node_id": row.node_id,
                         "delivered": delivered[row.id], "error": row.error})
        if row.finished_at is not None:
            finished_by_scheduled.append((key[1], row.finished_at.timestamp()))

    seen = expected & set(per_key)
    missing = Counter(datetime.fromtimestamp(t / 1e6, UTC).isoformat()
                      for key in expected - seen for t in [key[1]])
    db_duplicates = sum(n - 1 for n in per_key.values() if n > 1)
    receiver_duplicates = sum(len(ids) - 1 for ids in runs_per_key.values() if len(ids) > 1)
    unexpected = sum(1 for key in per_key if key not in expected and key[0] in trigger_ids)

    kinds = Counter(e.kind for e in events)
    released = {e.run_id for e in events if e.kind == "released"}
    recovered = {e.run_id for e in events if e.kind == "lost"}

    # -- recovery time per fault ---------------------------------------------------------------
    finished_by_scheduled.sort()
    recoveries: list[float] = []
    for fault in storm.faults:
        ended = fault.cleared_at if fault.cleared_at is not None else fault.at
        cutoff = int(ended * 1_000_000)
        latest = max((f for s, f in finished_by_scheduled if s <= cutoff), default=None)
        if latest is not None:
            recovery = max(0.0, latest - ended)
            recoveries.append(recovery)
            fault.detail["recovery_s"] = round(recovery, 2)

    lags.sort()
    duplicate_deliveries = sum(n - 1 for n in delivered.values() if n > 1)
    return {
        "fires_expected": len(expected),
        "fires_seen": len(seen),
        "duplicate_fires": db_duplicates + receiver_duplicates,
        "duplicate_fires_db": db_duplicates,
        "duplicate_fires_receiver": receiver_duplicates,
        "missing_fires": len(expected) - len(seen),
        "missing_by_time": dict(sorted(missing.items())[:20]),
        "unexpected_fires": unexpected,
        "early_fires": early_runs + early_deliveries,
        "runs_fired_ahead": fired_ahead,
        "runs_lost": len(lost),
        "lost_examples": lost[:20],
        "runs_retried": retried,
        "runs_recovered_from_dead_nodes": len(recovered),
        "runs_released_by_drain": len(released),
        "events": dict(kinds),
        "requests_received": requests,
        "deliveries": sum(delivered.values()),
        "duplicate_deliveries": duplicate_deliveries,
        "runs_delivered_more_than_once": sum(1 for n in delivered.values() if n > 1),
        "attempts_delivered_more_than_once": sum(
            1 for n in delivered_attempts.values() if n > 1),
        "max_recovery_s": round(max(recoveries), 2) if recoveries else None,
        "median_recovery_s": round(statistics.median(recoveries), 2) if recoveries else None,
        "fire_lag_s": {
            "p50": round(lags[len(lags) // 2], 3) if lags else None,
            "p99": round(lags[int(len(lags) * 0.99)], 3) if lags else None,
            "max": round(lags[-1], 3) if lags else None,
        },
        "_answered_at": answered_at,
        "_spans": spans,
        "_released": released,
        "_events": events,
        "_rows": rows,
    }


def error_lines(storm: Storm) -> list[str]:
    """Lines at error level or worse in the nodes' logs (and tracebacks)."""
    found = []
    for node_id, text in storm.node_logs():
        for line in text.splitlines():
            if ('"level": "error"' in line or '"level": "critical"' in line
                    or line.startswith(("ERROR", "CRITICAL", "Traceback"))):
                found.append(f"{node_id}: {line[:400]}")
    return found


def public(figs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in figs.items() if not k.startswith("_")}


def verdict_line(scenario: str, figs: dict[str, Any], passed: bool) -> str:
    recovery = figs.get("max_recovery_s")
    return (
        f"{scenario}: fires expected {figs['fires_expected']}, seen {figs['fires_seen']}, "
        f"duplicates {figs['duplicate_fires']}, missing {figs['missing_fires']}, "
        f"runs lost {figs['runs_lost']}, runs retried {figs['runs_retried']}, "
        f"max recovery {'-' if recovery is None else f'{recovery:.1f}s'}"
        f" | early {figs['early_fires']}, unexpected {figs['unexpected_fires']}, "
        f"duplicate deliveries {figs['duplicate_deliveries']} (at-least-once) "
        f"=> {'PASS' if passed else 'FAIL'}"
    )
