"""Output for the command line: JSON documents for scripts and Rich tables for people.

JSON: one document on stdout, as ``agentcron.services.documents`` builds it (the same
documents the HTTP API answers with; they are re-exported here so a command takes all its
output from one module). Tables: Rich, as wide as the terminal, or 160 columns when stdout
is not a terminal so a pipe (or a test) reads whole columns. Values from the database are
printed as plain text, never parsed as Rich markup.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import typer

from agentcron.rules.budgets import describe_budget
from agentcron.schedule.durations import format_duration
from agentcron.services.documents import (
    agent_json,
    agent_target,
    event_json,
    format_cost,
    iso,
    masked_config,
    next_fires_json,
    run_detail_json,
    run_duration_s,
    run_json,
    trigger_json,
)

if TYPE_CHECKING:
    from rich.console import Console

    from agentcron.models import AgentSpec, KeyPolicy, Run, RunEvent, Trigger

__all__ = [
    "PIPE_WIDTH",
    "agent_json",
    "agent_target",
    "console",
    "emit_json",
    "event_json",
    "human_duration",
    "human_time",
    "iso",
    "next_fires_json",
    "print_agent",
    "print_agents",
    "print_fields",
    "print_next_fires",
    "print_run",
    "print_runs",
    "print_table",
    "print_trigger",
    "print_triggers",
    "run_detail_json",
    "run_duration_s",
    "run_json",
    "say",
    "trigger_json",
]

PIPE_WIDTH = 160


# -- primitives ---------------------------------------------------------------------------


def human_time(value: datetime | None, zone: str | None = None) -> str:
    """``2026-01-05 12:00:00 UTC`` (or in ``zone``: ``2026-01-05 13:00:00 CET +01:00``)."""
    if value is None:
        return "-"
    if zone is None or zone == "UTC":
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    local = value.astimezone(ZoneInfo(zone))
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S %Z ") + f"{offset[:3]}:{offset[3:]}"


def human_duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def emit_json(document: Any) -> None:
    """Write one JSON document to stdout (and nothing else)."""
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def say(message: str) -> None:
    """A plain line for people on stdout (no markup)."""
    typer.echo(message)


def console() -> Console:
    from rich.console import Console

    out = sys.stdout
    return Console(
        file=out,
        width=None if out.isatty() else PIPE_WIDTH,
        highlight=False,
        markup=False,
        emoji=False,
    )


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                *, no_wrap: Sequence[str] = ()) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        wrap_off = column in no_wrap
        table.add_column(column, no_wrap=wrap_off, overflow="fold")
    for row in rows:
        table.add_row(*(Text(_cell(value)) for value in row))
    console().print(table)


def print_fields(title: str | None, pairs: Iterable[tuple[str, Any]]) -> None:
    """A two-column "field  value" listing for one object."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_header=False, box=None,
                  pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in pairs:
        table.add_row(Text(name), Text(_cell(value)))
    console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return human_time(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)


# -- agents -------------------------------------------------------------------------------


