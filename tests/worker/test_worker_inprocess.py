"""``agentcron.worker.Worker`` against the real app in this process (ASGI, both backends):
runs executed end to end with progress, usage and the retry flag; a revoked run stopped;
drain releasing what could not finish. The real processes are in ``test_worker_procs.py``."""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
from typing import Any

import httpx
import pytest

from agentcron.api.app import create_app
from agentcron.errors import ValidationError
from agentcron.executors import PermanentError, RunContext
from agentcron.models import RunStatus
from agentcron.services import Services
from agentcron.services.access import Access
from agentcron.services.agents import AgentInput
from agentcron.store import Store
from agentcron.worker import Worker, WorkerSettings
from tests.support.helpers import await_until

_names = itertools.count()


def add_remote(store: Store, name: str, **settings: Any) -> None:
    agents = Services(store).agents
    agents.save(agents.build(AgentInput(name=name, kind="remote", config={}, **settings)))


def worker_for(store: Store, agent: str, fn: Any, **settings: Any) -> Worker:
    secret = Access(store).create_token(f"w{next(_names)}", "worker", agents=[agent])[1]
    app = create_app(store, "api-node")
    base = {"heartbeat_interval_s": 0.2, "wait_s": 1.0, "drain_timeout_s": 1.0}
    return Worker(WorkerSettings(url="http://api.test", token=secret, agent=agent,
                                 **{**base, **settings}),
                  function=fn, transport=httpx.ASGITransport(app=app))


def statuses(store: Store, run_ids: list[str]) -> list[RunStatus]:
    return [store.get_run(r).status for r in run_ids]


release_slow = threading.Event()


def busy(ctx: RunContext) -> dict[str, Any]:
    ctx.heartbeat(f"working on {ctx.payload}")
    if ctx.payload == "slow":
        ctx.heartbeat("step 2 of 3")
        release_slow.wait(30)
    ctx.record_usage(input_tokens=10, output_tokens=5, model="m")
    if ctx.payload == "bad":
        raise PermanentError("bad payload")
    if ctx.payload == "flaky" and ctx.attempt == 1:
        raise RuntimeError("try again")
    return {"got": ctx.payload, "attempt": ctx.attempt}


def test_runs_are_executed_remotely_end_to_end(store: Store) -> None:
    add_remote(store, "r", max_attempts=3, retry_backoff="100ms", max_concurrency=4)
    worker = worker_for(store, "r", busy, concurrency=3, worker_id="w-e2e")
    release_slow.clear()
    ids = {p: store.fire_now("r", p) for p in ("a", "b", "bad", "flaky")}
    slow = store.fire_now("r", "slow")

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        # Progress reaches the run while it runs (carried by the next heartbeat).
        await await_until(lambda: store.get_run(slow).progress == "step 2 of 3",
                          message="the slow run's progress")
        release_slow.set()
        await await_until(lambda: all(s in (RunStatus.SUCCEEDED, RunStatus.FAILED) for s in
                                      statuses(store, [*ids.values(), slow])),
                          message="every run finished")
        worker.drain()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    runs = {p: store.get_run(r) for p, r in ids.items()}
    assert runs["a"].status is RunStatus.SUCCEEDED and runs["a"].node_id == "worker:w-e2e"
    assert runs["a"].output is not None and '"got": "a"' in runs["a"].output
    assert runs["a"].input_tokens == 10 and runs["a"].model == "m"
    assert runs["bad"].status is RunStatus.FAILED and runs["bad"].attempt == 1
    assert "bad payload" in (runs["bad"].error or "")
    assert runs["flaky"].status is RunStatus.SUCCEEDED and runs["flaky"].attempt == 2


def test_a_revoked_run_is_stopped_and_nothing_is_written(store: Store) -> None:
    add_remote(store, "r", timeout="1m")
    started = threading.Event()

    def slow(ctx: RunContext) -> str:
        started.set()
        ctx.cancel_event.wait(30)
        return "finished anyway"

    worker = worker_for(store, "r", slow)
    run_id = store.fire_now("r", None)

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await await_until(started.is_set, message="the run started")
        await asyncio.to_thread(Services(store).cancel_run, run_id)
        await await_until(lambda: worker.stats.revoked == 1, message="the run revoked")
        worker.drain()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    run = store.get_run(run_id)
    assert run.status is RunStatus.CANCELLED and run.output is None
    assert worker.stats.completed == 0


def test_drain_releases_what_could_not_finish(store: Store) -> None:
    add_remote(store, "r", timeout="1m", max_concurrency=2)
    started = threading.Semaphore(0)

    def stuck(ctx: RunContext) -> str:
        started.release()
        ctx.cancel_event.wait(30)
        return "late"

    worker = worker_for(store, "r", stuck, concurrency=2, drain_timeout_s=0.5)
    ids = [store.fire_now("r", n) for n in range(2)]

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        for _ in ids:
            await asyncio.to_thread(started.acquire, True, 30)
        worker.drain()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert worker.stats.released == 2
    for run_id in ids:
        run = store.get_run(run_id)
        assert run.status is RunStatus.QUEUED and run.attempt == 0 and run.node_id is None


def worker_running_command(store: Store, agent: str, command: str, **settings: Any
                           ) -> Worker:
    secret = Access(store).create_token(f"w{next(_names)}", "worker", agents=[agent])[1]
    app = create_app(store, "api-node")
    return Worker(WorkerSettings(url="http://api.test", token=secret, agent=agent,
                                 command=command, heartbeat_interval_s=0.2, wait_s=1.0,
                                 drain_timeout_s=1.0, **settings),
                  transport=httpx.ASGITransport(app=app))


