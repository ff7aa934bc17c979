"""Command executor: real child processes, real signals, real pipes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agentcron.executors import RunContext
from agentcron.executors.command import CommandExecutor
from agentcron.models import AgentKind, AgentSpec, ClaimedRun, ExecutionResult, Usage
from agentcron.rules.ids import new_run_id

PY = sys.executable


def make_run(config: dict[str, Any], payload: Any = None) -> ClaimedRun:
    now = datetime.now(UTC)
    spec = AgentSpec(name="cmd-agent", kind=AgentKind.COMMAND, config=config)
    return ClaimedRun(
        run_id=new_run_id(),
        lease=1,
        attempt=3,
        agent=spec,
        trigger_id="tr_cmd",
        scheduled_for=datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        started_at=now,
        deadline_at=now + timedelta(seconds=60),
        payload=payload,
    )


def run_command(argv: list[str], payload: Any = None, **config: Any) -> ExecutionResult:
    async def main() -> ExecutionResult:
        run = make_run({"argv": argv, **config}, payload)
        executor = CommandExecutor()
        try:
            return await executor.execute(run, RunContext(run))
        finally:
            await executor.aclose()

    return asyncio.run(main())


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs. Orphaned zombies count as gone: where PID 1 does not
    reap (many containers) they stay in the table, but they run nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:  # reaped while we looked
        return True


def processes_of(run_id: str) -> list[int]:
    """Live processes whose environment carries this run's id: whatever the run started."""
    marker = f"AGENTCRON_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and not gone(int(entry.name)):
            found.append(int(entry.name))
    return found


# A child that starts a grandchild in its own process group, reports both pids to the test
# over TCP (REPORT_PORT), then sleeps; IGNORE_TERM makes it ignore SIGTERM.
FAMILY = """
import os, signal, socket, subprocess, sys, time
if os.environ.get("IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
grandchild = subprocess.Popen(["sleep", "60"])
with socket.create_connection(("127.0.0.1", int(os.environ["REPORT_PORT"]))) as s:
    s.sendall(f"{os.getpid()} {grandchild.pid}\\n".encode())
time.sleep(60)
"""


async def start_family(
    make_task: Callable[[ClaimedRun, RunContext], Coroutine[Any, Any, ExecutionResult]],
    env: dict[str, str] | None = None,
    **config: Any,
) -> tuple[asyncio.Task[ExecutionResult], list[int], RunContext]:
    """Start FAMILY under the executor; return the task once child and grandchild are up."""
    reported: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        reported.set_result([int(p) for p in line.split()])
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    run = make_run(
        {"argv": [PY, "-c", FAMILY], "env": {"REPORT_PORT": str(port), **(env or {})}, **config}
    )
    ctx = RunContext(run)
    task: asyncio.Task[ExecutionResult] = asyncio.create_task(make_task(run, ctx))
    waiters: set[asyncio.Future[Any]] = {reported, task}
    done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    server.close()
    await server.wait_closed()
    assert reported in done, f"child ended before reporting: {task.result()}"
    return task, reported.result(), ctx


def test_exit_zero_keeps_stdout_as_output_and_stderr() -> None:
    assert run_command(["/bin/sh", "-c", "echo hello; echo noise >&2"]) == ExecutionResult(
        ok=True, output="hello\n", stderr="noise\n"
    )
    assert run_command(["/bin/sh", "-c", "echo quiet"]).stderr is None  # nothing written


def test_non_zero_exit_fails_retryable_and_keeps_stdout_and_stderr() -> None:
    result = run_command(["/bin/sh", "-c", "echo working; echo 'disk full' >&2; exit 3"])
    assert result == ExecutionResult(ok=False, error="exit code 3: disk full", retryable=True,
                                     output="working\n", stderr="disk full\n")


def test_killed_by_a_signal_says_so() -> None:
    result = run_command(["/bin/sh", "-c", "kill -KILL $$"])
    assert result.error == "exit code -9 (killed by SIGKILL)"


