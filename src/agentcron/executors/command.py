"""Command agents: run a program, pass the run in its environment and on stdin.

Config: ``{"argv": [...], "env": {...}, "inherit_env": [...], "cwd": str | None,
"output_limit": int, "kill_grace_s": float}``. The child starts from a clean environment, not
the node's (which holds the database URL, the secret key, every API key): it gets ``PATH``,
``HOME``, ``LANG`` and ``TZ`` when the node has them, the node's variables named in
``inherit_env`` (never an ``AGENTCRON_*`` one, even if listed), the agent's ``env``, and
``AGENTCRON_RUN_ID``, ``AGENTCRON_ATTEMPT``, ``AGENTCRON_AGENT``, ``AGENTCRON_TRIGGER_ID``
(empty for a manual fire),
``AGENTCRON_SCHEDULED_FOR`` (ISO 8601 UTC) and ``AGENTCRON_PAYLOAD`` (JSON; left out when over
``ENV_PAYLOAD_LIMIT`` bytes, the kernel's per-string limit is 128 KiB); the payload JSON is
always written to stdin, which is then closed.

Result: both streams are kept, on success and on failure: stdout is the run's output and
stderr its ``stderr`` (each its first ``output_limit`` bytes, UTF-8 with replacement, then a
truncation marker; an empty stream is None). Exit 0 is success; if stdout is then a JSON
object with ``"output"``, ``"usage"`` and/or ``"schedule"`` they are taken as for HTTP
agents. Follow-ups: each stdout line ``::agentcron:schedule {"in": "20m", "payload": {...}}``
asks for one (``executors.follow_ups``; the keys of a ``"schedule"`` request) and is left out
of the output; a run's follow-ups are kept only when it exits 0. A non-zero
exit fails (retryable) with ``"exit code N: <stderr tail>"`` (stdout's tail when stderr is
empty). A missing or non-executable program, or a missing cwd, fails
without retry.

The run owns its process group: whatever the command left running in it when it exits, or
when the run is cancelled (timeout, cancel, drain), gets SIGTERM, then SIGKILL after
``kill_grace_s`` (default 5). On cancellation the leader is reaped before ``CancelledError``
is re-raised.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from dataclasses import replace
from datetime import UTC
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger

from agentcron.executors.base import failed, merge_usage, output_limit
from agentcron.executors.context import RunContext
from agentcron.executors.follow_ups import merged, split_directives, utc_now
from agentcron.executors.process import (
    CappedBuffer,
    ChildProtocol,
    group_alive,
    kill_group_now,
    stop_group,
)
from agentcron.executors.response import parse_answer
from agentcron.models import AgentKind, AgentSpec, ClaimedRun, ExecutionResult

_log: FilteringBoundLogger = structlog.get_logger(__name__)

DEFAULT_KILL_GRACE_S = 5.0
ERROR_TAIL = 4 * 1024
"""Bytes of stderr an error keeps: its end, where programs say what went wrong."""
ENV_PAYLOAD_LIMIT = 100 * 1024
BASE_ENV = ("PATH", "HOME", "LANG", "TZ")
"""The node's variables every command gets: enough to find programs and format text."""
PIPE_EOF_WAIT_S = 2.0
"""After the group is gone, how long to wait for pipes still held by a process that left it."""


