"""Structured logs: JSON lines when stderr is not a terminal (collectors parse them),
readable key=value lines when it is. Every event can carry node, trigger and run ids.

Logging never raises: a node whose stdout or stderr is a pipe to a reader that died
(``agentcron serve | tee log`` after ``tee`` is gone, a log shipper that crashed) must still
drain on a signal. ``guard_std_streams`` puts ``sys.stdout`` and ``sys.stderr`` behind
``GuardedStream``: the first write that fails with an ``OSError`` (``EPIPE``, ``EBADF``...)
points the stream's file descriptor at ``/dev/null`` and drops the text, and every later
write (by structlog, stdlib logging, ``print``, the interpreter's flush at exit) goes there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import IO, Any

import structlog


class GuardedStream:
    """A text stream whose writes and flushes never raise ``OSError``: once the stream
    cannot be written, its descriptor is pointed at ``/dev/null`` and output is dropped."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except BlockingIOError:  # a full non-blocking pipe: this text is lost, not the stream
            return len(text)
        except (OSError, ValueError):  # ValueError: the stream was closed
            self._silence()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self._stream.flush()
        except BlockingIOError:
            return
        except (OSError, ValueError):
            self._silence()

    def _silence(self) -> None:
        self.broken = True
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError, AttributeError):
            return
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
        except OSError:
            return
        # What the failed write left in the buffer now goes to /dev/null.
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_std_streams() -> None:
    """Put ``sys.stdout`` and ``sys.stderr`` behind ``GuardedStream`` (once)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, GuardedStream):
            setattr(sys, name, GuardedStream(stream))


def say(text: str, *, err: bool = False) -> None:
    """Print a line for a person on stdout (or stderr); never raises on a dead pipe."""
    stream = GuardedStream(sys.stderr if err else sys.stdout)
    stream.write(text + "\n")
    stream.flush()


def configure_logging(level: str | None = None, json_logs: bool | None = None) -> None:
    level_name = (level or os.environ.get("AGENTCRON_LOG_LEVEL", "info")).upper()
    numeric = getattr(logging, level_name, logging.INFO)
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_logs
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    sink = sys.stderr if isinstance(sys.stderr, GuardedStream) else GuardedStream(sys.stderr)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sink),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Libraries that use stdlib logging (uvicorn, alembic) go to stderr at warning+.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sink,
                        format="%(levelname)s %(name)s: %(message)s")