def test_environment_carries_the_run() -> None:
    script = (
        "import json, os; print(json.dumps({k: v for k, v in os.environ.items()"
        " if k.startswith(('AGENTCRON_', 'MY_', 'PATH'))}))"
    )
    result = run_command(
        [PY, "-c", script], payload={"city": "Zürich", "n": 1}, env={"MY_SETTING": "on"}
    )
    assert result.ok and result.output is not None
    env = json.loads(result.output)
    assert env["AGENTCRON_RUN_ID"]
    assert env["AGENTCRON_ATTEMPT"] == "3"
    assert env["AGENTCRON_AGENT"] == "cmd-agent"
    assert env["AGENTCRON_TRIGGER_ID"] == "tr_cmd"
    assert env["AGENTCRON_SCHEDULED_FOR"] == "2026-03-01T12:30:00+00:00"
    assert json.loads(env["AGENTCRON_PAYLOAD"]) == {"city": "Zürich", "n": 1}
    assert env["MY_SETTING"] == "on"
    assert env["PATH"] == os.environ["PATH"]


def test_a_command_starts_from_a_clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``env`` itself shows what a command sees: the base variables, the allowlist, its own
    env and the run's; never the database URL or the secret key, even when listed."""
    monkeypatch.setenv("AGENTCRON_DATABASE_URL", "postgresql://agentcron:hunter2@db/agentcron")
    monkeypatch.setenv("AGENTCRON_SECRET_KEY", "a-fernet-key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-listed")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-not-listed")
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.setenv("TZ", "Europe/Zurich")
    monkeypatch.delenv("HOME", raising=False)
    # As if written straight into the database: validation refuses AGENTCRON_* names.
    inherit = ["OPENAI_API_KEY", "AGENTCRON_DATABASE_URL", "AGENTCRON_SECRET_KEY", "UNSET_VAR"]
    result = run_command(["env"], payload={"n": 1}, env={"MY_SETTING": "on"},
                         inherit_env=inherit)
    assert result.ok and result.output is not None
    env = dict(line.split("=", 1) for line in result.output.splitlines())
    assert set(env) == {
        "PATH", "LANG", "TZ", "OPENAI_API_KEY", "MY_SETTING", "AGENTCRON_RUN_ID",
        "AGENTCRON_ATTEMPT", "AGENTCRON_AGENT", "AGENTCRON_TRIGGER_ID",
        "AGENTCRON_SCHEDULED_FOR", "AGENTCRON_PAYLOAD",
    }
    assert env["OPENAI_API_KEY"] == "sk-listed"
    assert env["TZ"] == "Europe/Zurich" and env["LANG"] == "C.UTF-8"
    assert "hunter2" not in result.output and "sk-not-listed" not in result.output


def test_payload_is_written_to_stdin() -> None:
    script = "import sys; sys.stdout.write(sys.stdin.read())"
    result = run_command([PY, "-c", script], payload={"items": [1, 2, 3]})
    assert result.output is not None and json.loads(result.output) == {"items": [1, 2, 3]}


def test_big_payload_goes_to_stdin_only_and_an_unread_stdin_does_not_hang() -> None:
    big = {"blob": "y" * 300_000}
    script = "import os, sys; print('AGENTCRON_PAYLOAD' in os.environ, len(sys.stdin.read()))"
    result = run_command([PY, "-c", script], payload=big)
    assert result.output == f"False {len(json.dumps(big))}\n"
    # A child that never reads stdin: the write hits a closed pipe, which is fine.
    assert run_command(["/bin/sh", "-c", "exit 0"], payload=big).ok


def test_ten_megabytes_of_output_is_capped_and_does_not_block_the_child() -> None:
    script = (
        "import sys\n"
        "sys.stderr.buffer.write(b'e' * 10_000_000 + b'last words')\n"
        "sys.stdout.buffer.write(b'x' * 10_000_000)\n"
    )
    result = run_command([PY, "-c", script], output_limit=1000)
    assert result.ok and result.output is not None
    assert result.output.startswith("x" * 1000 + "\n[agentcron:")
    assert "9999000 more bytes not stored" in result.output
    assert len(result.output) < 1100
    failing = run_command([PY, "-c", script + "sys.exit(1)"], output_limit=1000)
    assert failing.error is not None and failing.error.startswith("exit code 1: [agentcron:")
    assert failing.error.endswith("last words") and len(failing.error) < 5000
    for stream in (failing.output, failing.stderr, result.stderr):  # capped like the output
        assert stream is not None and "more bytes not stored" in stream
        assert len(stream) < 1100


