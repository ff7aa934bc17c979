"""Backfill: queue runs of a trigger for the scheduled times of a past range.

``BackfillInput`` is a backfill as every front door states it; ``BackfillService.backfill``
checks it whole before it writes anything (the range is in the past, the trigger has a
schedule, the range holds at most ``MAX_BACKFILL`` times: counted from the schedule's
fields, never by expanding it), then queues the times in batches of ``BATCH`` with a short
pause between batches, so a large backfill does not hold the database for long. The
schedule maths enumerates the times (``schedule/``); the store's unique key on (trigger,
scheduled time) decides which already have a run (``store/backfilling.py``). The queued
runs are claimed like any other: the agent's concurrency limit and budget hold there.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agentcron.errors import ValidationError
from agentcron.models import CatchupMode, TriggerKind
from agentcron.schedule.spec import parse_at
from agentcron.services.triggers import TriggerService, schedule_of
from agentcron.services.validate import check_aware, check_one_of, now_or_store
from agentcron.store import Store

MAX_BACKFILL = 10_000
"""The most scheduled times one backfill may cover (checked before anything is queued)."""
BATCH = 500
"""Times queued per statement."""
BATCH_PAUSE_S = 0.05
"""The pause between two batches: bounds the rate a backfill writes at (10,000 runs/s)."""

_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class BackfillInput:
    """A backfill as a user states it: the trigger (id or name), the range ``start`` ..
    ``end`` (both included; times in the trigger's zone unless they carry an offset) and
    the mode: ``all`` queues a run per scheduled time, ``coalesce`` one run (at the last
    time) standing for all of them."""

    trigger: str
    start: str | datetime
    end: str | datetime
    mode: str = "all"


@dataclass(frozen=True)
class BackfillResult:
    trigger_id: str
    times: int
    """Scheduled times in the range."""
    queued: int
    """Runs queued."""
    skipped: int
    """Times (runs, with coalesce) that already had a run and were left as they are."""


Progress = Callable[[int, int], None]
"""Called after each batch with (times done, times in all)."""


class BackfillService:
    def __init__(self, store: Store, triggers: TriggerService) -> None:
        self.store = store
        self.triggers = triggers

    def backfill(self, spec: BackfillInput, now: datetime | None = None, *,
                 progress: Progress | None = None, pause_s: float = BATCH_PAUSE_S
                 ) -> BackfillResult:
        """Queue runs for the trigger's scheduled times in the range, never a second run of
        a time that has one. Everything is checked before the first run is queued."""
        now = now_or_store(self.store, now)
        trigger = self.triggers.get(spec.trigger)
        if trigger.kind is TriggerKind.WEBHOOK:
            raise ValidationError("trigger", f"{trigger.id} is a webhook trigger, which has "
                                  "no schedule to backfill", "give a cron, interval or "
                                  "once trigger")
        mode: CatchupMode = check_one_of(spec.mode, CatchupMode, "mode")
        start = _time(spec.start, trigger.timezone, "from")
        end = _time(spec.end, trigger.timezone, "to")
        if end < start:
            raise ValidationError("to", "is before --from", "give --from earlier than --to")
        if end > now:
            raise ValidationError("to", f"{end.isoformat()} is in the future",
                                  "backfill past times only: the schedule fires the rest")
        schedule = schedule_of(trigger)
        total = schedule.count_between(start, end + _TICK, MAX_BACKFILL + 1)
        if total > MAX_BACKFILL:
            raise ValidationError("to", f"the range holds more than {MAX_BACKFILL} "
                                  "scheduled times, the most one backfill may queue",
                                  "split it into shorter ranges")
        times: list[datetime] = []
        at = schedule.next_after(start - _TICK)
        while at is not None and at <= end:
            times.append(at)
            at = schedule.next_after(at)
        if mode is CatchupMode.COALESCE:
            batches = [[(times[-1], len(times))]] if times else []
        else:
            batches = [[(t, 1) for t in times[i:i + BATCH]]
                       for i in range(0, len(times), BATCH)]
        queued = done = 0
        for i, batch in enumerate(batches):
            if i and pause_s > 0:
                time.sleep(pause_s)
            queued += self.store.backfill(trigger.id, batch, now)
            done += sum(n for _, n in batch)
            if progress is not None:
                progress(done, len(times))
        runs = sum(len(batch) for batch in batches)
        return BackfillResult(trigger.id, len(times), queued, runs - queued)


def _time(value: str | datetime, zone: str, field: str) -> datetime:
    if isinstance(value, datetime):
        checked = check_aware(value, field)
    else:
        checked = parse_at(value, zone, field) if isinstance(value, str) else None
    if checked is None:
        raise ValidationError(field, "no time given", "e.g. 2026-11-01T00:00Z")
    return checked
