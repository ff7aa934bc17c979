"""Run ids are UUIDv7: unique, time-ordered (listing by id is listing by time), and a
forked child does not repeat its parent's ids."""

from __future__ import annotations

import os
import uuid

from agentcron.rules.ids import new_run_id, new_trigger_id


def test_run_ids_are_unique_version_7_and_time_ordered() -> None:
    ids = [new_run_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    parsed = uuid.UUID(ids[0])
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    # the first 48 bits are the millisecond timestamp, so ids sort by creation time
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_a_forked_child_makes_different_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, "".join(new_run_id()[14:] for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 1 << 16).decode()
    os.waitpid(pid, 0)
    mine = "".join(new_run_id()[14:] for _ in range(100))
    assert child and child != mine


def test_trigger_ids_are_short_and_typeable() -> None:
    ids = {new_trigger_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 15 and i.startswith("tr_") and i.islower() for i in ids)
