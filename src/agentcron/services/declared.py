"""Declared agents and triggers (the agents file, the Python API): validated first, all of
them, then made the exact set their source owns in one transaction, a constant number of
statements per batch of triggers (``store/declaring.py``). The deployment's limit on
triggers per agent (``services/limits.py``) holds: checked on the file itself, then on each
agent's count after the sync, before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from agentcron.errors import ValidationError, all_problems
from agentcron.models import AgentSpec, ModelPrice, Pool, TriggerKind
from agentcron.rules.pricing import parse_price
from agentcron.services.agents import AgentInput, AgentService, import_problem
from agentcron.services.agents_file import AgentsFile
from agentcron.services.alerts import AlertService
from agentcron.services.limits import Limits
from agentcron.services.pools import PoolInput, PoolService
from agentcron.services.trigger_input import NewTrigger, TriggerInput, with_default_name
from agentcron.services.triggers import TriggerService
from agentcron.services.validate import located, now_or_store
from agentcron.store import Store
from agentcron.store.declaring import PlannedChange

PENDING = "(declared)"
"""A rule's trigger id until the sync has stored the trigger it names."""


class DeclaredSync:
    def __init__(self, store: Store, agents: AgentService, triggers: TriggerService) -> None:
        self.store = store
        self.alerts = AlertService(store)
        self.pools = PoolService(store)
        self.agents = agents
        self.triggers = triggers

    def sync_agents_file(self, declared: AgentsFile, source: str = "file",
                         now: datetime | None = None, *, check_imports: bool = True
                         ) -> dict[str, int]:
        """Validate every agent and trigger in the file first (a bad entry writes nothing,
        and the error names its place in the file), then sync them in one transaction.
        A python agent whose module cannot be imported here, with the file's folder and the
        working directory on the import path, is refused (``agents.NAME.python``): the
        node syncing the file is one that runs it. ``check_imports=False`` (``agentcron
        apply``, from a machine that need not have the agents' code) skips that check."""
        now = now_or_store(self.store, now)
        specs, rows, prices = self._validated(declared, source, now, check_imports)
        rules = self._alert_rules(declared, rows, source)
        declared_pools = self._pools(declared, source)
        # Pools before the agents naming them: a run claimed meanwhile finds its pool.
        self.store.apply_declared_pools(source, declared_pools, now)
        limits = Limits.from_env()
        counts = self.store.apply_declared(
            source, specs, rows, now, declared_prices=prices,
            check_total=lambda agent, total: limits.check_trigger_total(
                agent, total, f"agents.{agent}.triggers"))
        # The rules name the triggers just stored; every rule was validated above.
        rule_rows = []
        for row, (owner, trigger_name) in rules:
            if trigger_name is not None:
                found = self.store.find_trigger(owner, trigger_name)
                if found is None:  # cannot be: the sync stored it; never widen the rule
                    continue
                row["trigger_id"] = found.id
            rule_rows.append(row)
        self.store.replace_declared_alert_rules(source, rule_rows, now)
        return counts

    def plan_agents_file(self, declared: AgentsFile, source: str = "file",
                         now: datetime | None = None) -> list[PlannedChange]:
        """What ``sync_agents_file`` would create, update and remove, validated the same
        way (imports aside) and refused for the same reasons, with nothing written."""
        now = now_or_store(self.store, now)
        specs, rows, prices = self._validated(declared, source, now, check_imports=False)
        self._alert_rules(declared, rows, source)  # refused as the sync would refuse them
        declared_pools = self._pools(declared, source)
        limits = Limits.from_env()
        return self.store.plan_declared(
            source, specs, rows, prices,
            check_total=lambda agent, total: limits.check_trigger_total(
                agent, total, f"agents.{agent}.triggers")) + plan_pools(
            self.store.list_pools(), declared_pools, source)

    def _validated(self, declared: AgentsFile, source: str, now: datetime,
                   check_imports: bool
                   ) -> tuple[list[AgentSpec], list[dict[str, Any]], list[ModelPrice]]:
        """The file's agents, trigger rows and prices, every one validated."""
        specs: list[AgentSpec] = []
        new: list[NewTrigger] = []
        problems: list[ValidationError] = []
        for name, entry in declared.agents.items():
            where = f"agents.{name}"
            try:
                agent = entry.input(name, where)
                with located(where):
                    spec = self.agents.build(agent, source)
                    problem = import_problem(spec, *_folders(declared)) \
                        if check_imports else None
                    if problem is not None:  # this node would fail every run of it
                        raise problem
            except ValidationError as exc:
                problems.append(exc)  # its triggers cannot be checked against it
                continue
            specs.append(spec)
            for i, t in enumerate(entry.triggers):
                try:
                    with located(f"{where}.triggers[{i}]"):
                        new.append(self.triggers.build(with_default_name(t.input(name)), now,
                                                       source=source, agent=spec))
                except ValidationError as exc:
                    problems.append(exc)
        if problems:  # every bad entry at once, not one per try
            raise all_problems(problems)
        limits = Limits.from_env()
        for name, entry in declared.agents.items():  # the file alone, before the store
            limits.check_trigger_total(name, len(entry.triggers), f"agents.{name}.triggers")
        prices = []
        for model, price in declared.prices.items():
            with located(f'prices."{model}"'):
                prices.append(parse_price(model, price.input_per_mtok, price.output_per_mtok,
                                          source))
        return specs, [t.row() for t in new], prices

    def _pools(self, declared: AgentsFile, source: str) -> list[Pool]:
        """The file's ``[pools.NAME]``, every one validated."""
        result = []
        for name, entry in declared.pools.items():
            with located(f"pools.{name}"):
                result.append(self.pools.build(PoolInput(
                    name, entry.requests_per_minute, entry.tokens_per_minute), source))
        return result

    def _alert_rules(self, declared: AgentsFile, rows: list[dict[str, Any]], source: str
                     ) -> list[tuple[dict[str, Any], tuple[str, str | None]]]:
        """Every ``[[agents.NAME.alerts]]`` validated, before anything is written; each
        with the (agent, trigger name) its trigger id is filled in from after the sync."""
        kinds = {(row["agent"], row["name"]): TriggerKind(row["kind"]) for row in rows}
        rules = []
        for name, entry in declared.agents.items():
            for i, alert in enumerate(entry.alerts):
                where = f"agents.{name}.alerts[{i}]"
                with located(where):
                    kind = None
                    if alert.trigger is not None:
                        kind = kinds.get((name, alert.trigger))
                        if kind is None:
                            raise ValidationError(
                                "trigger", f"agent {name!r} has no trigger named "
                                f"{alert.trigger!r} in this file",
                                "name one of its [[agents.NAME.triggers]] by its name")
                    row = self.alerts.build(alert.input(name), source=source,
                                            declared=(PENDING if kind else None, kind))
                rules.append((row, (name, alert.trigger)))
        return rules

    def apply(self, source: str, agents: Sequence[AgentInput],
              triggers: Sequence[TriggerInput], now: datetime | None = None, *,
              created_by: str | None = None) -> dict[str, int]:
        """Make ``agents`` and ``triggers`` the ones ``source`` owns (the Python API's
        declarations): all validated before anything is written; an unnamed trigger is
        named after its schedule, so declaring it again finds it. ``created_by``: the
        triggers' provenance (default ``source``)."""
        now = now_or_store(self.store, now)
        specs = [self.agents.build(agent, source) for agent in agents]
        rows = [self.triggers.build(with_default_name(t), now, source=source,
                                    created_by=created_by).row()
                for t in triggers]
        limits = Limits.from_env()
        return self.store.apply_declared(source, specs, rows, now,
                                         check_total=limits.check_trigger_total)


def plan_pools(existing: Sequence[Pool], declared: Sequence[Pool], source: str
               ) -> list[PlannedChange]:
    """What ``Store.apply_declared_pools`` would change."""
    current = {p.name: p for p in existing}
    planned: list[PlannedChange] = []
    for pool in declared:
        was = current.get(pool.name)
        if was is None:
            planned.append(PlannedChange("pool", pool.name, "create"))
            continue
        changed = [f for f in ("requests_per_minute", "tokens_per_minute", "source")
                   if getattr(was, f) != getattr(pool, f)]
        if changed:
            planned.append(PlannedChange("pool", pool.name, "update", ", ".join(changed)))
    names = {p.name for p in declared}
    planned.extend(PlannedChange("pool", p.name, "remove") for p in existing
                   if p.source == source and p.name not in names)
    return planned


def _folders(declared: AgentsFile) -> list[Path]:
    return [] if declared.folder is None else [declared.folder]

