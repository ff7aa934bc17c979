"""The SQLite database holds agent configs, webhook secrets and run outputs: it and its
-wal and -shm files are created readable by their owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agentcron.models import AgentKind, AgentSpec
from agentcron.store import Store


def test_a_new_sqlite_file_and_its_wal_and_shm_are_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which would make files 0644
    try:
        path = tmp_path / "agentcron.db"
        store = Store(f"sqlite:///{path}")
        try:
            store.upgrade()
            store.upsert_agent(AgentSpec(name="a", kind=AgentKind.PYTHON,
                                         config={"target": "m:f"}))
            files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
            assert all(f.exists() for f in files)  # WAL mode, connection still open
            for f in files:
                assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        finally:
            store.close()
    finally:
        os.umask(old)


def test_an_existing_file_keeps_the_mode_its_owner_chose(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch()
    path.chmod(0o640)
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
