"""``agentcron serve``: open the store, sync the agents file, run a node (and its HTTP
API in the same event loop) until SIGTERM/SIGINT, then drain.

The first signal drains gracefully (guarantee 4); a second one exits at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import structlog

from agentcron.agents import AgentRegistry, Executors
from agentcron.config import load_agents_file
from agentcron.engine.clock import Clock
from agentcron.engine.node import Node
from agentcron.logs import configure_logging
from agentcron.services import Services
from agentcron.settings import NodeSettings
from agentcron.store import Store

log = structlog.get_logger(__name__)


def open_store(url: str, *, pool_size: int = 5) -> Store:
    """Open the store. A brand-new SQLite database (no schema at all) is created on the
    spot, so the embedded default works out of the box; any other database must be
    migrated with ``agentcron db upgrade`` (raises DatabaseNotMigratedError otherwise)."""
    from agentcron.store import migrate

    store = Store(url, pool_size=pool_size)
    if store.backend == "sqlite" and migrate.current_revision(store.engine) is None:
        store.upgrade()
    store.ensure_migrated()
    return store


def run_node(settings: NodeSettings, config_path: str | Path | None = None,
             registry: AgentRegistry | None = None, clock: Clock | None = None) -> int:
    """Run a node until a signal; returns the process exit code."""
    configure_logging()
    settings = settings.validate()
    store = open_store(settings.database_url, pool_size=max(5, settings.max_inflight // 200))
    try:
        if config_path is not None:
            report = Services(store).sync_agents_file(load_agents_file(config_path))
            log.info("agents_file_synced", path=str(config_path), **report)
        executors = Executors(registry, thread_pool_size=settings.thread_pool_size)
        node = Node(store, settings, executors, clock=clock)
        code = asyncio.run(_serve(node, settings, store))
    finally:
        store.close()
    _exit_past_stuck_threads(code)
    return code


def _exit_past_stuck_threads(code: int) -> None:
    """A sync Python agent that ignores cancellation keeps its worker thread, and the
    interpreter would wait for it at exit. The node has drained and released its runs by
    now, so nothing is lost by not waiting."""
    import threading

    stuck = [t for t in threading.enumerate()
             if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:
        log.warning("exiting_past_agent_threads", threads=len(stuck))
        sys.stderr.flush()
        os._exit(code)


def _quiet_server_class() -> type:
    import contextlib

    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn that leaves signals to the node: its own capture would swallow the first
        SIGTERM and re-raise it after shutdown, which reads as a second signal."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            yield

    return QuietServer


async def _serve(node: Node, settings: NodeSettings, store: Store) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signum: int) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("signal_received", signal=signal.Signals(signum).name, action="draining",
                     node_id=node.id, drain_timeout_s=settings.drain_timeout_s)
            stop.set()
        else:
            log.warning("second_signal", action="exiting now", node_id=node.id)
            os._exit(1)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    server_task: asyncio.Task[None] | None = None
    server = None
    if settings.api:
        import uvicorn

        from agentcron.api.app import create_app

        config = uvicorn.Config(create_app(store, node.id), host=settings.host,
                                port=settings.port, log_level="warning", lifespan="off")
        server = _quiet_server_class()(config)
        server_task = asyncio.create_task(server.serve())
    await node.start()
    where = f"http://{settings.host}:{settings.port}" if settings.api else "no HTTP API"
    print(f"agentcron node {node.id} running ({where}; db {store.engine.url!r}); "
          "Ctrl-C to drain and stop", file=sys.stderr, flush=True)
    await stop.wait()
    await node.drain()
    if server is not None and server_task is not None:
        server.should_exit = True
        await server_task
    return 0
