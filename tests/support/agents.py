"""Agents the engine and multi-process tests run (importable as tests.support.agents)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from agentcron.executors import PermanentError, RunContext


def record(ctx: RunContext) -> dict[str, Any]:
    """Append (run, attempt, scheduled time) to the file named in AGENTCRON_TEST_LEDGER, so
    a test can count executions independently of the database."""
    ledger = os.environ.get("AGENTCRON_TEST_LEDGER")
    if ledger:
        with Path(ledger).open("a") as f:
            f.write(f"{ctx.run_id} {ctx.attempt} {ctx.trigger_id} "
                    f"{ctx.scheduled_for.isoformat()} {os.getpid()}\n")
    return {"run_id": ctx.run_id}


def mark_started(ctx: RunContext) -> None:
    """Append the run id to the ledger's ``.started`` file as the attempt begins, so a test
    can wait for a run to be in flight on its node. A run shown ``running`` is only claimed:
    a node that drains before its executor has taken the run releases it, not drains it."""
    ledger = os.environ.get("AGENTCRON_TEST_LEDGER")
    if ledger:
        with Path(f"{ledger}.started").open("a") as f:
            f.write(f"{ctx.run_id} {ctx.attempt} {os.getpid()}\n")


def sleepy(ctx: RunContext) -> str:
    """Sleeps payload["seconds"] cooperatively (stops early when cancelled)."""
    seconds = float((ctx.payload or {}).get("seconds", 1.0))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.cancelled:
            return "cancelled early"
        time.sleep(0.01)
    record(ctx)
    return f"slept {seconds}"


async def async_sleepy(ctx: RunContext) -> str:
    mark_started(ctx)
    await asyncio.sleep(float((ctx.payload or {}).get("seconds", 1.0)))
    record(ctx)
    return "done"


async def async_sleepy_whoami(ctx: RunContext) -> str:
    """Like async_sleepy, and says which process ran it (the output names the pid), so a
    test can tell whose completion the run row holds."""
    await asyncio.sleep(float((ctx.payload or {}).get("seconds", 1.0)))
    record(ctx)
    return f"done by pid {os.getpid()}"


def flaky(ctx: RunContext) -> str:
    """Fails on the first attempt, succeeds on the next."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt always fails")
    return f"ok on attempt {ctx.attempt}"


def broken(ctx: RunContext) -> None:
    raise PermanentError("this agent never works")


def usage(ctx: RunContext) -> str:
    ctx.record_usage(input_tokens=100, output_tokens=20, cost_usd=0.0012, model="test-model")
    return "used tokens"


async def start_lag(ctx: RunContext) -> dict[str, float]:
    """Seconds from the scheduled time to this agent's start, on this host's clock (the
    same host as the database in the tests)."""
    return {"lag_s": time.time() - ctx.scheduled_for.timestamp()}


def stepped(ctx: RunContext) -> str:
    """Reports ``step N of M`` for each gate file in ``payload["gates"]``, moving past a
    step only once its file exists (the test creates it when it has seen the step), so
    a follower's view of the progress can be checked step by step."""
    gates = [Path(g) for g in (ctx.payload or {}).get("gates", [])]
    for number, gate in enumerate(gates, start=1):
        ctx.heartbeat(f"step {number} of {len(gates)}")
        while not gate.exists():  # a sync agent, in a worker thread: waits for the test
            if ctx.cancel_event.wait(0.05):
                raise RuntimeError("cancelled")
    return f"all {len(gates)} steps done"
