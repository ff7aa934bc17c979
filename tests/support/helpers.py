"""Small builders shared by the tests, and the two ways a test waits for a condition:
``wait_until`` and, inside an event loop, ``await_until``."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from agentcron.models import AgentSpec, Trigger
from agentcron.services import AgentInput, Services, TriggerInput
from agentcron.store import Store

T = TypeVar("T")


def mcp_trigger(store: Store, spec: TriggerInput, token: str = "desk",
                now: datetime | None = None, agents: list[str] | None = None) -> Trigger:
    """``spec`` made as an MCP client with the ``schedule`` token ``token`` would make it
    (the token is created if missing: the store's guardrails read it)."""
    services = Services(store)
    if all(t.name != token for t in services.access.list_tokens()):
        services.access.create_token(token, "schedule", agents=agents)
    trigger, _ = services.create_trigger(spec, now, "mcp", created_by=f"mcp:{token}")
    return trigger


def add_agent(store: Store, name: str = "a", now: datetime | None = None,
              **kwargs: Any) -> AgentSpec:
    """A python agent running ``agentcron.examples:noop``; ``kwargs`` are ``AgentInput``
    settings."""
    agents = Services(store).agents
    spec = AgentInput(name=name, kind="python", config={"target": "agentcron.examples:noop"},
                      **kwargs)
    return agents.save(agents.build(spec), now)


def add_trigger(store: Store, now: datetime, agent: str = "a", **kwargs: Any) -> Trigger:
    return Services(store).add_trigger(TriggerInput(agent=agent, **kwargs), now)


def runs_of(store: Store, trigger_id: str | None = None) -> list[Any]:
    from agentcron.store import RunFilter

    return store.list_runs(RunFilter(trigger_id=trigger_id), limit=10_000)


def _describe(message: str | Callable[[], str]) -> str:
    return message() if callable(message) else message


def wait_until(predicate: Callable[[], T], timeout: float = 20.0,
               message: str | Callable[[], str] = "condition", *, interval: float = 0.02,
               ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """Poll ``predicate`` until it returns a truthy value, and return that value: the one
    way a test waits for something the system under test will make true (never a fixed
    sleep).

    An exception of a type in ``ignoring`` counts as "not yet" (a server still starting, a
    database restarting); any other propagates at once, so a predicate can end the wait
    early (a process that exited). After ``timeout`` seconds raise ``AssertionError`` with
    ``message``, called then if it is callable so it can show the state (a log's tail)."""
    deadline = time.monotonic() + timeout
    while True:
        value: T | None = None
        with contextlib.suppress(*ignoring):
            value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{_describe(message)}")
        time.sleep(interval)


async def await_until(predicate: Callable[[], T], timeout: float = 20.0,
                      message: str | Callable[[], str] = "condition", *,
                      interval: float = 0.02,
                      ignoring: tuple[type[BaseException], ...] = ()) -> T:
    """``wait_until`` for a test running an event loop: the same contract, with the
    predicate run in a worker thread so that a predicate that blocks (a store query, a
    file read) does not stall the loop that runs the system under test, and the waits
    between tries given back to that loop."""
    deadline = time.monotonic() + timeout
    while True:
        value: T | None = None
        with contextlib.suppress(*ignoring):
            value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{_describe(message)}")
        await asyncio.sleep(interval)


def race(stores: list[Store], work: Callable[[Store, int], Any]) -> list[Any]:
    """Run ``work(store, i)`` for every store in its own thread, all released at once by a
    barrier (separate engines, as separate nodes have); errors are raised here."""
    barrier = threading.Barrier(len(stores))
    results: list[Any] = [None] * len(stores)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(stores[i], i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def process_running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped has stopped running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # gone between the open and the read
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pid_written(path: Path) -> int | None:
    """The pid a command wrote to ``path`` (``echo $$ > path``), once it has."""
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else None


def stored_agent(url: str, name: str) -> AgentSpec:
    """Agent ``name`` as stored in the database at ``url`` (a store opened for the read:
    what a front door such as the Python API wrote, read back)."""
    store = Store(url)
    try:
        return store.get_agent(name)
    finally:
        store.close()