def print_agent(agent: AgentSpec, busiest: Sequence[tuple[str, int]] | None = None) -> None:
    """One agent as a panel: what it runs, its limits, its budget (values as
    ``agent_json`` shows them: secrets masked); ``busiest``: (key, running) of a keyed
    agent's fullest keys, shown against its ``max_per_key``."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    a = agent
    pairs: list[tuple[str, Any]] = [
        ("kind", a.kind.value),
        ("target", agent_target(a)),
        ("config", masked_config(a.config)),
        ("concurrency", a.max_concurrency),
        ("concurrency key", describe_keys(a.keys)),
        *([("running by key", ", ".join(
            f"{key or '(empty)'} {n}/{a.keys.max_per_key}" for key, n in busiest)
            or "none running")] if a.keys is not None and busiest is not None else []),
        ("timeout", format_duration(a.timeout_s)),
        ("attempts", a.max_attempts),
        ("retry backoff", format_duration(a.retry_backoff_s)),
        ("zombie timeout", "the node's" if a.zombie_timeout_s is None
         else format_duration(a.zombie_timeout_s)),
        ("budget", describe_budget(a.budget)),
        ("breaker", "none" if a.pause_after_failures is None else
         f"pause a trigger after {a.pause_after_failures} consecutive failed runs"),
        ("tags", ", ".join(a.tags) if a.tags else "none (runs on nodes given no routing)"),
        ("rate limits", ", ".join(x for x in (
            f"pool {a.pool}" if a.pool else "", f"{a.rate} of its own" if a.rate else "")
            if x) or "none"),
        ("description", a.description),
        ("source", a.source),
        ("created", a.created_at),
    ]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in pairs:
        table.add_row(Text(name), Text(_cell(value)))
    console().print(Panel(table, title=Text(f"agent {a.name}"), title_align="left",
                          expand=False))


def describe_keys(keys: KeyPolicy | None) -> str:
    if keys is None:
        return "none (runs are claimed oldest first)"
    text = f"{keys.template}: at most {keys.max_per_key} running per key, keys in turn"
    if keys.weights:
        text += " (weights " + ", ".join(f"{k}={w}" for k, w in sorted(keys.weights.items()))
        text += ")"
    return text


def print_agents(agents: Sequence[AgentSpec]) -> None:
    if not agents:
        say("no agents")
        return
    print_table(
        None,
        ["NAME", "KIND", "TARGET", "CONCURRENCY", "TIMEOUT", "ATTEMPTS", "TAGS",
         "DESCRIPTION"],
        (
            [a.name, a.kind.value, agent_target(a), a.max_concurrency,
             format_duration(a.timeout_s), a.max_attempts, ",".join(a.tags), a.description]
            for a in agents
        ),
        no_wrap=["NAME"],
    )


# -- triggers -----------------------------------------------------------------------------


def print_triggers(triggers: Sequence[tuple[Trigger, str]]) -> None:
    if not triggers:
        say("no triggers")
        return
    print_table(
        None,
        ["ID", "AGENT", "NAME", "SCHEDULE", "NEXT FIRE", "LAST FIRED", "PAUSED", "MISSED",
         "BROKEN", "CREATED BY"],
        (
            [t.id, t.agent, t.name, description, "paused" if t.paused else t.next_fire_at,
             t.last_fired_at, _paused(t), t.missed_count, _broken(t), t.created_by]
            for t, description in triggers
        ),
        no_wrap=["ID", "NEXT FIRE", "LAST FIRED"],
    )


def print_trigger(trigger: Trigger, description: str,
                  chain: Sequence[dict[str, Any]] | None = None) -> None:
    """``chain``: where an agent-made trigger came from (``Services.trigger_chain``)."""
    t = trigger
    pairs: list[tuple[str, Any]] = [
        ("id", t.id),
        ("agent", t.agent),
        ("name", t.name),
        ("kind", t.kind.value),
        ("schedule", description),
    ]
    if t.cron is not None:
        pairs.append(("cron", t.cron))
    if t.every_s is not None:
        pairs += [("every", format_duration(t.every_s)), ("anchored at", t.anchor_at)]
    if t.at is not None:
        pairs.append(("at", _both_zones(t.at, t.timezone)))
    pairs += [
        ("time zone", t.timezone),
        ("start", _both_zones(t.start_at, t.timezone)),
        ("end", _both_zones(t.end_at, t.timezone)),
        ("jitter", format_duration(t.jitter_s)),
        ("overlap", t.overlap.value),
        ("catch-up", f"{format_duration(t.catchup_window_s)} ({t.catchup_mode.value})"),
        ("payload", json.dumps(t.payload, ensure_ascii=False)),
        ("paused", _paused(t)),
        ("breaker", _breaker(t)),
        ("broken", _broken(t)),
        ("next fire", "- (paused)" if t.paused else _both_zones(t.next_fire_at, t.timezone)),
        ("last fired", _both_zones(t.last_fired_at, t.timezone)),
        ("missed", f"{t.missed_count} times beyond the catch-up window"),
        ("last missed", t.last_missed_at),
        ("skipped", f"{t.skipped_count} fires skipped by the overlap policy"),
        ("last skipped", t.last_skipped_at),
        ("created", t.created_at),
        ("source", t.source),
        ("created by", t.created_by),
        ("expires", _both_zones(t.expires_at, t.timezone)),
        ("approval", t.approval or "-"),
    ]
    if chain is not None and len(chain) > 1:
        pairs.append(("chain", " <- ".join(_link(link) for link in chain)))
    print_fields(f"trigger {t.id}", pairs)


def _link(link: dict[str, Any]) -> str:
    """One link of a provenance chain: ``tr_x (run:0192...)``, or why it stops."""
    text = f"{link['trigger_id']} ({link['created_by']})"
    if link.get("missing") or link.get("truncated"):
        text += f" [{link.get('missing') or link.get('truncated')}]"
    return text


def _paused(t: Trigger) -> str:
    """``no``, ``yes``, or why agentcron paused it (the circuit breaker)."""
    if not t.paused:
        return "no"
    return f"yes: {t.paused_reason}" if t.paused_reason else "yes"


def _breaker(t: Trigger) -> str:
    """The circuit breaker's threshold and count."""
    limit = (f"pauses after {t.pause_after_failures} consecutive failed runs"
             if t.pause_after_failures is not None else "the agent's default")
    return f"{limit}; {t.consecutive_failures} failed in a row now"


