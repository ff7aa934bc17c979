"""``agentcron serve``: open the store, sync the agents file, run a node (and its HTTP
API in the same event loop) until SIGTERM/SIGINT, then drain.

The first signal drains gracefully (guarantee 4); a second one exits at once.

API access on a fresh install: when no API token exists at all, a node serving on a
loopback address creates one admin token named ``local-admin`` and prints it at once on
stdout (logs go to stderr and never carry it), so the dashboard at the printed address can
be signed in to; only someone at this machine can reach it. The token is created only once
the node has synced its agents file and its API listens, so a start that fails (a taken
port, a bad agents file) leaves no token nobody saw. A start that shows no token prints one
line saying how to get in (``agentcron tokens revoke local-admin``, then ``agentcron tokens
create``). A node serving on any other address refuses to start until a token exists
(``agentcron tokens create``): an open API on a network would let anyone run agents.

Output never stops the node: stdout and stderr are guarded (``logs.guard_std_streams``), so
a pipe whose reader died cannot make a log line or the signal handler raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from agentcron.engine.clock import Clock, DatabaseClock
from agentcron.engine.metrics import EngineMetrics
from agentcron.engine.node import Node
from agentcron.engine.settings import NodeSettings
from agentcron.errors import AgentcronError, ConflictError, ValidationError
from agentcron.executors import AgentRegistry, Executors
from agentcron.executors.registry import add_import_paths
from agentcron.logs import configure_logging, guard_std_streams, say
from agentcron.services import Services
from agentcron.services.agents_file import load_agents_file
from agentcron.services.opening import open_store
from agentcron.store import Store

log = structlog.get_logger(__name__)


LOCAL_ADMIN = "local-admin"


class NoTokenError(AgentcronError):
    """Serving the API beyond loopback with no token to protect it."""


class ApiStartError(AgentcronError):
    """The HTTP API could not start (e.g. its port is taken)."""


def check_api_access(store: Store, host: str) -> None:
    """Refuse an open API on a network address: with no token, only loopback is served."""
    from agentcron.services.access import Access, is_loopback_host

    if is_loopback_host(host) or Access(store).has_tokens():
        return
    raise NoTokenError(
        f"refusing to serve the API on {host} with no API token: anyone who can reach "
        "it could run agents. Create one first: `agentcron tokens create NAME --scope "
        "admin` (same --db), or serve on 127.0.0.1, or use --no-api")


def prepare_api_access(store: Store, host: str) -> str | None:
    """Once the node listens: create the first admin token on loopback when there is none
    and return it, to be shown at once; else None (``check_api_access`` refused the rest)."""
    from agentcron.services.access import Access

    access = Access(store)
    if access.has_tokens():
        return None
    check_api_access(store, host)
    try:
        return access.create_token(LOCAL_ADMIN, "admin")[1]
    except ConflictError:  # another node on this database made it first
        return None


def way_in(store: Store) -> str:
    """The one line a start that shows no token prints: how to get an admin token."""
    from agentcron.services.access import Access

    tokens = Access(store).list_tokens()
    create = "`agentcron tokens create NAME --scope admin` (same --db)"
    if any(t.name == LOCAL_ADMIN and t.last_used_at is None for t in tokens):
        return (f"An admin token {LOCAL_ADMIN!r} exists but was never used. If you do not "
                f"have it: `agentcron tokens revoke {LOCAL_ADMIN}`, then {create}, and sign "
                "in with the token it prints.")
    name = LOCAL_ADMIN if any(t.name == LOCAL_ADMIN for t in tokens) else "NAME"
    return (f"Sign in with an API token. Lost it? `agentcron tokens revoke {name}`, then "
            f"{create}.")


CLOCK_OFFSET_ENV = "AGENTCRON_CLOCK_OFFSET_S"


def check_secrets_at_rest(store: Store) -> None:
    """Refuse to start when the key cannot open the stored secrets (``SecretKeyError``
    names ``AGENTCRON_SECRET_KEY`` and the row), rather than failing each claim later; and
    say so when secrets are stored in plain text."""
    encrypted = store.check_secrets()
    if not store.secrets.enabled:
        log.warning("secrets_stored_in_plain_text",
                    detail="agent secrets (http secret and headers, command env, URL "
                    "credentials) and webhook secrets are stored unencrypted",
                    fix="set AGENTCRON_SECRET_KEY to a Fernet key (`agentcron secrets key`) "
                    "on every node and run `agentcron secrets rotate` once")
    else:
        log.info("secrets_encrypted_at_rest", encrypted=encrypted)


def clock_from_env(environ: dict[str, str] | None = None) -> Clock | None:
    """Fault injection, not a setting: ``AGENTCRON_CLOCK_OFFSET_S=300`` makes every clock
    read of this node's own (the engine's ``local_now`` and the time the http and llm agents
    sign and time requests with) 5 minutes ahead, ``-300`` behind, as on a host whose clock
    is wrong. What fires when is decided by the database's clock, so it changes nothing there
    (the chaos suite's ``skew`` scenario checks it)."""
    raw = (os.environ if environ is None else environ).get(CLOCK_OFFSET_ENV, "").strip()
    if not raw:
        return None
    try:
        offset = float(raw)
    except ValueError:
        raise ValidationError(CLOCK_OFFSET_ENV, f"{raw!r} is not a number of seconds",
                              "e.g. 300 or -300") from None
    log.warning("clock_offset_injected", offset_s=offset)
    return DatabaseClock(local_offset_s=offset)


def run_node(settings: NodeSettings, config_path: str | Path | None = None,
             registry: AgentRegistry | None = None, clock: Clock | None = None) -> int:
    """Run a node until a signal; returns the process exit code."""
    guard_std_streams()
    configure_logging()
    settings = settings.validate()
    clock = clock or clock_from_env()
    store = open_store(settings.database_url, pool_size=max(5, settings.max_inflight // 200))
    api_store: Store | None = None
    try:
        check_secrets_at_rest(store)
        if settings.api:
            check_api_access(store, settings.host)
        # Python agents' modules are found in the agents file's folder and the working
        # directory, as `python -m` and uvicorn's --app-dir find them.
        add_import_paths(*([Path(config_path).resolve().parent] if config_path else []),
                         os.getcwd())
        if config_path is not None:
            report = Services(store).sync_agents_file(load_agents_file(config_path))
            log.info("agents_file_synced", path=str(config_path), **report)
        executors = Executors(registry, thread_pool_size=settings.thread_pool_size,
                              clock=clock.local_now if clock is not None else None)
        metrics = EngineMetrics()
        # Runs' follow-ups are validated by the trigger service, which the engine below it
        # cannot import: the node is handed the validator.
        node = Node(store, settings, executors, clock=clock, metrics=metrics,
                    follow_ups=Services(store).follow_ups.for_run)
        if settings.api:
            # Its own small pool, so API traffic never holds the engine's connections.
            api_store = Store(settings.database_url, pool_size=3)
        code = asyncio.run(_serve(node, settings, store, api_store, metrics))
    finally:
        if api_store is not None:
            api_store.close()
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


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_signals(loop: asyncio.AbstractEventLoop, on_first: Callable[[int], None],
                         node_id: str) -> Callable[[], None]:
    """Make the first SIGTERM/SIGINT call ``on_first(signum)`` on ``loop`` and a second one
    exit the process at once; returns a function that puts the previous handlers back.

    Not ``loop.add_signal_handler``: that one learns of a signal only from a byte the C
    handler writes into the loop's self-pipe, the same pipe every ``call_soon_threadsafe``
    writes to. A loop behind its work can let that pipe fill up, and then the signal's byte
    is dropped ("Exception ignored when trying to write to the signal wakeup fd") and the
    signal is lost. Here the handler is a Python-level one: CPython runs it in the main
    thread (the loop's) from the flag the C handler sets, whatever the pipe holds, and it
    hands the drain to the loop with ``call_soon_threadsafe``, whose callback is queued even
    when its wake-up byte cannot be written. So that a signal also wakes a loop idle in
    ``select``, the wake-up fd is a pipe of its own that only signals write to (one byte
    each), read and emptied by the loop. The second signal exits from the handler itself,
    without waiting for the loop.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("signal handlers can only be installed from the main thread")
    seen = 0
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)

    def handler(signum: int, _frame: object) -> None:
        nonlocal seen
        seen += 1
        if seen == 1:
            loop.call_soon_threadsafe(on_first, signum)
            return
        # Runs between two bytecodes of whatever the main thread was doing: no logger (its
        # lock may be held right there), one write of a finished line, then exit.
        line = json.dumps({"event": "second_signal", "action": "exiting now",
                           "node_id": node_id, "level": "warning",
                           "signal": signal.Signals(signum).name})
        with contextlib.suppress(OSError):
            os.write(2, (line + "\n").encode())
        os._exit(1)

    def empty_wakeup_pipe() -> None:
        with contextlib.suppress(OSError):
            while reader.recv(4096):
                pass

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    loop.add_reader(reader.fileno(), empty_wakeup_pipe)

    def restore() -> None:
        signal.set_wakeup_fd(previous_fd)
        for signum, old in previous.items():
            signal.signal(signum, old)
        loop.remove_reader(reader.fileno())
        reader.close()
        writer.close()

    return restore


def _quiet_server_class() -> type:

    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn that leaves signals to the node: its own capture would swallow the first
        SIGTERM and re-raise it after shutdown, which reads as a second signal."""

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def]
            yield

    return QuietServer


async def _start_api(server: Any, settings: NodeSettings) -> asyncio.Task[None]:
    """Start uvicorn and wait until it listens, before the node takes any work: a node
    whose API cannot bind (port in use) stops here with an error instead of running
    without its API."""

    async def serve() -> None:
        with contextlib.suppress(SystemExit):  # uvicorn's way to report a failed startup
            await server.serve()

    task = asyncio.create_task(serve())
    while not server.started:
        if task.done():
            raise ApiStartError(f"cannot serve the API on {settings.host}:{settings.port} "
                                "(see the error above: is the port in use?)")
        await asyncio.sleep(0.02)
    return task


async def _serve(node: Node, settings: NodeSettings, store: Store, api_store: Store | None,
                 metrics: EngineMetrics) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def first_signal(signum: int) -> None:
        # Act first, then log: nothing a log line does can keep the node from stopping.
        stop.set()
        log.info("signal_received", signal=signal.Signals(signum).name, action="draining",
                 node_id=node.id, drain_timeout_s=settings.drain_timeout_s)

    restore = install_stop_signals(loop, first_signal, node.id)
    try:
        return await _serve_until_stopped(node, settings, store, api_store, metrics, stop)
    finally:
        restore()


async def _serve_until_stopped(node: Node, settings: NodeSettings, store: Store,
                               api_store: Store | None, metrics: EngineMetrics,
                               stop: asyncio.Event) -> int:
    # What serving the API entered (the MCP endpoint's session manager), left at the end.
    async with contextlib.AsyncExitStack() as exits:
        return await _serve_api_and_node(node, settings, store, api_store, metrics, stop,
                                         exits)


async def _serve_api_and_node(node: Node, settings: NodeSettings, store: Store,
                              api_store: Store | None, metrics: EngineMetrics,
                              stop: asyncio.Event, exits: contextlib.AsyncExitStack) -> int:
    server_task: asyncio.Task[None] | None = None
    server = None
    if settings.api:
        import uvicorn

        from agentcron.api.app import create_app
        from agentcron.mcp_server.http import McpHttp

        app = create_app(api_store or store, node.id, metrics=metrics,
                         metrics_public=settings.metrics_public,
                         api_docs=settings.api_docs,
                         webhook_max_bytes=settings.webhook_max_bytes,
                         max_body_bytes=settings.max_body_bytes,
                         supervisor=node.supervisor, runs_ready=node.runs_ready,
                         zombie_timeout_s=settings.zombie_timeout_s)
        # MCP at /mcp: a route of the same app, so its requests pass the app's middleware
        # (no token in a URL, bodies capped while they stream) and then its own token gate.
        mcp = McpHttp(Services(api_store or store))
        app.router.routes.insert(0, mcp.route())
        await exits.enter_async_context(mcp.run())
        # No access log: it would print URLs, and a URL is no place for anything secret.
        # Once the node has drained, requests still open (a worker's long poll, a client
        # gone silent) get one more drain timeout, then are cut: a stop never hangs on them.
        config = uvicorn.Config(app, host=settings.host, port=settings.port,
                                log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=max(1, round(
                                    settings.drain_timeout_s)))
        server = _quiet_server_class()(config)
        server_task = await _start_api(server, settings)
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    if settings.api:
        # Only now that the API listens: a start that failed before has made no token.
        first_token = await asyncio.to_thread(prepare_api_access, store, settings.host)
        if first_token is not None:  # shown where it is made, before anything else can fail
            say(f"No API token existed, so an admin token named {LOCAL_ADMIN!r} was created. "
                f"Sign in at http://{host}:{settings.port}/ with it; it is shown only this "
                f"once:\n\n    {first_token}\n\n(revoke it with `agentcron tokens revoke "
                f"{LOCAL_ADMIN}`)")
        else:
            say(await asyncio.to_thread(way_in, store))
    await node.start()
    where = (f"dashboard and API at http://{host}:{settings.port}/" if settings.api
             else "no HTTP API")
    say(f"agentcron node {node.id} running ({where}; db {store.engine.url!r}); "
        "Ctrl-C to drain and stop", err=True)
    await stop.wait()
    await node.drain()
    if server is not None and server_task is not None:
        server.should_exit = True
        await server_task
    return 0
