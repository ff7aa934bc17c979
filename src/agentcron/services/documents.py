"""The JSON documents both front doors show: ``agentcron ... --json`` prints them and the HTTP
API answers with them, so the two never disagree.

Contract, for every document here: a plain ``dict`` of JSON values (str, int, float, bool,
None, lists, dicts), keys in a fixed order that does not change between calls, datetimes as
ISO 8601 in UTC with a ``Z`` (``2026-01-05T12:00:00Z``), durations in seconds. A secret is
never shown. Stored values are shown as JSON can carry them, whatever got into the database
(``shown``); listings (``preview=True``) show at most ``PREVIEW_BYTES`` of a payload or an
output and say so with ``payload_truncated``/``output_truncated``; a show is in full. The
API's response models (``api/schemas.py``) declare the same keys; a test in
``tests/interfaces/test_documents.py`` fails when the two drift.

Only the models, the errors, the pure rules and the standard library are imported, so the
command line can import this module without paying for the store or the web framework.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from agentcron.errors import ValidationError
from agentcron.models import PREVIEW_BYTES, CostRow, Cut
from agentcron.rules.budgets import budget_to_json, format_usd
from agentcron.rules.routing import Routing
from agentcron.rules.scheduling import policy_json
from agentcron.rules.secrets import SECRET_MASK, mask_url

# Shown by both front doors, defined with the models and the rules.
__all__ = ["PREVIEW_BYTES", "SECRET_MASK", "mask_url"]

if TYPE_CHECKING:
    from agentcron.models import (
        AgentSpec,
        Alert,
        AlertRule,
        Node,
        Run,
        RunEvent,
        Trigger,
        Worker,
    )
    from agentcron.services.backfill import BackfillResult
    from agentcron.services.spending import CostReport
    from agentcron.store.declaring import PlannedChange

#: Nesting deeper than this (only a value stored before it was refused) is shown as text.
SHOWN_DEPTH = 64
_TOO_DEEP = "(nested too deeply to show)"


# -- values -------------------------------------------------------------------------------


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


_URL_KEYS = ("url", "base_url")
_TABLE_KEYS = ("headers", "env")  # names shown, values masked


def masked_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as shown, to every scope and in every listing: an http agent's signing
    ``secret``, the values of its ``headers`` and of a command's ``env``, and credentials in
    ``url``/``base_url`` are replaced by ``SECRET_MASK`` (names stay, so a user can see what
    is set). The one masking function: the CLI and the API both show its result."""
    shown = dict(config)
    if shown.get("secret"):
        shown["secret"] = SECRET_MASK
    for key in _TABLE_KEYS:
        if isinstance(shown.get(key), dict):
            shown[key] = {name: SECRET_MASK for name in shown[key]}
    for key in _URL_KEYS:
        if isinstance(shown.get(key), str):
            shown[key] = mask_url(shown[key])
    return shown


def has_masked(config: dict[str, Any]) -> bool:
    """True when some secret value of ``config`` is (or holds) the mask."""
    values = [config.get("secret"), *(config.get(k) for k in _URL_KEYS)]
    for key in _TABLE_KEYS:
        if isinstance(config.get(key), dict):
            values.extend(config[key].values())
    return any(isinstance(v, str) and SECRET_MASK in v for v in values)


def restore_masked(config: dict[str, Any], stored: dict[str, Any] | None) -> dict[str, Any]:
    """``config`` with every secret value that is still the mask (a document shown by
    ``masked_config``, sent back as it is) replaced by the value ``stored`` holds, so a
    GET-then-PUT keeps the secrets. A masked value with nothing stored behind it raises
    ``ValidationError``: the mask is never stored as if it were the secret."""
    stored = stored or {}
    restored = dict(config)

    def refuse(field: str) -> ValidationError:
        return ValidationError(field, "is the mask shown in place of a secret, not a value",
                               "give the real value")

    if restored.get("secret") == SECRET_MASK:
        if not stored.get("secret"):
            raise refuse("secret")
        restored["secret"] = stored["secret"]
    for key in _TABLE_KEYS:
        table = restored.get(key)
        if not isinstance(table, dict):
            continue
        old_table = stored.get(key)
        old: dict[str, Any] = old_table if isinstance(old_table, dict) else {}
        fixed = dict(table)
        for name, value in table.items():
            if value == SECRET_MASK:
                if name not in old:
                    raise refuse(f"{key}.{name}")
                fixed[name] = old[name]
        restored[key] = fixed
    for key in _URL_KEYS:
        value = restored.get(key)
        if isinstance(value, str) and SECRET_MASK in value:
            old_url = stored.get(key)
            if not isinstance(old_url, str) or mask_url(old_url) != value:
                raise refuse(key)
            restored[key] = old_url
    return restored
