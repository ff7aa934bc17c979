"""Row -> dataclass conversion for everything the store hands out."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import RowMapping

from agentcron.models import (
    AgentKind,
    AgentSpec,
    CatchupMode,
    Node,
    OverlapPolicy,
    Run,
    RunEvent,
    RunStatus,
    Trigger,
    TriggerKind,
)
from agentcron.rules.budgets import budget_from_json, budget_to_json
from agentcron.rules.keys import keys_from_json, keys_to_json
from agentcron.rules.scheduling import policy_from_json, policy_to_json
from agentcron.store.secrets import SecretBox


def agent_from_row(row: RowMapping, box: SecretBox) -> AgentSpec:
    """The agent with its secrets opened (``SecretKeyError`` if the key cannot)."""
    return AgentSpec(
        name=row["name"],
        kind=AgentKind(row["kind"]),
        config=box.open_config(dict(row["config"] or {}), f"agent {row['name']!r}"),
        max_concurrency=row["max_concurrency"],
        timeout_s=row["timeout_s"],
        max_attempts=row["max_attempts"],
        zombie_timeout_s=row["zombie_timeout_s"],
        retry_backoff_s=row["retry_backoff_s"],
        description=row["description"],
        source=row["source"],
        created_at=row["created_at"],
        budget=budget_from_json(row["budget"]),
        pause_after_failures=row["pause_after_failures"],
        tags=tuple(row["tags"] or ()),
        scheduling=policy_from_json(row["scheduling"]),
        keys=keys_from_json(row.get("keys")),
        pool=row["pool"],
        rate=row["rate"],
    )


def agent_to_row(agent: AgentSpec, box: SecretBox) -> dict[str, Any]:
    """The row to store, with the config's secrets sealed when the box has a key."""
    return {
        "name": agent.name,
        "kind": agent.kind.value,
        "config": box.seal_config(agent.config),
        "max_concurrency": agent.max_concurrency,
        "timeout_s": agent.timeout_s,
        "max_attempts": agent.max_attempts,
        "zombie_timeout_s": agent.zombie_timeout_s,
        "retry_backoff_s": agent.retry_backoff_s,
        "description": agent.description,
        "source": agent.source,
        "budget": budget_to_json(agent.budget),
        "pause_after_failures": agent.pause_after_failures,
        "tags": list(agent.tags) or None,
        "scheduling": policy_to_json(agent.scheduling),
        "keys": keys_to_json(agent.keys),
        "pool": agent.pool,
        "rate": agent.rate,
    }


def trigger_from_row(row: RowMapping) -> Trigger:
    return Trigger(
        id=row["id"],
        agent=row["agent"],
        kind=TriggerKind(row["kind"]),
        name=row["name"],
        cron=row["cron"],
        timezone=row["timezone"],
        every_s=row["every_s"],
        at=row["at"],
        anchor_at=row["anchor_at"],
        start_at=row["start_at"],
        end_at=row["end_at"],
        jitter_s=row["jitter_s"],
        payload=row["payload"],
        overlap=OverlapPolicy(row["overlap"]),
        catchup_window_s=row["catchup_window_s"],
        catchup_mode=CatchupMode(row["catchup_mode"]),
        paused=bool(row["paused"]),
        next_fire_at=row["next_fire_at"],
        last_fired_at=row["last_fired_at"],
        missed_count=row["missed_count"],
        last_missed_at=row["last_missed_at"],
        created_at=row["created_at"],
        source=row["source"],
        broken_at=row["broken_at"],
        broken_reason=row["broken_reason"],
        skipped_count=row["skipped_count"],
        last_skipped_at=row["last_skipped_at"],
        pause_after_failures=row["pause_after_failures"],
        consecutive_failures=row["consecutive_failures"],
        paused_reason=row["paused_reason"],
        created_by=row["created_by"],
        expires_at=row["expires_at"],
        approval=row["approval"],
    )


def run_from_row(row: RowMapping) -> Run:
    return Run(
        id=row["id"],
        trigger_id=row["trigger_id"],
        agent=row["agent"],
        scheduled_for=row["scheduled_for"],
        status=RunStatus(row["status"]),
        reason=row["reason"],
        attempt=row["attempt"],
        lease=row["lease"],
        node_id=row["node_id"],
        payload=row["payload"],
        coalesced=row["coalesced"],
        queued_at=row["queued_at"],
        run_after=row["run_after"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        deadline_at=row["deadline_at"],
        output=row["output"],
        error=row["error"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=row["cost_usd"],
        model=row["model"],
        progress=row["progress"],
        stderr=row["stderr"],
        retry_of=row["retry_of"],
        concurrency_key=row.get("concurrency_key"),
        waiting_reason=row.get("waiting_reason"),
    )


def event_from_row(row: RowMapping) -> RunEvent:
    return RunEvent(
        run_id=row["run_id"],
        at=row["at"],
        kind=row["kind"],
        attempt=row["attempt"],
        node_id=row["node_id"],
        message=row["message"],
    )


def node_from_row(row: RowMapping, running: int = 0) -> Node:
    return Node(
        id=row["id"],
        hostname=row["hostname"],
        pid=row["pid"],
        started_at=row["started_at"],
        heartbeat_at=row["heartbeat_at"],
        zombie_timeout_s=row["zombie_timeout_s"],
        draining=bool(row["draining"]),
        running=running,
        agents=tuple(row["agents"] or ()),
        tags=tuple(row["tags"] or ()),
    )
