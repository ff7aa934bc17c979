"""Putting many triggers into an agentcron database fast: one validated trigger from
``Services.build_trigger`` as the template, then bulk INSERTs through the store's engine
(one ``Services`` call per trigger would take minutes at 1M)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, event, text, update

from agentcron.rules.ids import new_trigger_id
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from agentcron.store.schema import metadata, triggers

AGENT = "noop"
TARGET = "bench.probe:file_agent"


def reset(store: Store) -> None:
    """Empty every agentcron table (one TRUNCATE, far faster than DELETE on big tables)."""
    names = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    with store.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} CASCADE"))


def add_agent(store: Store, target: str = TARGET, max_concurrency: int = 100_000) -> None:
    services = Services(store)
    services.add_agent(services.build_agent(
        AGENT, "python", {"target": target}, max_concurrency=max_concurrency, timeout="60s"))


def insert_interval_triggers(store: Store, n: int, *, every: str = "1s",
                             chunk: int = 5000) -> list[str]:
    """``n`` interval triggers (overlap allow, catch-up all), not yet due; their ids."""
    services = Services(store)
    now = store.now()
    far = (now + timedelta(days=1)).replace(microsecond=0)
    template = services.build_trigger(
        TriggerInput(agent=AGENT, every=every, start=far, overlap="allow", catchup_mode="all"),
        now, source="bench").row()
    ids = [new_trigger_id() for _ in range(n)]
    with store.engine.begin() as conn:
        for offset in range(0, n, chunk):
            rows = [{**template, "id": tid, "name": f"t{offset + i}", "created_at": now,
                     "updated_at": now}
                    for i, tid in enumerate(ids[offset:offset + chunk])]
            conn.execute(triggers.insert(), rows)
    analyze(store)
    return ids


def anchor_triggers(store: Store, anchor_ts: float) -> None:
    """Make every trigger start (and first fire) at ``anchor_ts``."""
    at = datetime.fromtimestamp(anchor_ts, UTC)
    with store.engine.begin() as conn:
        conn.execute(update(triggers).values(anchor_at=at, start_at=at, next_fire_at=at))


def analyze(store: Store) -> None:
    with store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("ANALYZE"))


class StatementCounter:
    """Every statement the store's engine sends, from any thread; and per thread, for
    timing one store call (``in_this_thread``)."""

    def __init__(self, store: Store) -> None:
        self._all = itertools.count()
        self._taken = 0
        import threading

        self._local = threading.local()
        self.kinds: dict[str, int] = {}
        self.track_kinds = False
        event.listen(store.engine, "before_cursor_execute", self._on_statement)

    def _on_statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        next(self._all)
        local = getattr(self._local, "n", None)
        if local is not None:
            self._local.n = local + 1
        if self.track_kinds:
            kind = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
            self.kinds[kind] = self.kinds.get(kind, 0) + 1

    def total(self) -> int:
        """Statements so far (reading costs one tick of the counter, discounted)."""
        value = next(self._all) - self._taken
        self._taken += 1
        return value

    @contextmanager
    def in_this_thread(self) -> Iterator[Callable[[], int]]:
        self._local.n = 0
        try:
            yield lambda: int(self._local.n)
        finally:
            self._local.n = None


def insert_sparse_triggers(store: Store, n: int, *, every_s: int = 3600,
                           lead_s: float = 5.0) -> float:
    """``n`` triggers firing every ``every_s`` seconds, their next fires spread evenly over
    one period that begins ``lead_s`` from now (so a node started after the insert finds
    none overdue): one INSERT ... SELECT generate_series, the constant columns taken from
    one validated trigger. Returns the epoch time of the first fire."""
    services = Services(store)
    now = store.now()
    base = now.replace(microsecond=0) + timedelta(seconds=lead_s)
    step = every_s / max(n, 1)
    if n <= 0:
        return base.timestamp()
    template = services.build_trigger(
        TriggerInput(agent=AGENT, every=f"{every_s}s", start=base), now, source="bench").row()
    computed = {"id", "name", "anchor_at", "start_at", "next_fire_at"}
    constants = {key: value for key, value in template.items() if key not in computed}
    constants.update(created_at=now, updated_at=now)
    columns = list(constants) + sorted(computed)
    params = [bindparam(f"c_{key}", value, type_=triggers.c[key].type)
              for key, value in constants.items()]
    # Trigger g is anchored one period before its next fire, base + g * step.
    anchor = "(:base + make_interval(secs => g * :step - :every))"
    first = "(:base + make_interval(secs => g * :step))"
    expressions = [f":c_{key}" for key in constants] + [
        anchor,  # anchor_at
        "'trs_' || lpad(g::text, 9, '0')",  # id
        "'t' || g",  # name
        first,  # next_fire_at
        anchor,  # start_at
    ]
    statement = text(
        f"INSERT INTO triggers ({', '.join(columns)}) "
        f"SELECT {', '.join(expressions)} FROM generate_series(1, :n) AS g"
    ).bindparams(*params, bindparam("base", base, type_=triggers.c.anchor_at.type),
                 bindparam("step", step), bindparam("every", float(every_s)),
                 bindparam("n", n))
    with store.engine.begin() as conn:
        conn.execute(statement)
    analyze(store)
    return base.timestamp() + step