def test_a_command_worker_runs_commands_and_stops_a_revoked_one(store: Store) -> None:
    add_remote(store, "c", timeout="1m", max_concurrency=2)
    script = ("import json, sys, time; p = json.load(sys.stdin); "
              "time.sleep(p.get('sleep', 0)); print('echo', p['n'])")
    worker = worker_running_command(store, "c", f"{sys.executable} -c \"{script}\"",
                                    concurrency=2)
    quick = store.fire_now("c", {"n": 1})
    stuck = store.fire_now("c", {"n": 2, "sleep": 60})

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await await_until(lambda: store.get_run(quick).status is RunStatus.SUCCEEDED,
                          message="the quick command succeeded")
        await await_until(lambda: store.get_run(stuck).status is RunStatus.RUNNING,
                          message="the slow command is running")
        await asyncio.to_thread(Services(store).cancel_run, stuck)
        await await_until(lambda: worker.stats.revoked == 1 and not worker.held,
                          message="the slow command stopped")
        worker.drain()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert (store.get_run(quick).output or "").strip() == "echo 1"
    assert store.get_run(stuck).status is RunStatus.CANCELLED


def test_a_worker_whose_function_cannot_be_imported_refuses_to_start() -> None:
    settings = WorkerSettings(url="http://api.test", token="t", agent="r",
                              python="no_such_module_here:fn")
    with pytest.raises(ValidationError) as refused:
        Worker(settings)
    assert refused.value.field == "python" and "no_such_module_here" in str(refused.value)


@pytest.mark.parametrize(("bad", "field"), [
    ({"python": None}, "python"), ({"command": "x"}, "python"), ({"concurrency": 0}, "concurrency"),
    ({"worker_id": "no spaces"}, "worker-id"), ({"url": "ftp://x"}, "url"),
    ({"token": ""}, "token"), ({"heartbeat_interval_s": 0.0}, "heartbeat-interval"),
])
def test_bad_worker_settings_name_the_flag(bad: dict[str, Any], field: str) -> None:
    given: dict[str, Any] = {"url": "http://x", "token": "t", "agent": "r",
                             "python": "agentcron.examples:noop", **bad}
    with pytest.raises(ValidationError) as refused:
        WorkerSettings(**given).validate()
    assert refused.value.field == field


def test_the_worker_command_refuses_bad_flags_without_a_traceback(cli: Any) -> None:
    result = cli("worker", "--url", "http://127.0.0.1:9", "--token", "t", "--agent", "r",
                 "--python", "no_such_module_here:fn")
    assert result.exit_code == 2, result.output
    assert "no_such_module_here" in result.stderr and "Traceback" not in result.stderr
    both = cli("worker", "--url", "http://127.0.0.1:9", "--token", "t", "--agent", "r",
               "--python", "agentcron.examples:noop", "--command", "true")
    assert both.exit_code == 2 and "together" in both.stderr


def test_a_drain_during_a_waiting_claim_loses_nothing_the_claim_hands_out(store: Store
                                                                          ) -> None:
    add_remote(store, "r", timeout="1m")
    worker = worker_for(store, "r", busy, wait_s=5.0, drain_timeout_s=0.5)

    async def main() -> str:
        task = asyncio.create_task(worker.run())
        # The worker's row appears with its first claim or beat: it is waiting by then.
        await await_until(lambda: any(w.id == worker.worker_id
                                      for w in store.list_workers()), message="the worker")
        worker.drain()
        run_id = await asyncio.to_thread(store.fire_now, "r", "late")
        await asyncio.wait_for(task, 30)
        return run_id

    run_id = asyncio.run(main())
    run = store.get_run(run_id)
    # Handed out to the draining worker and released, or never handed out: queued either
    # way, its attempt not consumed.
    assert (run.status, run.attempt, run.node_id) == (RunStatus.QUEUED, 0, None)
    assert worker.stats.completed == 0


def test_a_worker_with_more_slots_than_one_claim_hands_out_claims_in_several(
        store: Store) -> None:
    # Found by the chaos suite: a worker with --concurrency 150 asked for 150 runs in one
    # claim, was refused (at most 100) and stopped.
    add_remote(store, "r", timeout="1m", max_concurrency=1000)
    release = asyncio.Event()

    async def held(ctx: RunContext) -> str:
        await release.wait()
        return "done"

    worker = worker_for(store, "r", held, concurrency=150)
    ids = [store.fire_now("r", n) for n in range(150)]

    async def main() -> None:
        task = asyncio.create_task(worker.run())
        await await_until(lambda: len(worker.held) == 150, 60, "150 runs held at once")
        release.set()
        await await_until(lambda: worker.stats.completed == 150, 60, "every run completed")
        worker.drain()
        await asyncio.wait_for(task, 30)

    asyncio.run(main())
    assert worker.fatal is None and worker.stats.claimed == 150
    assert set(statuses(store, ids)) == {RunStatus.SUCCEEDED}


def test_a_refusal_reads_as_the_server_wrote_it_once() -> None:
    from agentcron.worker.protocol import _message

    said = httpx.Response(422, json={"detail": "max: 150 is out of range (give 1..100)",
                                     "field": "max", "hint": "give 1..100"})
    assert _message(said) == "max: 150 is out of range (give 1..100)"
    bare = httpx.Response(403, json={"detail": "token 't' may not run agent 'x'",
                                     "hint": "create a token for it"})
    assert _message(bare) == "token 't' may not run agent 'x' (create a token for it)"
