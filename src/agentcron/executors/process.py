"""Child-process plumbing for the command executor: capped output buffers, process groups.

Every command runs as the leader of its own process group (``start_new_session=True``), so the
group id is the leader's pid and one signal reaches everything it started, except processes
that deliberately left the group (``setsid``).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from agentcron.executors.base import truncation_marker

POLL_S = 0.05
"""How often ``stop_group`` checks whether the group is gone while it waits for the grace."""

KILL_WAIT_S = 2.0
"""After SIGKILL, how long ``stop_group`` waits for the group to be gone (a process stuck in
uninterruptible I/O can outlive it)."""

_PROC = Path("/proc")


class CappedBuffer:
    """Keeps the first ``limit`` bytes and the last ``tail_limit`` bytes of a stream.

    The reader keeps draining past the cap so the child never blocks on a full pipe; only
    ``total`` grows.
    """

    def __init__(self, limit: int, tail_limit: int) -> None:
        self.limit = limit
        self.tail_limit = tail_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
        self.tail += chunk[-self.tail_limit :] if self.tail_limit else b""
        if len(self.tail) > self.tail_limit:
            del self.tail[: len(self.tail) - self.tail_limit]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head)

    def text(self) -> str:
        """The head, decoded (UTF-8, invalid bytes replaced), with a marker if cut."""
        text = bytes(self.head).decode("utf-8", errors="replace")
        if self.truncated:
            text += truncation_marker(self.total - len(self.head), "bytes")
        return text

    def tail_text(self) -> str:
        """The last ``tail_limit`` bytes, decoded, marked when earlier bytes are missing."""
        text = bytes(self.tail).decode("utf-8", errors="replace")
        if self.total > len(self.tail):
            text = f"[agentcron: {self.total - len(self.tail)} earlier bytes not stored]\n" + text
        return text


class ChildProtocol(asyncio.SubprocessProtocol):
    """Collects a child's stdout/stderr into capped buffers and says when it exited.

    Data is consumed as it arrives, so the child never blocks on a full pipe. ``exited`` is
    resolved when the child exits, even while a descendant still holds its pipes open (asyncio's
    ``Process.wait()`` would wait for the pipes too, and hang on a background process).
    Await the futures through ``asyncio.shield``: cancelling an awaiting task cancels the
    future it awaits, and then nobody could tell when the child exits.
    """

    def __init__(self, stdout: CappedBuffer, stderr: CappedBuffer) -> None:
        loop = asyncio.get_running_loop()
        self.stdout = stdout
        self.stderr = stderr
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        (self.stdout if fd == 1 else self.stderr).feed(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)  # fd 0 (stdin) closing, even on EPIPE, is not our concern
        if not self._open and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the group; False if no process of the group is left."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed user: it is not ours to signal any more
        return True
    return True


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in the group.

    ``killpg(pgid, 0)`` also succeeds for zombies, and orphaned zombies linger for good where
    PID 1 does not reap (many containers); on Linux /proc tells them apart.
    """
    if not signal_group(pgid, 0):  # signal 0: existence check only
        return False
    if not _PROC.is_dir():
        return True
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


async def stop_group(pgid: int, exited: asyncio.Future[None], grace_s: float) -> None:
    """Stop the process group ``pgid`` whose leader resolves ``exited`` once reaped.

    SIGTERM to the group; then wait until the leader has exited and no live process is left in
    the group, at most ``grace_s``; then SIGKILL to the group (whatever survived) and wait, at
    most ``KILL_WAIT_S``, until it is really gone: a signal is delivered asynchronously, so
    a killed process may still run for a moment. Returns once the leader is reaped.
    """
    if signal_group(pgid, signal.SIGTERM):
        await _wait_gone(pgid, exited, grace_s)
        if signal_group(pgid, signal.SIGKILL):
            await _wait_gone(pgid, exited, KILL_WAIT_S)
    await asyncio.shield(exited)  # a cancelled caller must not cancel the shared future


async def _wait_gone(pgid: int, exited: asyncio.Future[None], timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if exited.done() and not group_alive(pgid):
            return
        await asyncio.sleep(POLL_S)


def kill_group_now(pgid: int) -> None:
    """SIGKILL the group without waiting: the fallback when there is no time left to be nice."""
    signal_group(pgid, signal.SIGKILL)