def _broken(t: Trigger) -> str:
    """Why a quarantined trigger does not fire, or "-"."""
    if t.broken_at is None and t.broken_reason is None:
        return "-"
    since = f"since {human_time(t.broken_at)}: " if t.broken_at is not None else ""
    return f"{since}{t.broken_reason or 'broken'}"


def _both_zones(value: datetime | None, zone: str) -> str:
    if value is None:
        return "-"
    if zone == "UTC":
        return human_time(value)
    try:
        local = human_time(value, zone)
    except Exception:  # a zone that does not load (a broken trigger): UTC only
        return human_time(value)
    return f"{local}  ({human_time(value)})"


def print_next_fires(trigger: Trigger, times: Sequence[datetime]) -> None:
    if not times:
        say(f"trigger {trigger.id} will not fire again")
        return
    title = f"next fire times of {trigger.id}"
    if trigger.paused:
        title += " (paused: the times it would fire if resumed now)"
    print_table(
        title,
        ["#", f"LOCAL ({trigger.timezone})", "UTC"],
        (
            [i, human_time(t, trigger.timezone), human_time(t)]
            for i, t in enumerate(times, start=1)
        ),
        no_wrap=[f"LOCAL ({trigger.timezone})", "UTC"],
    )


# -- runs ---------------------------------------------------------------------------------


def _tokens(run: Run) -> str | None:
    if run.input_tokens is None and run.output_tokens is None:
        return None
    return f"{run.input_tokens or 0}/{run.output_tokens or 0}"


def _cost(run: Run) -> str | None:
    return format_cost(run)  # the dashboard's and the API's ``cost`` too


def print_runs(runs: Sequence[Run]) -> None:
    if not runs:
        say("no runs")
        return
    # A KEY column only when a run has a concurrency key: plain listings stay as they were.
    keyed = any(r.concurrency_key is not None for r in runs)
    print_table(
        None,
        ["ID", "AGENT", *(["KEY"] if keyed else []), "TRIGGER", "STATUS", "ATTEMPT",
         "SCHEDULED", "DURATION", "TOKENS", "COST", "REASON"],
        (
            [r.id, r.agent, *([r.concurrency_key or ""] if keyed else []),
             r.trigger_id or "(manual)", r.status.value, r.attempt,
             r.scheduled_for, human_duration(run_duration_s(r)), _tokens(r), _cost(r),
             r.reason or _waiting(r)]
            for r in runs
        ),
        no_wrap=["ID", "STATUS", "SCHEDULED"],
    )


def _waiting(run: Run) -> str | None:
    """Why a queued run is not starting (a pool or rate is full), as a listing shows it."""
    return None if run.waiting is None else f"waiting: {run.waiting}"


def print_run(run: Run, events: Sequence[RunEvent]) -> None:
    r = run
    print_fields(f"run {r.id}", [
        ("id", r.id),
        ("agent", r.agent),
        ("key", r.concurrency_key),
        ("trigger", r.trigger_id or "(manual)"),
        ("status", r.status.value),
        ("reason", r.reason),
        ("waiting", _waiting(r)),
        ("retry of", r.retry_of),
        ("progress", r.progress),
        ("attempt", r.attempt),
        ("node", r.node_id),
        ("scheduled for", r.scheduled_for),
        ("queued", r.queued_at),
        ("run after", r.run_after),
        ("started", r.started_at),
        ("finished", r.finished_at),
        ("deadline", r.deadline_at),
        ("duration", human_duration(run_duration_s(r))),
        ("coalesced", r.coalesced),
        ("payload", json.dumps(r.payload, ensure_ascii=False)),
        ("tokens in/out", _tokens(r)),
        ("cost", _cost(r)),
        ("model", r.model),
        ("output", r.output),
        ("stderr", r.stderr),
        ("error", r.error),
    ])
    if events:
        print_table(
            "events",
            ["AT", "KIND", "ATTEMPT", "NODE", "MESSAGE"],
            ([e.at, e.kind, e.attempt, e.node_id, e.message] for e in events),
            no_wrap=["AT"],
        )
