"""The agent every system runs: a no-op that records, inside the agent, when it started
and which (job, scheduled time) it ran for. Records are three floats in one ``array`` per
fire, so 1M fires cost 24 MB rather than a list of tuples ten times that size.

``record`` is called from the event loop (async agents) or from pool threads (APScheduler);
the lock keeps each triple together.
"""

from __future__ import annotations

import os
import threading
import time
from array import array
from collections.abc import Iterator


class Probe:
    def __init__(self) -> None:
        self._data = array("d")
        self._lock = threading.Lock()

    def record(self, job: int, scheduled_ts: float) -> None:
        started = time.time()
        with self._lock:
            self._data.extend((float(job), scheduled_ts, started))

    def __len__(self) -> int:
        return len(self._data) // 3

    def records(self) -> Iterator[tuple[int, float, float]]:
        data = self._data
        for i in range(0, len(data) - 2, 3):
            yield int(data[i]), data[i + 1], data[i + 2]


PROBE = Probe()
"""The process-wide probe the runners read after a step."""


# -- agents for `agentcron serve` processes (replicas): one line per fire, appended to a file
# with O_APPEND, so a line written before a kill -9 is still there after it.

_fd: int | None = None
_fd_lock = threading.Lock()


def _file() -> int:
    global _fd
    if _fd is None:
        with _fd_lock:
            if _fd is None:
                directory = os.environ.get("BENCH_PROBE_DIR", "/tmp")
                path = os.path.join(directory, f"probe-{os.getpid()}.log")
                _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return _fd


async def file_agent(ctx: object) -> None:
    """Python agent target ``bench.probe:file_agent``: ``trigger_id scheduled started``."""
    started = time.time()
    trigger_id = getattr(ctx, "trigger_id", None)
    scheduled = getattr(ctx, "scheduled_for", None)
    ts = scheduled.timestamp() if scheduled is not None else float("nan")
    os.write(_file(), f"{trigger_id} {ts:.6f} {started:.6f}\n".encode())


IO_WAIT_S = float(os.environ.get("BENCH_IO_WAIT_S", "0.5"))


async def io_file_agent(ctx: object) -> None:
    """Python agent target ``bench.probe:io_file_agent``: records its start like
    ``file_agent``, then waits ``BENCH_IO_WAIT_S`` (0.5 s) without using the CPU, as an agent
    waiting on a model or a remote service does."""
    import asyncio

    await file_agent(ctx)
    await asyncio.sleep(IO_WAIT_S)
