"""Runs, nodes and webhook deliveries in the service layer (the base of ``Services``):
listing with its paging rules, show, cancel, retry, fire now, which nodes are alive, and
turning a signed webhook delivery into a run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentcron.errors import ValidationError
from agentcron.executors.signing import verify
from agentcron.models import Node, Run, RunEvent, RunStatus
from agentcron.schedule.spec import parse_payload
from agentcron.services.validate import ID, RUN_ID, _bounded_int, _choice, check_name, known_id
from agentcron.store import RunFilter, Store
from agentcron.store.webhooks import Delivery

MAX_RUNS_PAGE = 1000
MAX_WEBHOOK_ID = 255


@dataclass(frozen=True)
class RunsPage:
    runs: list[Run]
    next_cursor: str | None


class RunServices:
    def __init__(self, store: Store) -> None:
        self.store = store

    def now(self, now: datetime | None = None) -> datetime:
        return now if now is not None else self.store.now()

    # -- runs -------------------------------------------------------------------------------

    def list_runs(self, *, agent: str | None = None, trigger_id: str | None = None,
                  status: str | None = None, since: datetime | None = None,
                  until: datetime | None = None, limit: int = 50,
                  before: str | None = None) -> RunsPage:
        """Newest first, ``limit`` at a time; ``next_cursor`` (a run id, for ``before``)
        is set when there are older runs."""
        wanted = None if status is None else _choice(status.strip().lower(), RunStatus,
                                                     "status")
        _bounded_int(limit, "limit", 1, MAX_RUNS_PAGE)
        if agent is not None:
            check_name(agent, "agent")
        if trigger_id is not None and not ID.match(trigger_id):
            raise ValidationError("trigger", f"{trigger_id[:80]!r} is not a trigger id",
                                  "e.g. tr_4k8m2q9x7c1d")
        if before is not None and not RUN_ID.match(before):
            raise ValidationError("before", f"{before[:80]!r} is not a run id",
                                  "pass the next_cursor of the previous page")
        for field, value in (("since", since), ("until", until)):
            if value is not None and value.utcoffset() is None:
                raise ValidationError(field, "time has no UTC offset", "add one, e.g. Z")
        filters = RunFilter(agent=agent, trigger_id=trigger_id, status=wanted, since=since,
                            until=until)
        runs = self.store.list_runs(filters, limit=limit + 1, before=before)
        more = len(runs) > limit
        return RunsPage(runs[:limit], runs[limit - 1].id if more else None)

    def get_run(self, run_id: str) -> tuple[Run, list[RunEvent]]:
        known_id(run_id, "run")
        return self.store.get_run(run_id), self.store.run_history(run_id)

    def cancel_run(self, run_id: str, now: datetime | None = None) -> RunStatus:
        return self.store.cancel_run(known_id(run_id, "run"), now)

    def retry_run(self, run_id: str, now: datetime | None = None) -> None:
        self.store.retry_run(known_id(run_id, "run"), now)

    def fire(self, agent: str, payload: Any = None, *, payload_is_json_text: bool = False,
             now: datetime | None = None) -> str:
        """Queue a run of ``agent`` now (no trigger); returns its id."""
        check_name(agent, "agent")
        value = parse_payload(payload) if payload_is_json_text and payload is not None \
            else payload
        return self.store.fire_now(agent, value, now)

    # -- nodes and webhooks -----------------------------------------------------------------

    def nodes(self, now: datetime | None = None) -> list[tuple[Node, bool]]:
        """Every registered node and whether it is alive (beat within its zombie timeout)."""
        now = self.now(now)
        return [(n, (now - n.heartbeat_at).total_seconds() <= n.zombie_timeout_s)
                for n in self.store.list_nodes()]

    def receive_webhook(self, trigger_id: str, headers: Mapping[str, str], body: bytes,
                        now: datetime | None = None) -> Delivery:
        """Check one delivery and turn it into a run.

        Order: unknown trigger (NotFoundError), bad or stale signature (SignatureError),
        body not JSON (ValidationError), paused trigger or replayed ``webhook-id``
        (ConflictError). The signature covers ``webhook-id.webhook-timestamp.body`` and
        is compared in constant time; the timestamp must be within 5 minutes of now.
        """
        target = self.store.webhook_target(known_id(trigger_id, "webhook trigger"))
        moment = self.now(now)
        verify(target.secret, headers, body, moment)
        webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        if len(webhook_id) > MAX_WEBHOOK_ID:
            raise ValidationError("webhook-id", "is too long", f"at most {MAX_WEBHOOK_ID}")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError("body", f"is not JSON ({exc})",
                                  "send a JSON document as the request body") from None
        return self.store.deliver_webhook(target.trigger_id, webhook_id, payload,
                                          moment.astimezone(UTC))
