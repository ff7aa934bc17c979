"""The Python API: declare agents with a decorator and triggers in code, then run a node
in-process (or from ``agentcron serve`` on other hosts: decorated functions are stored by
import path, so any node that can import the module can run them).

    from agentcron import Agentcron, RunContext

    app = Agentcron("postgresql://localhost/agentcron")

    @app.agent(max_concurrency=2, timeout="2m")
    async def summarise(ctx: RunContext) -> str:
        ...

    app.schedule("summarise", cron="0 9 * * 1-5", tz="Europe/Berlin", name="mornings")

    if __name__ == "__main__":
        raise SystemExit(app.run())

Settings are ``NodeSettings`` fields, from the environment (``AGENTCRON_PORT=8081``) or as
keyword arguments (``Agentcron(db, port=8081)``), the keyword winning.
"""

from __future__ import annotations

import keyword
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from agentcron.engine.settings import NodeSettings, settings_from_env
from agentcron.errors import AgentcronError, ValidationError
from agentcron.executors import AgentRegistry
from agentcron.logs import say
from agentcron.server import run_node
from agentcron.services import AgentInput, Duration, Services, TriggerInput
from agentcron.services.opening import open_store

F = TypeVar("F", bound=Callable[..., Any])

SOURCE = "code"
#: The provenance of the triggers declared in code (``Trigger.created_by``).
CREATED_BY = "python"


class Agentcron:
    def __init__(self, db: str | None = None, **settings: Any) -> None:
        base = settings_from_env()
        self.settings: NodeSettings = base.with_overrides(database_url=db, **settings)
        self.registry = AgentRegistry()
        self._agents: list[AgentInput] = []
        self._triggers: list[TriggerInput] = []

    def agent(self, name: str | None = None, *, max_concurrency: int = 1,
              timeout: Duration = "5m", max_attempts: int = 3,
              zombie_timeout: Duration | None = None, retry_backoff: Duration = "2s",
              description: str | None = None, budget: dict[str, Any] | None = None,
              on_budget: str | None = None, pause_after_failures: int | None = None,
              tags: Sequence[str] = (), concurrency_key: str | None = None,
              max_per_key: int | None = None, key_weights: dict[str, int] | None = None,
              pool: str | None = None, rate: str | None = None,
              scheduling: dict[str, Any] | None = None) -> Callable[[F], F]:
        """Register a function (sync or async, taking a RunContext or nothing) as an
        agent. Its stored target is ``module:qualname``. ``budget`` (e.g.
        ``{"usd_per_day": 2.0}``) and ``on_budget`` are as in the agents file; the function
        reports what it spent with ``ctx.record_usage``. ``pause_after_failures`` is the
        circuit breaker's default for its triggers. ``tags``: only nodes offering one of
        them run it (``Agentcron(tags=[...])``, ``serve --tags``). ``concurrency_key``
        (e.g. ``"{{ tenant }}"``), ``max_per_key`` and ``key_weights``: per-key limits and
        fair turns (``rules/keys.py``). ``pool``: the rate-limit pool its runs draw from
        (``agentcron pools set``); ``rate``: its own, ``"60/m"``. ``scheduling``: what
        its runs may schedule (``ctx.schedule``), as the agents file's
        ``[agents.NAME.scheduling]``: ``may_schedule``, ``max_live``, ``min_interval``,
        ``expires_after``, ``require_approval``."""

        def decorate(fn: F) -> F:
            target = f"{importable_module(fn)}:{fn.__qualname__}"
            self.registry.register(target, fn)
            self._agents.append(AgentInput(
                name=name or fn.__name__, kind="python", config={"target": target},
                max_concurrency=max_concurrency, timeout=timeout, max_attempts=max_attempts,
                zombie_timeout=zombie_timeout, retry_backoff=retry_backoff,
                description=description or (fn.__doc__ or "").strip() or None,
                budget=budget, on_budget=on_budget,
                pause_after_failures=pause_after_failures, tags=tuple(tags),
                concurrency_key=concurrency_key, max_per_key=max_per_key,
                key_weights=key_weights, pool=pool, rate=rate, scheduling=scheduling))
            return fn

        return decorate

    def schedule(self, agent: str, *, name: str | None = None, **trigger: Any) -> None:
        """Declare a trigger (``cron=``/``every=``/``at=``, ``tz``, ``payload``, ``overlap``,
        ``catchup``, ``catchup_mode``, ``jitter``, ``start``, ``end``,
        ``pause_after_failures``). Synced by (agent,
        name) when the app starts, like the agents file."""
        self._triggers.append(TriggerInput(agent=agent, name=name, **trigger))

    def sync(self) -> dict[str, int]:
        """Write the declared agents and triggers (validated first; all or nothing)."""
        with self._services() as services:
            return services.declared.apply(SOURCE, self._agents, self._triggers,
                                           created_by=CREATED_BY)

    def fire(self, agent: str, payload: Any = None) -> str:
        """Queue a run now; returns its id."""
        with self._services() as services:
            return services.fire(agent, payload)

    @contextmanager
    def _services(self) -> Iterator[Services]:
        """Services on a store opened for one call (this object holds no connections)."""
        store = open_store(self.settings.database_url)
        try:
            yield Services(store)
        finally:
            store.close()

    def run(self) -> int:
        """Sync, then run a node in this process until SIGTERM/SIGINT (then drain); returns
        the exit code (``raise SystemExit(app.run())``). What stops it from starting (a bad
        declaration, a database to upgrade, a port in use) is one ``error: ...`` line on
        stderr and exit code 2 (bad input) or 1, as with ``agentcron serve``."""
        try:
            self.sync()
            return run_node(self.settings, registry=self.registry)
        except ValidationError as exc:
            say(f"error: {exc}", err=True)
            return 2
        except AgentcronError as exc:
            say(f"error: {exc}", err=True)
            return 1


def importable_module(fn: Callable[..., Any]) -> str:
    """The module name other processes import ``fn`` by. A function defined in the script
    run as ``python app.py`` lives in ``__main__``, which names a different module in every
    process: it is stored under the script's own name (``app``; with ``python -m pkg.app``,
    ``pkg.app``), which nodes started in the script's folder can import. A function with no
    such name (typed at a prompt, in a notebook) is refused."""
    module: str = fn.__module__
    if module != "__main__":
        return module
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)
    path = getattr(main, "__file__", None)
    stem = Path(path).stem if path else ""
    if not stem.isidentifier() or keyword.iskeyword(stem):
        raise ValidationError(
            "python", f"{fn.__qualname__!r} is defined in __main__ "
            f"({path or 'an interactive session'}), which no other process can import",
            "move the function into a module (e.g. jobs.py) and import it from there")
    return stem

