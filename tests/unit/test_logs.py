"""The log sink never raises: a stream whose reader died is silenced, not fatal."""

from __future__ import annotations

import io
import os

from agentcron.logs import GuardedStream


def test_a_pipe_whose_reader_died_is_silenced_not_raised() -> None:
    read_end, write_end = os.pipe()
    raw = os.fdopen(write_end, "w", buffering=1)
    stream = GuardedStream(raw)
    try:
        assert stream.write("seen\n") == 5
        assert os.read(read_end, 100) == b"seen\n"
        os.close(read_end)
        stream.write("x" * 100_000 + "\n")  # EPIPE: dropped, no BrokenPipeError
        stream.flush()
        assert stream.broken
        assert stream.write("later\n") == 6
        raw.write("the fd now writes to /dev/null\n")  # the stream itself works again
        raw.flush()
    finally:
        raw.close()


def test_a_closed_stream_is_silenced() -> None:
    raw = io.StringIO()
    stream = GuardedStream(raw)
    raw.close()
    assert stream.write("text") == 4 and stream.broken
    stream.flush()
    assert not stream.isatty()