def test_json_stdout_with_output_and_usage() -> None:
    doc = {"output": {"summary": "ok"}, "usage": {"input_tokens": 12, "cost_usd": -1, "model": "m"}}
    result = run_command([PY, "-c", f"print({json.dumps(json.dumps(doc))})"])
    assert result.output == '{"summary": "ok"}'
    assert result.usage == Usage(input_tokens=12, model="m")  # the invalid cost is dropped


def test_missing_executable_fails_without_retry() -> None:
    result = run_command(["agentcron-no-such-program", "x"])
    assert not result.ok and not result.retryable
    assert result.error == "command not found: 'agentcron-no-such-program' (not on PATH?)"


def test_missing_cwd_fails_without_retry(tmp_path: Path) -> None:
    result = run_command(["/bin/true"], cwd=str(tmp_path / "nope"))
    assert not result.ok and not result.retryable
    assert result.error is not None and "cwd" in result.error and "nope" in result.error


def test_cwd_is_used(tmp_path: Path) -> None:
    assert run_command(["/bin/pwd"], cwd=str(tmp_path)).output == f"{tmp_path}\n"


def test_background_process_holding_stdout_does_not_hang_the_run() -> None:
    begin = time.monotonic()
    result = run_command(["/bin/sh", "-c", "sleep 60 & echo $!"], kill_grace_s=5)
    assert result.ok and result.output is not None
    assert time.monotonic() - begin < 5  # the stray got SIGTERM and died at once
    assert gone(int(result.output))


def test_a_process_that_left_the_group_does_not_hang_the_run() -> None:
    # Popen returns once the child has called setsid() and exec'd: no race with our cleanup.
    script = (
        "import subprocess; print(subprocess.Popen(['sleep', '60'], start_new_session=True).pid)"
    )
    result = run_command([PY, "-c", script])
    assert result.ok and result.output is not None
    pid = int(result.output)
    try:
        assert not gone(pid)  # deliberately detached: not ours to kill
    finally:
        os.kill(pid, 9)


def run_family(coro: Coroutine[Any, Any, list[int]]) -> list[int]:
    pids = asyncio.run(coro)
    assert len(pids) == 2
    return pids


def test_cancellation_kills_the_whole_process_group() -> None:
    async def main() -> list[int]:
        executor = CommandExecutor()
        task, pids, ctx = await start_family(executor.execute)
        assert not any(gone(p) for p in pids)
        assert sorted(processes_of(ctx.run_id)) == sorted(pids)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert processes_of(ctx.run_id) == []
        return pids

    for pid in run_family(main()):
        assert gone(pid)


def test_sigterm_ignored_escalates_to_sigkill_after_the_grace() -> None:
    async def main() -> list[int]:
        executor = CommandExecutor()
        task, pids, _ = await start_family(executor.execute, {"IGNORE_TERM": "1"}, kill_grace_s=0.3)
        begin = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        elapsed = time.monotonic() - begin
        assert 0.3 <= elapsed < 3
        return pids

    for pid in run_family(main()):
        assert gone(pid)


def test_timeout_with_wait_for_kills_the_process() -> None:
    async def main() -> list[int]:
        executor = CommandExecutor()

        async def with_timeout(run: ClaimedRun, ctx: RunContext) -> ExecutionResult:
            return await asyncio.wait_for(executor.execute(run, ctx), 1)

        task, pids, _ = await start_family(with_timeout)
        with pytest.raises(TimeoutError):
            await task
        return pids

    for pid in run_family(main()):
        assert gone(pid)


def test_cancel_while_the_command_is_starting_still_stops_its_group() -> None:
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"

    async def main() -> str:
        executor = CommandExecutor()
        run = make_run({"argv": [PY, "-c", script]})
        task = asyncio.create_task(executor.execute(run, RunContext(run)))
        await asyncio.sleep(0)  # one loop step: execute is now waiting for the start
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return run.run_id

    assert processes_of(asyncio.run(main())) == []


def test_aclose_kills_commands_still_running() -> None:
    async def main() -> list[int]:
        executor = CommandExecutor()
        task, pids, _ = await start_family(executor.execute)
        await executor.aclose()
        result = await task
        assert result.error == "exit code -9 (killed by SIGKILL)"
        return pids

    for pid in run_family(main()):
        assert gone(pid)