class CommandExecutor:
    """Runs command agents as child processes. Tracks live children so ``aclose`` can kill them."""

    def __init__(self) -> None:
        self._live: set[int] = set()  # process group ids of the commands running now
        self._closed = False

    async def execute(self, run: ClaimedRun, ctx: RunContext) -> ExecutionResult:
        cfg = run.agent.config
        log = _log.bind(run_id=run.run_id, agent=run.agent.name, attempt=run.attempt)
        argv = cfg.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            return failed("command agent has no valid 'argv' in its config", retryable=False)
        limit = output_limit(cfg)
        grace = kill_grace_s(cfg)
        payload = json.dumps(run.payload, default=str, ensure_ascii=False).encode()
        out, err = CappedBuffer(limit, ERROR_TAIL), CappedBuffer(limit, ERROR_TAIL)
        try:
            transport, child, cancelled = await _spawn(argv, cfg, run, payload, out, err)
        except OSError as exc:
            return _spawn_failed(exc, argv, cfg.get("cwd"))
        except (ValueError, TypeError) as exc:  # a NUL byte, a cwd that is not a path...
            return failed(f"cannot start {argv[0]!r}: {exc}", retryable=False)
        pid = transport.get_pid()
        log.debug("command started", pid=pid, argv=argv[:3])
        self._live.add(pid)
        if self._closed:  # aclose ran while we were starting it
            kill_group_now(pid)
        try:
            if cancelled:
                raise asyncio.CancelledError  # cancelled while starting: stop it like any other
            stdin = transport.get_pipe_transport(0)
            assert isinstance(stdin, asyncio.WriteTransport)
            stdin.write(payload)  # buffered by the transport; a child that never reads is fine
            stdin.close()
            # shield: cancelling this task must not cancel the future stop_group relies on.
            await asyncio.shield(child.exited)
            # Anything still running in the group is a stray the command left behind.
            if group_alive(pid):
                log.info("command left processes running, stopping them", pid=pid)
                await stop_group(pid, child.exited, grace)
            await _pipes_closed(child, log)
        except asyncio.CancelledError:
            log.info("command cancelled, stopping its process group", pid=pid, grace_s=grace)
            try:
                await stop_group(pid, child.exited, grace)
            except asyncio.CancelledError:  # cancelled again while waiting: no more grace
                kill_group_now(pid)
                raise
            raise
        finally:
            self._live.discard(pid)
            if transport.get_returncode() is None:  # leaving early (a bug?): leave no process
                kill_group_now(pid)
            transport.close()
        return _result(transport.get_returncode(), out, err, ctx, log)

    async def aclose(self) -> None:
        """SIGKILL the groups of commands still running (the engine should have cancelled them)."""
        self._closed = True
        for pid in list(self._live):
            kill_group_now(pid)
        self._live.clear()


def kill_grace_s(cfg: dict[str, Any]) -> float:
    """How long a cancelled command gets between SIGTERM and SIGKILL (the config's
    ``kill_grace_s``, ``DEFAULT_KILL_GRACE_S`` when absent or not a number >= 0)."""
    grace = cfg.get("kill_grace_s", DEFAULT_KILL_GRACE_S)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not grace >= 0:
        return DEFAULT_KILL_GRACE_S
    return float(grace)


def stop_grace_s(agent: AgentSpec) -> float:
    """How long stopping an attempt of ``agent`` may take once cancelled: a command's kill
    grace (SIGTERM, then SIGKILL after it); other kinds stop when cancelled. The fence of a
    node and of a worker reserves it (``rules/fencing.py``)."""
    if agent.kind is AgentKind.COMMAND:
        return kill_grace_s(agent.config)
    return 0.0


async def _spawn(
    argv: list[str],
    cfg: dict[str, Any],
    run: ClaimedRun,
    payload: bytes,
    out: CappedBuffer,
    err: CappedBuffer,
) -> tuple[asyncio.SubprocessTransport, ChildProtocol, bool]:
    """Start the command; the flag says whether the task was cancelled while it started.

    Cancelled midway, asyncio would SIGKILL the leader alone and leave anything it already
    started; so the start is finished and the caller stops the whole group instead.
    """
    loop = asyncio.get_running_loop()
    spawn = asyncio.ensure_future(
        loop.subprocess_exec(
            lambda: ChildProtocol(out, err),
            *argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cfg.get("cwd") or None,
            env=_child_env(run, cfg, payload),
            start_new_session=True,  # own process group: one signal stops all it starts
        )
    )
    try:
        transport, child = await asyncio.shield(spawn)
        return transport, child, False
    except asyncio.CancelledError:
        try:
            transport, child = await spawn  # milliseconds: the child is forked already
        except Exception:  # it did not start: nothing to stop, just be cancelled
            pass
        else:
            return transport, child, True
        raise


