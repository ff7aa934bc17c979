"""``Store``: the one interface between agentcron and its database.

Every method runs in its own transaction (a context manager: committed on success, rolled
back on any error, the connection returned to a bounded pool). Methods that take ``now``
act at that time when it is given (tests, explicit clocks) and otherwise at the database's
clock on PostgreSQL, so nodes with skewed clocks agree on what is due and what is stale.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from agentcron.models import (
    AgentSpec,
    Budget,
    ClaimedRun,
    CostRow,
    ModelPrice,
    Node,
    Outcome,
    Run,
    RunEvent,
    RunStatus,
    Trigger,
)
from agentcron.rules.budgets import AgentUsage
from agentcron.rules.routing import Routing
from agentcron.store import (
    backfilling,
    budgets,
    catalog,
    claiming,
    costs,
    declaring,
    firing,
    history,
    keys,
    liveness,
    migrate,
    pausing,
    pricing,
    stats,
    webhooks,
)
from agentcron.store import secrets as store_secrets
from agentcron.store.accessing import AccessOperations
from agentcron.store.alerting import AlertOperations
from agentcron.store.claiming import FinishResult
from agentcron.store.database import db_now, make_engine, normalise_url, read_tx, write_tx
from agentcron.store.declaring import PlannedChange
from agentcron.store.firing import FireResult
from agentcron.store.history import RunFilter
from agentcron.store.liveness import HeartbeatResult, NodeInfo, SweepResult
from agentcron.store.notify import take_topics
from agentcron.store.pausing import Selection
from agentcron.store.pooling import PoolOperations
from agentcron.store.secrets import SecretBox
from agentcron.store.stats import ActiveCounts, AgentDayUsage, LagSample
from agentcron.store.webhooks import Delivery, WebhookTarget
from agentcron.store.working import WorkerOperations


class StoreTimeSample(NamedTuple):
    """The store's clock read between two readings of this host's monotonic clock."""

    now: datetime
    monotonic_before: float
    monotonic_after: float

class Store(AlertOperations, WorkerOperations, PoolOperations, AccessOperations):
    def __init__(self, url: str, *, pool_size: int = 5, secrets: SecretBox | None = None
                 ) -> None:
        """``secrets``: the box that seals secrets at rest; by default the one
        ``AGENTCRON_SECRET_KEY`` describes (no key: stored as they are)."""
        self.url = normalise_url(url)
        self.secrets = secrets if secrets is not None else SecretBox.from_env()
        self.engine: Engine = make_engine(self.url, pool_size=pool_size)
        #: Called (in the writing thread) with each topic a committed write notified;
        #: must be quick and thread-safe (``engine/wakeups.py``).
        self.local_listeners: list[Callable[[str], None]] = []
        store_secrets.attach(self.engine, self.secrets)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        topics: set[str] = set()
        with write_tx(self.engine) as conn:
            try:
                yield conn
            except BaseException:
                # Rolled back: nothing was announced. A connection the database dropped
                # cannot even be asked (a PendingRollbackError would hide the outage).
                with contextlib.suppress(Exception):
                    take_topics(conn)
                raise
            topics = take_topics(conn)
        for topic in topics:  # committed: tell this process's own listeners
            for listener in list(self.local_listeners):
                listener(topic)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with read_tx(self.engine) as conn:
            yield conn

    @contextmanager
    def count_statements(self, this_thread_only: bool = False) -> Iterator[list[str]]:
        """Collect the SQL statements sent while the block runs (tests and benchmarks);
        with ``this_thread_only``, only those sent from the calling thread."""
        seen: list[str] = []
        me = threading.get_ident()

        def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if not this_thread_only or threading.get_ident() == me:
                seen.append(statement)

        event.listen(self.engine, "before_cursor_execute", _record)
        try:
            yield seen
        finally:
            event.remove(self.engine, "before_cursor_execute", _record)

    # -- schema ---------------------------------------------------------------------------

    def upgrade(self) -> tuple[str | None, str]:
        return migrate.upgrade(self.engine)

    def ensure_migrated(self) -> None:
        """Raise DatabaseNotMigratedError unless the schema is current."""
        migrate.ensure_current(self.engine)

    def now(self) -> datetime:
        """The database's clock (PostgreSQL) or this host's (SQLite)."""
        with self._read() as conn:
            return db_now(conn, None)

    # -- the engine's operations ----------------------------------------------------------

    def fire_due(self, now: datetime | None = None, limit: int = 1000,
                 claim_for: tuple[str, int] | None = None, lookahead_s: float = 0.0,
                 routing: Routing | None = None) -> FireResult:
        """Fire up to ``limit`` due triggers, optionally claiming up to ``claim_for[1]`` of
        the new runs (of the agents ``routing`` lets it run) for node ``claim_for[0]`` and
        firing ``allow``-overlap triggers up to ``lookahead_s`` ahead; see
        ``firing.fire_due`` for the contract. A constant number of statements per batch."""
        with self._write() as conn:
            return firing.fire_due(conn, db_now(conn, now), limit, claim_for, lookahead_s,
                                   routing)

    def next_due_at(self) -> tuple[datetime | None, StoreTimeSample]:
        """(earliest next_fire_at of an unpaused trigger, the store's now and the host's
        ``time.monotonic()`` just before and just after it was read)."""
        with self._read() as conn:
            next_due = firing.next_due_at(conn)
            before = time.monotonic()
            now = db_now(conn, None)
            return next_due, StoreTimeSample(now, before, time.monotonic())

    def claim_runs(self, node_id: str, slots: int, now: datetime | None = None,
                   routing: Routing | None = None) -> list[ClaimedRun]:
        """Claim up to ``slots`` ready runs of the agents ``routing`` lets the node run
        (default: the untagged ones); see ``claiming.claim_runs``."""
        with self._write() as conn:
            return claiming.claim_runs(conn, node_id, slots, db_now(conn, now),
                                       routing=routing)

    def finish(self, node_id: str, outcomes: list[Outcome], now: datetime | None = None
               ) -> FinishResult:
        """Record finished attempts, fenced on (run, lease, node); see ``claiming.finish``."""
        with self._write() as conn:
            outcomes = pricing.price_outcomes(conn, outcomes)
            return claiming.finish(conn, node_id, outcomes, db_now(conn, now))

    def record_progress(self, run_id: str, lease: int, node_id: str, progress: str | None,
                        now: datetime | None = None) -> bool:
        with self._write() as conn:
            return claiming.record_progress(conn, run_id, lease, node_id, db_now(conn, now),
                                            progress)

    def register_node(self, node: NodeInfo, now: datetime | None = None) -> list[str]:
        """Register (or refresh) a node; recovers runs a previous process with the same
        node id left running. See ``liveness.register``."""
        with self._write() as conn:
            return liveness.register(conn, node, db_now(conn, now))

    def heartbeat(self, node_id: str, inflight: list[tuple[str, int]],
                  now: datetime | None = None) -> HeartbeatResult:
        """One node's beat; see ``liveness.heartbeat``."""
        with self._write() as conn:
            return liveness.heartbeat(conn, node_id, db_now(conn, now), inflight)

    def set_draining(self, node_id: str) -> None:
        with self._write() as conn:
            liveness.set_draining(conn, node_id)

    def sweep(self, now: datetime | None = None, *, default_zombie_timeout_s: float = 60.0,
              timeout_grace_s: float = 60.0) -> SweepResult:
        """Recover lost runs, cancel runs far past their deadline, drop dead nodes.
        Idempotent under concurrency; see ``liveness.sweep``."""
        with self._write() as conn:
            return liveness.sweep(conn, db_now(conn, now), default_zombie_timeout_s,
                                  timeout_grace_s)

    def release(self, node_id: str, now: datetime | None = None) -> list[str]:
        """Re-queue this node's running runs (attempt not consumed) and deregister it."""
        with self._write() as conn:
            return liveness.release(conn, node_id, db_now(conn, now))

    def list_nodes(self) -> list[Node]:
        with self._read() as conn:
            return liveness.list_nodes(conn)

    # -- agents and triggers --------------------------------------------------------------

    def upsert_agent(self, agent: AgentSpec, now: datetime | None = None) -> None:
        with self._write() as conn:
            catalog.upsert_agent(conn, agent, db_now(conn, now))

    def get_agent(self, name: str) -> AgentSpec:
        with self._read() as conn:
            return catalog.get_agent(conn, name)

    def list_agents(self) -> list[AgentSpec]:
        with self._read() as conn:
            return catalog.list_agents(conn)

    def delete_agent(self, name: str, now: datetime | None = None) -> int:
        with self._write() as conn:
            return catalog.delete_agent(conn, name, db_now(conn, now))

    def insert_trigger(self, values: dict[str, Any], now: datetime | None = None,
                       check_count: Callable[[int], None] | None = None) -> None:
        """See ``catalog.insert_trigger`` (``check_count`` sees the agent's trigger count
        under its row lock, in the insert's transaction)."""
        with self._write() as conn:
            catalog.insert_trigger(conn, values, db_now(conn, now), check_count)

    def insert_triggers(self, rows: list[dict[str, Any]], now: datetime | None = None,
                        check_total: Callable[[str, int], None] | None = None
                        ) -> list[Trigger]:
        """Insert validated triggers in one transaction, all or none, a constant number of
        statements per batch; returns them as stored. See ``declaring.insert_triggers``."""
        with self._write() as conn:
            return declaring.insert_triggers(conn, rows, db_now(conn, now), check_total)

    def update_trigger(self, trigger_id: str, values: dict[str, Any],
                       now: datetime | None = None) -> None:
        with self._write() as conn:
            catalog.update_trigger(conn, trigger_id, values, db_now(conn, now))

    def approve_trigger(self, trigger_id: str, next_fire_at: datetime | None,
                        now: datetime | None = None) -> bool:
        """See ``catalog.approve_trigger`` (False: it was not awaiting approval)."""
        with self._write() as conn:
            return catalog.approve_trigger(conn, trigger_id, next_fire_at, db_now(conn, now))

    def get_trigger(self, trigger_id: str) -> Trigger:
        with self._read() as conn:
            return catalog.get_trigger(conn, trigger_id)

    def triggers_by_id(self, ids: list[str]) -> list[Trigger]:
        """The triggers of ``ids`` that exist, one statement per batch of ids."""
        with self._read() as conn:
            return declaring.read_by_id(conn, ids)

    def find_trigger(self, agent: str, name: str) -> Trigger | None:
        with self._read() as conn:
            return catalog.find_trigger(conn, agent, name)

    def trigger_refs(self, ref: str, limit: int = 11) -> list[tuple[str, str, str | None]]:
        """(id, agent, name) of the triggers whose id or name is ``ref``; see
        ``catalog.trigger_refs``."""
        with self._read() as conn:
            return catalog.trigger_refs(conn, ref, limit)

    def busiest_keys(self, agent: str, limit: int = 10) -> list[tuple[str, int]]:
        """(concurrency key, running runs) of the agent's fullest keys; see
        ``keys.busiest_keys``."""
        with self._read() as conn:
            return keys.busiest_keys(conn, agent, limit)

    def agent_footprint(self, name: str) -> tuple[int, int, int]:
        """(triggers, queued runs, runs in all) of an agent; NotFoundError if none."""
        with self._read() as conn:
            return catalog.agent_footprint(conn, name)

    def list_triggers(self, agent: str | None = None, *, preview: bool = False,
                      created_by: str | None = None) -> list[Trigger]:
        """``created_by``: exactly, or a prefix ending in ``:`` (``run:``, ``mcp:``)."""
        with self._read() as conn:
            return catalog.list_triggers(conn, agent, preview=preview,
                                         created_by=created_by)

    def delete_trigger(self, trigger_id: str) -> None:
        with self._write() as conn:
            catalog.delete_trigger(conn, trigger_id)

    def count_triggers(self, selection: Selection, paused: bool | None = None) -> int:
        with self._read() as conn:
            return pausing.count(conn, selection, paused)

    def pause_triggers(self, selection: Selection, now: datetime | None = None) -> list[str]:
        """Pause the selected triggers; see ``pausing.pause_many``."""
        with self._write() as conn:
            return pausing.pause_many(conn, selection, db_now(conn, now))

    def resume_triggers(self, selection: Selection,
                        next_fire: Callable[[Trigger, datetime], datetime | None],
                        now: datetime | None = None) -> list[str]:
        """Resume the selected paused triggers, each at ``next_fire(trigger, now)``; see
        ``pausing.resume_many``."""
        with self._write() as conn:
            at = db_now(conn, now)
            return pausing.resume_many(conn, selection, lambda t: next_fire(t, at), at)

    # -- runs -----------------------------------------------------------------------------

    def list_runs(self, filters: RunFilter | None = None, limit: int = 50,
                  before: str | None = None, *, preview: bool = False) -> list[Run]:
        with self._read() as conn:
            return history.list_runs(conn, filters or RunFilter(), limit, before,
                                     preview=preview)

    def get_run(self, run_id: str) -> Run:
        with self._read() as conn:
            return history.get_run(conn, run_id)

    def run_ids_with_prefix(self, prefix: str, limit: int = 11) -> list[str]:
        with self._read() as conn:
            return history.run_ids_with_prefix(conn, prefix, limit)

    def run_history(self, run_id: str) -> list[RunEvent]:
        with self._read() as conn:
            return history.run_history(conn, run_id)

    def fire_now(self, agent: str, payload: Any = None, now: datetime | None = None) -> str:
        with self._write() as conn:
            return history.fire_now(conn, agent, payload, db_now(conn, now))

    def backfill(self, trigger_id: str, times: list[tuple[datetime, int]],
                 now: datetime | None = None) -> int:
        """Queue runs of the trigger for past (time, coalesced) pairs, never a second run
        of a time; returns how many were queued. See ``backfilling.backfill``."""
        with self._write() as conn:
            return backfilling.backfill(conn, trigger_id, times, db_now(conn, now))

    def cancel_run(self, run_id: str, now: datetime | None = None) -> RunStatus:
        with self._write() as conn:
            return history.cancel_run(conn, run_id, db_now(conn, now))

    def retry_run(self, run_id: str, now: datetime | None = None) -> str:
        """Run a finished run again; returns the id of the run that will run (a new one,
        ``retry_of`` the original, for a succeeded run: see ``history.retry_run``)."""
        with self._write() as conn:
            return history.retry_run(conn, run_id, db_now(conn, now))

    def prune(self, finished_before: datetime, limit: int = 5000) -> int:
        with self._write() as conn:
            return history.prune(conn, finished_before, limit)

    def prune_skipped(self, finished_before: datetime, limit: int = 5000) -> int:
        """Like ``prune``, for ``skipped`` runs only (kept for a shorter window)."""
        with self._write() as conn:
            return history.prune(conn, finished_before, limit, only_skipped=True)

    def count_by_status(self, since: datetime | None = None) -> dict[str, int]:
        with self._read() as conn:
            return history.count_by_status(conn, since)

    def apply_declared(self, source: str, declared_agents: list[AgentSpec],
                       declared_triggers: list[dict[str, Any]],
                       now: datetime | None = None,
                       declared_prices: list[ModelPrice] | None = None,
                       check_total: Callable[[str, int], None] | None = None
                       ) -> dict[str, int]:
        """Sync the agents/triggers owned by ``source`` in one transaction, a constant
        number of statements per batch of triggers; see ``declaring.apply_declared``
        (``check_total`` sees each agent's trigger count after the sync, before anything
        is written). With ``declared_prices``, the model prices owned by
        ``source`` are synced in the same transaction (``pricing.apply_declared_prices``);
        the report then also has ``prices`` and ``prices_removed``, if either is not 0."""
        with self._write() as conn:
            at = db_now(conn, now)
            report = declaring.apply_declared(conn, source, declared_agents,
                                              declared_triggers, at, check_total)
            if declared_prices is not None:
                removed = pricing.apply_declared_prices(conn, source, declared_prices, at)
                if declared_prices or removed:
                    report = {**report, "prices": len(declared_prices),
                              "prices_removed": removed}
            return report

    def plan_declared(self, source: str, declared_agents: list[AgentSpec],
                      declared_triggers: list[dict[str, Any]],
                      declared_prices: list[ModelPrice] | None = None,
                      check_total: Callable[[str, int], None] | None = None
                      ) -> list[PlannedChange]:
        """What ``apply_declared`` would change, read without writing anything."""
        with self._read() as conn:
            return declaring.plan_declared(conn, source, declared_agents, declared_triggers,
                                           declared_prices, check_total)

    # -- model prices and cost reports ----------------------------------------------------

    def set_price(self, price: ModelPrice, now: datetime | None = None) -> None:
        """Create or replace a model's price (validate with ``costs.parse_price``)."""
        with self._write() as conn:
            pricing.set_price(conn, price, db_now(conn, now))

    def list_prices(self) -> list[ModelPrice]:
        with self._read() as conn:
            return pricing.list_prices(conn)

    def delete_price(self, model: str) -> None:
        """NotFoundError when the model has no price."""
        with self._write() as conn:
            pricing.delete_price(conn, model)

    def cost_report(self, by: str, since: datetime, until: datetime | None = None,
                    limit: int = 1000) -> list[CostRow]:
        """Tokens and cost of runs started in [since, until), grouped ``by`` agent, trigger,
        model or (UTC) day; at most ``limit`` groups. See ``costs.cost_report``."""
        with self._read() as conn:
            return costs.cost_report(conn, by, since, until, limit)

    # -- secrets at rest ------------------------------------------------------------------

    def check_secrets(self) -> int:
        """Open every stored secret once; ``SecretKeyError`` names the setting and the first
        row the key cannot open. Returns how many are stored encrypted."""
        with self._read() as conn:
            return store_secrets.open_all(conn)

    def reseal_secrets(self) -> dict[str, int]:
        """Encrypt every secret afresh with the first key (rotation), in one transaction."""
        with self._write() as conn:
            return store_secrets.reseal_all(conn)

    # -- webhook triggers -----------------------------------------------------------------

    def webhook_target(self, trigger_id: str) -> WebhookTarget:
        """The webhook trigger and its secret (for signature checks only)."""
        with self._read() as conn:
            return webhooks.webhook_target(conn, trigger_id)

    def set_webhook_secret(self, trigger_id: str, secret: str) -> None:
        with self._write() as conn:
            webhooks.set_webhook_secret(conn, trigger_id, secret)

    def deliver_webhook(self, trigger_id: str, webhook_id: str, payload: Any,
                        now: datetime | None = None) -> Delivery:
        """Accept one delivery: exactly one run per (trigger, webhook-id), replays refused.
        Locks the trigger row; see ``webhooks.deliver``."""
        with self._write() as conn:
            return webhooks.deliver(conn, trigger_id, webhook_id, payload, db_now(conn, now))

    def prune_webhook_deliveries(self, received_before: datetime) -> int:
        with self._write() as conn:
            return webhooks.prune_deliveries(conn, received_before)

    # -- bounded reads for the API, dashboard and metrics (see ``stats``) -----------------

    def status_by_hour(self, since: datetime, until: datetime
                       ) -> list[tuple[datetime, str, int]]:
        with self._read() as conn:
            return stats.status_by_hour(conn, since, until)

    def usage_by_agent_day(self, since: datetime, until: datetime) -> list[AgentDayUsage]:
        with self._read() as conn:
            return stats.usage_by_agent_day(conn, since, until)

    def active_counts(self, now: datetime | None = None) -> ActiveCounts:
        with self._read() as conn:
            return stats.active_counts(conn, db_now(conn, now))

    def lag_samples(self, limit: int = 500) -> list[LagSample]:
        with self._read() as conn:
            return stats.lag_samples(conn, limit)

    def budget_usage(self, budgeted: dict[str, Budget], now: datetime | None = None
                     ) -> dict[str, AgentUsage]:
        """What each budgeted agent has used in its windows (see ``budgets.usage``)."""
        with self._read() as conn:
            return budgets.usage(conn, budgeted, db_now(conn, now))

    def triggers_page(self, agent: str | None, limit: int, offset: int,
                      created_by: str | None = None) -> tuple[list[Trigger], int]:
        with self._read() as conn:
            return stats.triggers_page(conn, agent, limit, offset, created_by)

    def last_run_status(self, trigger_ids: list[str]) -> dict[str, str]:
        with self._read() as conn:
            return stats.last_run_status(conn, trigger_ids)
