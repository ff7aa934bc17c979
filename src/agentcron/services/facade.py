"""``Services``: the operations users ask for, shared by the CLI, the HTTP API and the Python
API, so a rule lives in one place: every input is validated before the store is touched, and
a bad input raises ``ValidationError`` naming the field, with nothing written.

It composes small services with one job each, reachable as attributes (``services.agents``,
``.triggers``, ``.runs``, ``.cluster`` (nodes), ``.webhooks``, ``.declared``, ``.access``,
``.spending``, ``.alerts``, ``.pausing`` (many triggers at once), ``.backfills``,
``.follow_ups`` (triggers runs ask for)). Its
own methods are short names for the common calls, kept so callers written before the split
read the same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from agentcron.models import AgentSpec, Node, Run, RunEvent, RunStatus, Trigger
from agentcron.services.access import Access
from agentcron.services.agents import AgentInput, AgentService, Duration
from agentcron.services.agents_file import AgentsFile
from agentcron.services.alerts import AlertService
from agentcron.services.backfill import BackfillService
from agentcron.services.declared import DeclaredSync
from agentcron.services.follow_ups import FollowUps
from agentcron.services.nodes import NodeService
from agentcron.services.pausing import PauseService
from agentcron.services.pools import PoolService
from agentcron.services.runs import RunService, RunsPage
from agentcron.services.spending import Spending
from agentcron.services.trigger_input import NewTrigger, TriggerInput
from agentcron.services.triggers import TriggerService
from agentcron.services.validate import now_or_store
from agentcron.services.webhooks import WebhookService
from agentcron.services.workers import WorkerService
from agentcron.store import Store
from agentcron.store.webhooks import Delivery


class Services:
    """``zombie_timeout_s``: the node's, which its sweeper applies to runs whose agent sets
    none (remote workers' included: the claim tells them)."""

    def __init__(self, store: Store, zombie_timeout_s: float = 60.0) -> None:
        self.store = store
        self.agents = AgentService(store)
        self.triggers = TriggerService(store)
        self.runs = RunService(store)
        self.cluster = NodeService(store)
        self.webhooks = WebhookService(store)
        self.declared = DeclaredSync(store, self.agents, self.triggers)
        self.access = Access(store)
        self.spending = Spending(store)
        self.alerts = AlertService(store)
        self.pausing = PauseService(store)
        self.pools = PoolService(store)
        self.backfills = BackfillService(store, self.triggers)
        self.follow_ups = FollowUps(self.triggers)
        self.workers = WorkerService(store, zombie_timeout_s, follow_ups=self.follow_ups)

    @property
    def database_url(self) -> str:
        """The store's URL as normalised (with its password: mask it before showing it)."""
        return self.store.url

    def ready(self) -> None:
        """Raise unless the database answers and its schema is this version's (``/readyz``)."""
        self.store.ensure_migrated()

    def upgrade_schema(self) -> tuple[str | None, str]:
        """Apply the migrations the database lacks: (revision before, revision after)."""
        return self.store.upgrade()

    def rotate_secrets(self) -> dict[str, int]:
        """Encrypt every stored secret with the first key of ``AGENTCRON_SECRET_KEY``
        (``ValidationError`` without one); returns the agents and webhook triggers
        rewritten."""
        return self.store.reseal_secrets()

    def now(self, now: datetime | None = None) -> datetime:
        """``now`` if given, else the database's clock."""
        return now_or_store(self.store, now)

    # -- agents -----------------------------------------------------------------------------

    def build_agent(self, name: str, kind: str, config: Mapping[str, Any], *,
                    source: str = "cli", **settings: Any) -> AgentSpec:
        """``agents.build(AgentInput(name, kind, config, **settings), source)``: settings
        by the names of ``AgentInput``."""
        return self.agents.build(AgentInput(name=name, kind=kind, config=config, **settings),
                                 source)

    def add_agent(self, spec: AgentSpec, now: datetime | None = None) -> AgentSpec:
        return self.agents.save(spec, now)

    def get_agent(self, name: str) -> AgentSpec:
        return self.agents.get(name)

    def remove_agent(self, name: str, now: datetime | None = None) -> int:
        return self.agents.remove(name, now)

    # -- triggers ---------------------------------------------------------------------------

    def build_trigger(self, spec: TriggerInput, now: datetime, *, source: str = "cli",
                      agent: AgentSpec | None = None, created_by: str | None = None
                      ) -> NewTrigger:
        return self.triggers.build(spec, now, source=source, agent=agent,
                                   created_by=created_by)

    def add_trigger(self, spec: TriggerInput, now: datetime | None = None,
                    source: str = "cli", *, created_by: str | None = None) -> Trigger:
        return self.triggers.add(spec, now, source, created_by=created_by)

    def create_trigger(self, spec: TriggerInput, now: datetime | None = None,
                       source: str = "cli", *, created_by: str | None = None
                       ) -> tuple[Trigger, str | None]:
        """Add one trigger; ``created_by`` (default ``source``) is its provenance, e.g.
        ``mcp:<token name>`` (then the agent's guardrails apply)."""
        return self.triggers.create(spec, now, source, created_by=created_by)

    def create_triggers(self, specs: Sequence[TriggerInput], now: datetime | None = None,
                        source: str = "api", *, created_by: str | None = None
                        ) -> list[tuple[Trigger, str | None]]:
        return self.triggers.create_many(specs, now, source, created_by=created_by)

    def get_trigger(self, trigger_id: str) -> Trigger:
        return self.triggers.get(trigger_id)

    def update_trigger(self, trigger_id: str, changes: Mapping[str, Any],
                       now: datetime | None = None) -> Trigger:
        return self.triggers.update(trigger_id, changes, now)

    def triggers_page(self, agent: str | None = None, limit: int = 100, offset: int = 0,
                      created_by: str | None = None) -> tuple[list[Trigger], int]:
        return self.triggers.page(agent, limit, offset, created_by)

    def trigger_chain(self, trigger: Trigger) -> list[dict[str, Any]]:
        """Where ``trigger`` came from: created_by ``run:<id>`` -> that run's trigger -> ...
        to a non-run origin (at most 50 links), newest first."""
        return self.triggers.chain(trigger)

    def approve_trigger(self, trigger_id: str, now: datetime | None = None) -> Trigger:
        """Release a trigger awaiting approval (``TriggerService.approve``)."""
        return self.triggers.approve(trigger_id, now)

    def delete_trigger(self, trigger_id: str) -> str:
        """Delete a trigger by id or name; returns its id."""
        return self.triggers.delete(trigger_id)

    def pause_trigger(self, trigger_id: str, now: datetime | None = None) -> Trigger:
        return self.triggers.pause(trigger_id, now)

    def resume_trigger(self, trigger_id: str, now: datetime | None = None, *,
                       catch_up: bool = False) -> Trigger:
        return self.triggers.resume(trigger_id, now, catch_up=catch_up)

    def next_fire_times(self, trigger_id: str, count: int, now: datetime | None = None
                        ) -> list[datetime]:
        return self.triggers.next_fire_times(trigger_id, count, now)

    def describe(self, trigger: Trigger) -> str:
        return self.triggers.describe(trigger)

    def sync_agents_file(self, declared: AgentsFile, source: str = "file",
                         now: datetime | None = None) -> dict[str, int]:
        return self.declared.sync_agents_file(declared, source, now)

    # -- runs, nodes, webhooks --------------------------------------------------------------

    def list_runs(self, **filters: Any) -> RunsPage:
        return self.runs.page(**filters)

    def get_run(self, run_id: str) -> tuple[Run, list[RunEvent]]:
        return self.runs.get(run_id)

    def cancel_run(self, run_id: str, now: datetime | None = None) -> RunStatus:
        return self.runs.cancel(run_id, now)

    def retry_run(self, run_id: str, now: datetime | None = None) -> str:
        return self.runs.retry(run_id, now)

    def fire(self, agent: str, payload: Any = None, *, payload_is_json_text: bool = False,
             now: datetime | None = None) -> str:
        return self.runs.fire(agent, payload, payload_is_json_text=payload_is_json_text,
                              now=now)

    def nodes(self, now: datetime | None = None) -> list[tuple[Node, bool]]:
        return self.cluster.all(now)

    def receive_webhook(self, trigger_id: str, headers: Mapping[str, str], body: bytes,
                        now: datetime | None = None) -> Delivery:
        return self.webhooks.receive(trigger_id, headers, body, now)


__all__ = ["AgentInput", "Duration", "Services"]