async def _pipes_closed(child: ChildProtocol, log: FilteringBoundLogger) -> None:
    """Let the last output arrive; give up on pipes held by a process that left the group."""
    try:
        await asyncio.wait_for(asyncio.shield(child.pipes_closed), PIPE_EOF_WAIT_S)
    except TimeoutError:
        log.warning("a process outside the command's group holds its output open; not waiting")


def _result(
    code: int | None,
    out: CappedBuffer,
    err: CappedBuffer,
    ctx: RunContext,
    log: FilteringBoundLogger,
) -> ExecutionResult:
    if code != 0:
        status = f"exit code {code}"
        if code is not None and code < 0:
            status += f" (killed by {_signal_name(-code)})"
        detail = (err.tail_text() if err.total else out.tail_text()).strip()
        log.info("command failed", exit_code=code)
        error = f"{status}: {detail}" if detail else status
        return replace(failed(error, retryable=True, usage=merge_usage(ctx.usage, None)),
                       output=_stream(out), stderr=_stream(err))
    now = utc_now()
    text, directed = split_directives(out.text(), now)
    output: str | None = text if text or not directed else None
    reported = None
    asked: tuple[Any, ...] = ()
    if not out.truncated:
        output, reported, asked = parse_answer(text, log, out.limit, now)
    log.debug("command succeeded", stdout_bytes=out.total, stderr_bytes=err.total)
    return ExecutionResult(ok=True, output=output, usage=merge_usage(ctx.usage, reported),
                           stderr=_stream(err), schedule=merged(directed, asked))


def _stream(buffer: CappedBuffer) -> str | None:
    """A stream as stored: its capped text, or None if the command wrote nothing to it."""
    return buffer.text() if buffer.total else None


def _child_env(run: ClaimedRun, cfg: dict[str, Any], payload: bytes) -> dict[str, str]:
    """The command's whole environment; nothing of the node's passes unless named here."""
    env = {name: os.environ[name] for name in BASE_ENV if name in os.environ}
    inherit = cfg.get("inherit_env")
    if isinstance(inherit, list):
        for name in inherit:
            # Checked again here: a list written straight into the database is not validated.
            if isinstance(name, str) and not name.upper().startswith("AGENTCRON_"):
                value = os.environ.get(name)
                if value is not None:
                    env[name] = value
    extra = cfg.get("env")
    if isinstance(extra, dict):  # AGENTCRON_* names are agentcron's (refused by validation)
        env.update({str(k): str(v) for k, v in extra.items()
                    if not str(k).upper().startswith("AGENTCRON_")})
    env.update(
        AGENTCRON_RUN_ID=run.run_id,
        AGENTCRON_ATTEMPT=str(run.attempt),
        AGENTCRON_AGENT=run.agent.name,
        AGENTCRON_TRIGGER_ID=run.trigger_id or "",
        AGENTCRON_SCHEDULED_FOR=run.scheduled_for.astimezone(UTC).isoformat(),
    )
    if len(payload) <= ENV_PAYLOAD_LIMIT:
        env["AGENTCRON_PAYLOAD"] = payload.decode()
    return env


def _spawn_failed(exc: OSError, argv: list[str], cwd: Any) -> ExecutionResult:
    # exc.filename is the program or, when chdir failed, the cwd (CPython reports which).
    if cwd and exc.filename == cwd:
        return failed(f"cannot start {argv[0]!r}: cwd {cwd!r}: {exc.strerror}", retryable=False)
    if isinstance(exc, FileNotFoundError):
        return failed(f"command not found: {argv[0]!r} (not on PATH?)", retryable=False)
    if isinstance(exc, PermissionError | NotADirectoryError | IsADirectoryError):
        return failed(f"cannot execute {argv[0]!r}: {exc.strerror}", retryable=False)
    # EAGAIN, ENOMEM, EMFILE...: the node is short of resources, another attempt may work.
    return failed(f"cannot start {argv[0]!r}: {exc}", retryable=True)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
