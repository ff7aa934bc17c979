"""The declarative agents file (TOML): agents with their triggers, synced on ``serve``
like a crontab that knows about agents.

    [agents.summarise]
    python = "myhub.agents:summarise"
    max_concurrency = 2
    timeout = "2m"

    [[agents.summarise.triggers]]
    name = "weekday-mornings"
    cron = "0 9 * * 1-5"
    tz = "Europe/Berlin"
    payload = { channel = "#news" }

    [[agents.summarise.alerts]]
    on = "failed"                         # see services/alerts.py for every kind
    trigger = "weekday-mornings"          # a trigger of this agent, by name; none: all
    channels = ["https://hooks.example.com/agentcron", "ntfy://ntfy.sh/my-topic"]

    [agents.digest]                       # an llm agent: the value of `llm` is the model
    llm = "gpt-4o-mini"
    base_url = "https://api.openai.com/v1"
    api_key_env = "OPENAI_API_KEY"        # the NAME of the variable, never the key
    prompt = "Summarise for {{ channel }}: {{ text }}"
    budget = { usd_per_day = 2.0, tokens_per_month = 5_000_000, tz = "Europe/Berlin" }
    on_budget = "pause"                   # or "skip" (the default)

    [prices."gpt-4o-mini"]                # USD per million tokens
    input_per_mtok = 0.15
    output_per_mtok = 0.60

Errors name the place in the file, e.g. ``agents.summarise.triggers[0].cron``.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import ErrorDetails

from agentcron.errors import ValidationError, all_problems
from agentcron.services.agents import AgentInput, agent_settings
from agentcron.services.alerts import AlertRuleInput
from agentcron.services.trigger_input import TriggerInput


class TriggerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    cron: str | None = None
    every: str | int | float | None = None
    at: str | None = None
    tz: str | None = None
    payload: Any = None
    overlap: str = "skip"
    catchup: str | int | float = "10m"
    catchup_mode: str = "coalesce"
    jitter: str | int | float = 0
    start: str | None = None
    end: str | None = None
    paused: bool = False
    pause_after_failures: int | None = None

    def input(self, agent: str) -> TriggerInput:
        """This trigger of ``agent`` as the service layer takes it (same field names)."""
        return TriggerInput(agent=agent, **self.model_dump())


class AlertEntry(BaseModel):
    """``[[agents.NAME.alerts]]``: an alert rule of the agent (``AlertRuleInput``);
    ``trigger`` is the name of one of the agent's triggers in this file."""

    model_config = ConfigDict(extra="forbid")

    on: str
    channels: list[str]
    trigger: str | None = None
    threshold: int | None = None
    after: str | int | float | None = None
    group_window: str | int | float = "1h"
    webhook_secret: str | None = None

    def input(self, agent: str) -> AlertRuleInput:
        return AlertRuleInput(agent=agent, kind=self.on, channels=self.channels,
                              trigger=self.trigger, threshold=self.threshold,
                              after=self.after, group_window=self.group_window,
                              webhook_secret=self.webhook_secret)


class AgentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    python: str | None = None
    command: str | list[str] | None = None
    http: str | None = None
    secret: str | None = None
    headers: dict[str, str] | None = None
    env: dict[str, str] | None = None
    inherit_env: list[str] | None = None  # the node's variables a command may see
    cwd: str | None = None
    max_concurrency: int = 1
    timeout: str | int | float = "5m"
    max_attempts: int = 3
    zombie_timeout: str | int | float | None = None
    retry_backoff: str | int | float = "2s"
    description: str | None = None
    # llm agents: `llm` is the model; the rest of their settings (see agents.llm_config)
    llm: str | None = None
    # remote agents: run by workers that pull their runs over HTTP
    remote: bool = False
    base_url: str | None = None
    prompt: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    api_key_env: str | None = None
    # any agent: spending limits (see agentcron.rules.budgets)
    budget: dict[str, Any] | None = None
    on_budget: str | None = None
    pause_after_failures: int | None = None  # the breaker's default for its triggers
    # any agent: only nodes offering one of these tags run it (see agentcron.rules.routing)
    tags: list[str] = Field(default_factory=list)
    # any agent: what agents may schedule ([agents.NAME.scheduling]; services/scheduling.py)
    scheduling: dict[str, Any] | None = None
    # any agent: a concurrency key over the payload, its limit and weights (rules/keys.py)
    concurrency_key: str | None = None
    max_per_key: int | None = None
    key_weights: dict[str, int] | None = None
    # any agent: rate limits across nodes ([pools.NAME]; rules/rates.py)
    pool: str | None = None
    rate: str | None = None
    triggers: list[TriggerEntry] = Field(default_factory=list)
    alerts: list[AlertEntry] = Field(default_factory=list)

    def input(self, name: str, where: str) -> AgentInput:
        """This agent as the service layer takes it; ``where`` locates it in the file for
        an error about its kind."""
        kind, config = self.kind_and_config(where)
        return AgentInput(name=name, kind=kind, config=config, **agent_settings(self))

    def kind_and_config(self, where: str) -> tuple[str, dict[str, Any]]:
        kinds = [k for k in ("python", "command", "http", "llm") if getattr(self, k) is not None]
        if self.remote:
            kinds.append("remote")
        if len(kinds) != 1:
            raise ValidationError(
                f"{where}.kind",
                "no agent kind given" if not kinds else f"{' and '.join(kinds)} given together",
                "give exactly one of python = 'module:function', command = '...', "
                "http = 'https://...', llm = 'model-name' or remote = true",
            )
        llm_only = [k for k in _LLM_SETTINGS if getattr(self, k) is not None]
        if self.llm is not None:
            return "llm", {"model": self.llm, **{k: getattr(self, k) for k in llm_only}}
        if llm_only:
            raise ValidationError(f"{where}.{llm_only[0]}", f"does not apply to a {kinds[0]} "
                                  "agent", "it is a setting of llm agents (llm = 'model')")
        if self.remote:
            return "remote", {}
        if self.python is not None:
            return "python", {"target": self.python}
        if self.command is not None:
            config: dict[str, Any] = (
                {"argv": self.command} if isinstance(self.command, list)
                else {"command": self.command}
            )
            if self.env is not None:
                config["env"] = self.env
            if self.inherit_env is not None:
                config["inherit_env"] = self.inherit_env
            if self.cwd is not None:
                config["cwd"] = self.cwd
            return "command", config
        http: dict[str, Any] = {"url": self.http}
        if self.secret is not None:
            http["secret"] = self.secret
        if self.headers is not None:
            http["headers"] = self.headers
        return "http", http


_LLM_SETTINGS = ("base_url", "prompt", "system", "temperature", "max_tokens", "api_key_env")


class PriceEntry(BaseModel):
    """``[prices."model-name"]``: USD per million input and output tokens."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float
    output_per_mtok: float


class PoolEntry(BaseModel):
    """``[pools.NAME]``: what the agents naming it may start together, per minute."""

    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


class AgentsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agents: dict[str, AgentEntry] = Field(default_factory=dict)
    prices: dict[str, PriceEntry] = Field(default_factory=dict)
    pools: dict[str, PoolEntry] = Field(default_factory=dict)
    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path | None:
        """The folder the file is in: python agents' modules are imported from it."""
        return self._folder


def load_agents_file(path: str | Path) -> AgentsFile:
    """Parse and shape-check the file. Values (cron, durations ...) are checked by the
    services when the file is synced."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError("config", f"{path} does not exist",
                              "give the path of an agents TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError("config", f"{path} is not valid TOML: {exc}") from None
    try:
        declared = AgentsFile.model_validate(data)
    except PydanticValidationError as exc:
        raise all_problems([_shape_problem(path, error) for error in exc.errors()]) from None
    declared._folder = path.resolve().parent
    return declared


def _shape_problem(path: Path, error: ErrorDetails) -> ValidationError:
    message, hint = error["msg"].lower(), "see examples/agents.toml for the format"
    if error["type"] == "extra_forbidden":
        message, hint = _unknown_key(error["loc"])
    return ValidationError(f"{path}: {_location(error['loc'])}", message, hint)


def _unknown_key(loc: tuple[Any, ...]) -> tuple[str, str]:
    """The message and hint for a key the file's format does not have: the nearest valid
    key when one is close (a typo), else the valid keys."""
    key = str(loc[-1])
    valid = _keys_at(loc[:-1])
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    message = f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
    return message, "valid keys here: " + ", ".join(valid)


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the table at ``loc`` (a pydantic location) may have."""
    model: type[BaseModel] = AgentsFile
    rest = list(loc)
    while rest:
        part = rest.pop(0)
        if model is AgentsFile and part in ("agents", "prices") and rest:
            rest.pop(0)  # the agent's name or the model's name
            model = AgentEntry if part == "agents" else PriceEntry
        elif model is AgentEntry and part == "triggers" and rest:
            rest.pop(0)  # the trigger's index
            model = TriggerEntry
        elif model is AgentEntry and part == "alerts" and rest:
            rest.pop(0)
            model = AlertEntry
    return sorted(model.model_fields)


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part not in ("str", "int", "float", "list[str]"):
            text += ("." if text else "") + str(part)
    return text
