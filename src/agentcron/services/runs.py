"""Runs, nodes and webhook deliveries in the service layer (the base of ``Services``):
listing with its paging rules, show, cancel, retry, fire now, which nodes are alive, and
turning a signed webhook delivery into a run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentcron.errors import NotFoundError, ValidationError
from agentcron.models import Run, RunEvent, RunStatus
from agentcron.rules.ids import MIN_RUN_PREFIX, is_run_id_prefix
from agentcron.rules.keys import MAX_KEY_CHARS
from agentcron.services.validate import (
    ID,
    RUN_ID,
    check_aware,
    check_int_between,
    check_name,
    check_one_of,
    check_payload,
)
from agentcron.store import RunFilter, Store

MAX_RUNS_PAGE = 1000
#: Most runs an ambiguous prefix's error lists.
MAX_CANDIDATES = 10


@dataclass(frozen=True)
class RunsPage:
    runs: list[Run]
    next_cursor: str | None


class RunService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def page(self, *, agent: str | None = None, trigger_id: str | None = None,
                  status: str | None = None, since: datetime | None = None,
                  until: datetime | None = None, limit: int = 50,
                  before: str | None = None, key: str | None = None) -> RunsPage:
        """Newest first, ``limit`` at a time; ``next_cursor`` (a run id, for ``before``)
        is set when there are older runs. A page is a listing: each run carries only the
        start of its payload and output (see ``documents.run_json(preview=True)``)."""
        wanted = None if status is None else check_one_of(status.strip().lower(), RunStatus,
                                                          "status")
        check_int_between(limit, "limit", 1, MAX_RUNS_PAGE)
        if agent is not None:
            check_name(agent, "agent")
        if trigger_id is not None and not ID.match(trigger_id):
            raise ValidationError("trigger", f"{trigger_id[:80]!r} is not a trigger id",
                                  "e.g. tr_4k8m2q9x7c1d")
        if before is not None and not RUN_ID.match(before):
            raise ValidationError("before", f"{before[:80]!r} is not a run id",
                                  "pass the next_cursor of the previous page")
        check_aware(since, "since", "Z")
        check_aware(until, "until", "Z")
        if key is not None and len(key) > MAX_KEY_CHARS:
            raise ValidationError("key", f"is longer than {MAX_KEY_CHARS} characters",
                                  "give a run's concurrency key as shown")
        filters = RunFilter(agent=agent, trigger_id=trigger_id, status=wanted, since=since,
                            until=until, key=key)
        runs = self.store.list_runs(filters, limit=limit + 1, before=before, preview=True)
        more = len(runs) > limit
        return RunsPage(runs[:limit], runs[limit - 1].id if more else None)

    def last_status(self, trigger_ids: list[str]) -> dict[str, str]:
        """The status of each trigger's newest run, by trigger id (none for a trigger that
        has not run)."""
        return self.store.last_run_status(trigger_ids)

    def resolve(self, ref: str) -> str:
        """The id of the run ``ref`` names: a whole run id, or (as git does) a prefix of
        at least ``MIN_RUN_PREFIX`` characters that only one run's id starts with. A
        shorter or ambiguous prefix is refused (``ValidationError``; an ambiguous one lists
        the runs it could mean); text that cannot start a run id is ``NotFoundError``."""
        if not isinstance(ref, str):
            raise NotFoundError("run", str(ref)[:80])
        prefix = ref.strip().lower()
        if RUN_ID.match(prefix):
            return prefix
        if not is_run_id_prefix(prefix):
            raise NotFoundError("run", ref[:80])
        if len(prefix) < MIN_RUN_PREFIX:
            raise ValidationError("run", f"{ref!r} is too short to name a run",
                                  f"give at least {MIN_RUN_PREFIX} characters of the run id")
        found = self.store.run_ids_with_prefix(prefix, limit=MAX_CANDIDATES + 1)
        if not found:
            raise NotFoundError("run", ref)
        if len(found) == 1:
            return found[0]
        count = (f"more than {MAX_CANDIDATES}" if len(found) > MAX_CANDIDATES
                 else str(len(found)))
        raise ValidationError(
            "run", f"{ref!r} is the start of {count} run ids: "
            + ", ".join(found[:MAX_CANDIDATES]), "give more characters of the run id")

    def get(self, run_id: str) -> tuple[Run, list[RunEvent]]:
        """A run by id or unique id prefix (see ``resolve``), with its events."""
        found = self.resolve(run_id)
        return self.store.get_run(found), self.store.run_history(found)

    def cancel(self, run_id: str, now: datetime | None = None) -> RunStatus:
        return self.store.cancel_run(self.resolve(run_id), now)

    def retry(self, run_id: str, now: datetime | None = None) -> str:
        """The id of the run that will run: the same run, or a new one for a succeeded run
        (which keeps its output)."""
        return self.store.retry_run(self.resolve(run_id), now)

    def fire(self, agent: str, payload: Any = None, *, payload_is_json_text: bool = False,
             now: datetime | None = None) -> str:
        """Queue a run of ``agent`` now (no trigger); returns its id."""
        check_name(agent, "agent")
        value = check_payload(payload, payload_is_json_text)
        return self.store.fire_now(agent, value, now)