def shown(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can carry it, so that no stored value can break a listing: a
    non-finite number is None, a lone surrogate is U+FFFD, nesting past ``SHOWN_DEPTH`` is a
    note, and anything that is not JSON is its text. Plain JSON comes back equal."""
    if isinstance(value, str):
        return shown_text(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, list, tuple)):
        if depth >= SHOWN_DEPTH:
            return _TOO_DEEP
        if isinstance(value, dict):
            return {shown_text(str(k)): shown(v, depth + 1) for k, v in value.items()}
        return [shown(v, depth + 1) for v in value]
    return shown_text(str(value))


def shown_text(text: str | None) -> str | None:
    """``text`` with any lone surrogate replaced by U+FFFD (it cannot be written as UTF-8)."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def preview(value: Any) -> tuple[Any, bool]:
    """``shown(value)`` if its JSON is at most ``PREVIEW_BYTES``; else the start of that
    JSON as text, and True (truncated). A ``Cut`` (what a listing read of a longer value)
    is always truncated."""
    if isinstance(value, Cut):
        return _cut(shown_text(value.head) or ""), True
    safe = shown(value)
    text = json.dumps(safe, ensure_ascii=False)
    if len(text) <= PREVIEW_BYTES // 4 or len(text.encode("utf-8")) <= PREVIEW_BYTES:
        return safe, False
    return _cut(text), True


def preview_text(text: str | None) -> tuple[str | None, bool]:
    """``text`` (made writable) if it is at most ``PREVIEW_BYTES``, else its start and True."""
    safe = shown_text(text)
    if safe is None or len(safe.encode("utf-8")) <= PREVIEW_BYTES:
        return safe, False
    return _cut(safe), True


def _cut(text: str) -> str:
    return text.encode("utf-8")[:PREVIEW_BYTES].decode("utf-8", "ignore")


def run_duration_s(run: Run) -> float | None:
    """Seconds from start to finish of the run's last attempt, or None before it ends."""
    if run.started_at is None or run.finished_at is None:
        return None
    return max(0.0, (run.finished_at - run.started_at).total_seconds())


def run_unpriced(run: Run) -> bool:
    """The run recorded tokens but has no cost: its model had no price when it was written
    (``agentcron costs`` counts the same runs as unpriced)."""
    return run.cost_usd is None and (run.input_tokens or 0) + (run.output_tokens or 0) > 0


def format_cost(run: Run) -> str | None:
    """A run's cost for people, the same in the CLI, the API's ``cost`` and the dashboard:
    ``$0.000156`` (as many decimals as a small amount needs, ``format_usd``), ``unpriced``
    for tokens without a price, or None when the run reported no usage."""
    if run.cost_usd is not None:
        return "$" + format_usd(run.cost_usd)
    return "unpriced" if run_unpriced(run) else None


# -- documents ----------------------------------------------------------------------------


def agent_target(agent: AgentSpec) -> str:
    """What an agent runs, in one line, secrets masked: ``module:function``, the command
    line, the URL, ``model @ base URL``, or ``remote workers``."""
    config = agent.config
    if agent.kind.value == "remote":
        return "remote workers"
    if "target" in config:
        return shown_text(str(config["target"])) or ""
    if "url" in config:
        return mask_url(str(config["url"]))
    if "model" in config and "base_url" in config:
        return f"{config['model']} @ {mask_url(str(config['base_url']))}"
    if "argv" in config and isinstance(config["argv"], list):
        import shlex

        return shlex.join(str(arg) for arg in config["argv"])
    return json.dumps(shown(masked_config(config)), ensure_ascii=False)


def agent_json(agent: AgentSpec) -> dict[str, Any]:
    return {
        "name": agent.name,
        "kind": agent.kind.value,
        "config": shown(masked_config(agent.config)),
        "max_concurrency": agent.max_concurrency,
        "timeout_s": agent.timeout_s,
        "max_attempts": agent.max_attempts,
        "zombie_timeout_s": agent.zombie_timeout_s,
        "retry_backoff_s": agent.retry_backoff_s,
        "description": agent.description,
        "source": agent.source,
        "created_at": iso(agent.created_at),
        "budget": budget_to_json(agent.budget),
        "pause_after_failures": agent.pause_after_failures,
        "tags": list(agent.tags),
        "scheduling": policy_json(agent.scheduling),
        # Flat, by AgentInput's names: a shown agent PUT back keeps its key.
        "concurrency_key": agent.keys.template if agent.keys else None,
        "max_per_key": agent.keys.max_per_key if agent.keys else None,
        "key_weights": dict(agent.keys.weights) if agent.keys and agent.keys.weights else None,
        "pool": agent.pool,
        "rate": agent.rate,
    }


def key_usage_json(agent: AgentSpec, busiest: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """How full an agent's keys are: its fullest keys' running runs against
    ``max_per_key`` (``agents show``, ``GET /api/v1/agents/NAME/keys``)."""
    limit = agent.keys.max_per_key if agent.keys else None
    return {
        "agent": agent.name,
        "concurrency_key": agent.keys.template if agent.keys else None,
        "max_per_key": limit,
        "keys": [{"key": key, "running": running, "max": limit,
                  "full": limit is not None and running >= limit}
                 for key, running in busiest],
    }


def trigger_json(trigger: Trigger, description: str, *, preview: bool = False,
                 chain: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """``description`` is the schedule in words (``Services.describe``); ``preview``: a
    listing's row, with at most ``PREVIEW_BYTES`` of the payload. ``chain`` (a trigger's
    own document, not a listing's): where an agent-made trigger came from
    (``TriggerService.chain``), newest first."""
    payload, payload_cut = _payload(trigger.payload, preview)
    return {
        "id": trigger.id,
        "agent": trigger.agent,
        "name": trigger.name,
        "kind": trigger.kind.value,
        "description": description,
        "cron": trigger.cron,
        "timezone": trigger.timezone,
        "every_s": trigger.every_s,
        "at": iso(trigger.at),
        "anchor_at": iso(trigger.anchor_at),
        "start_at": iso(trigger.start_at),
        "end_at": iso(trigger.end_at),
        "jitter_s": trigger.jitter_s,
        "payload": payload,
        "payload_truncated": payload_cut,
        "overlap": trigger.overlap.value,
        "catchup_window_s": trigger.catchup_window_s,
        "catchup_mode": trigger.catchup_mode.value,
        "paused": trigger.paused,
        "paused_reason": trigger.paused_reason,
        "pause_after_failures": trigger.pause_after_failures,
        "consecutive_failures": trigger.consecutive_failures,
        "broken": broken_json(trigger),
        "next_fire_at": iso(trigger.next_fire_at),
        "last_fired_at": iso(trigger.last_fired_at),
        "missed_count": trigger.missed_count,
        "last_missed_at": iso(trigger.last_missed_at),
        "skipped_count": trigger.skipped_count,
        "last_skipped_at": iso(trigger.last_skipped_at),
        "created_at": iso(trigger.created_at),
        "source": trigger.source,
        "created_by": trigger.created_by,
        "expires_at": iso(trigger.expires_at),
        "approval": trigger.approval,
        # Only a trigger's own document follows the chain (reads per link); a listing's
        # row has null.
        "chain": [dict(link) for link in chain] if chain is not None else None,
    }


def broken_json(trigger: Trigger) -> dict[str, Any] | None:
    """A quarantined trigger's ``{"at", "reason"}`` (``at`` is null for a row found
    unreadable by a listing before firing marked it), or None for a healthy one."""
    if trigger.broken_at is None and trigger.broken_reason is None:
        return None
    return {"at": iso(trigger.broken_at), "reason": trigger.broken_reason}


def next_fires_json(trigger: Trigger, times: Sequence[datetime]) -> dict[str, Any]:
    """Each time both in the trigger's zone (with its offset) and in UTC."""
    zone = ZoneInfo(trigger.timezone)
    return {
        "id": trigger.id,
        "timezone": trigger.timezone,
        "times": [
            {"local": t.astimezone(zone).isoformat(), "utc": iso(t)} for t in times
        ],
    }


def _payload(value: Any, cut: bool) -> tuple[Any, bool]:
    return preview(value) if cut else (shown(value), False)


def run_json(run: Run, *, preview: bool = False) -> dict[str, Any]:
    """``preview``: a listing's row, with at most ``PREVIEW_BYTES`` of the payload and of
    the output."""
    payload, payload_cut = _payload(run.payload, preview)
    output, output_cut = preview_text(run.output) if preview else (shown_text(run.output),
                                                                   False)
    stderr, stderr_cut = preview_text(run.stderr) if preview else (shown_text(run.stderr),
                                                                   False)
    return {
        "id": run.id,
        "trigger_id": run.trigger_id,
        "agent": run.agent,
        "status": run.status.value,
        "reason": run.reason,
        "attempt": run.attempt,
        "node_id": run.node_id,
        "scheduled_for": iso(run.scheduled_for),
        "queued_at": iso(run.queued_at),
        "run_after": iso(run.run_after),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "deadline_at": iso(run.deadline_at),
        "duration_s": run_duration_s(run),
        "coalesced": run.coalesced,
        "payload": payload,
        "payload_truncated": payload_cut,
        "output": output,
        "output_truncated": output_cut,
        "stderr": stderr,
        "stderr_truncated": stderr_cut,
        "error": shown_text(run.error),
        "progress": shown_text(run.progress),
        "retry_of": run.retry_of,
        "concurrency_key": run.concurrency_key,
        # Why a queued run is not starting (a pool or rate full); null once claimed.
        "waiting_reason": run.waiting,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "cost_usd": run.cost_usd,
        "unpriced": run_unpriced(run),
        "cost": format_cost(run),
        "model": run.model,
    }


def event_json(event: RunEvent) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "attempt": event.attempt,
        "node_id": event.node_id,
        "message": event.message,
    }


def run_detail_json(run: Run, events: Sequence[RunEvent]) -> dict[str, Any]:
    """A run with its events, oldest first (``runs show``, ``GET /runs/{id}``)."""
    return {**run_json(run), "events": [event_json(e) for e in events],
            "follow_ups": follow_ups_json(events)}


def follow_ups_json(events: Sequence[RunEvent]) -> list[dict[str, Any]]:
    """What the run scheduled (``store/follow_ups.py``): each follow-up's trigger id, or why
    it was refused, oldest first."""
    return [{"trigger_id": e.message if e.kind == "follow_up" else None,
             "refused": e.message if e.kind == "follow_up_refused" else None,
             "attempt": e.attempt, "at": iso(e.at)}
            for e in events if e.kind in ("follow_up", "follow_up_refused")]


def node_json(node: Node, alive: bool) -> dict[str, Any]:
    """``alive``: the node's heartbeat is recent enough (the caller's judgement)."""
    return {
        "id": node.id,
        "hostname": node.hostname,
        "pid": node.pid,
        "started_at": iso(node.started_at),
        "heartbeat_at": iso(node.heartbeat_at),
        "zombie_timeout_s": node.zombie_timeout_s,
        "draining": node.draining,
        "alive": alive,
        "running": node.running,
        "agents": list(node.agents),
        "tags": list(node.tags),
        "runs": node_routing(node),
    }


def node_routing(node: Node) -> str:
    """What a node runs, in words (``rules.routing``): ``untagged agents``, ``tags gpu``."""
    return Routing.of(node.agents, node.tags).describe()


def worker_json(worker: Worker, state: str) -> dict[str, Any]:
    """A remote worker as listed: ``state`` is idle, active, draining or lost
    (``services.workers.worker_state``)."""
    return {
        "id": worker.id,
        "agents": list(worker.agents),
        "state": state,
        "running": worker.running,
        "last_seen": iso(worker.heartbeat_at),
        "version": worker.version,
        "address": worker.address,
        "token": worker.token,
        "started_at": iso(worker.started_at),
        "zombie_timeout_s": worker.zombie_timeout_s,
    }


def masked_channel(channel: str) -> str:
    """A channel as shown: a webhook URL with its credentials masked; an Apprise URL only
    by its scheme (their tokens sit anywhere in the URL: ``slack://T/B/C``)."""
    if channel.lower().startswith(("http://", "https://")):
        return mask_url(channel)
    scheme = channel.split("://", 1)[0] if "://" in channel else "?"
    return f"{scheme}://{SECRET_MASK}"


def alert_rule_json(rule: AlertRule) -> dict[str, Any]:
    """An alert rule as the CLI and the API show it; channels masked, the secret never."""
    return {
        "id": rule.id, "agent": rule.agent, "trigger_id": rule.trigger_id,
        "kind": rule.kind.value, "threshold": rule.threshold,
        "after_s": rule.duration_s,
        "after": (f"{rule.interval_factor:g}x" if rule.interval_factor is not None
                  else rule.duration_s),
        "channels": [masked_channel(c) for c in rule.channels],
        "webhook_signed": rule.has_secret, "group_window_s": rule.group_window_s,
        "source": rule.source, "created_at": iso(rule.created_at),
    }


def alert_json(alert: Alert, base_url: str | None = None) -> dict[str, Any]:
    """An alert (one delivery of the outbox, with how many repeats it groups)."""
    return {
        "id": alert.id, "rule_id": alert.rule_id, "kind": alert.kind, "agent": alert.agent,
        "trigger_id": alert.trigger_id, "run_id": alert.run_id,
        "reason": shown_text(alert.reason), "count": alert.count,
        "link": (base_url.rstrip("/") + alert.link) if base_url and alert.link else alert.link,
        "status": alert.status.value, "attempts": alert.attempts,
        "first_at": iso(alert.first_at), "last_at": iso(alert.last_at),
        "next_attempt_at": iso(alert.next_attempt_at), "node_id": alert.node_id,
        "delivered_at": iso(alert.delivered_at), "last_error": shown_text(alert.last_error),
    }


def backfill_json(result: BackfillResult) -> dict[str, Any]:
    """What a backfill did: the trigger, the scheduled times in its range, the runs it
    queued and the times (or, coalesced, the run) it skipped because they had a run."""
    return {"trigger_id": result.trigger_id, "times": result.times,
            "queued": result.queued, "skipped": result.skipped}


def planned_change_json(change: PlannedChange) -> dict[str, Any]:
    """One change an agents file's sync would make (``agentcron apply --dry-run``)."""
    return {"kind": change.kind, "name": change.name, "action": change.action,
            "detail": change.detail or None}


def cost_total(rows: Sequence[CostRow]) -> CostRow:
    """The sum of a cost report's rows, keyed ``total``."""
    return CostRow(key="total", runs=sum(r.runs for r in rows),
                   input_tokens=sum(r.input_tokens for r in rows),
                   output_tokens=sum(r.output_tokens for r in rows),
                   cost_usd=sum(r.cost_usd for r in rows),
                   unpriced_runs=sum(r.unpriced_runs for r in rows))


def cost_row_json(row: CostRow) -> dict[str, Any]:
    return {"key": row.key, "runs": row.runs, "input_tokens": row.input_tokens,
            "output_tokens": row.output_tokens, "cost_usd": round(row.cost_usd, 10),
            "unpriced_runs": row.unpriced_runs}


def cost_report_json(report: CostReport) -> dict[str, Any]:
    """A cost report (``agentcron costs --json``, the MCP ``cost_report`` tool): its groups,
    their total, and ``truncated`` when more groups exist than were asked for."""
    return {"by": report.by, "since": iso(report.since), "until": iso(report.until),
            "rows": [cost_row_json(r) for r in report.rows],
            "total": cost_row_json(cost_total(report.rows)), "truncated": report.truncated}
