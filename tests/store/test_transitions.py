"""The run state transitions have one owner: ``store/transitions.py`` builds every write to
the ``runs`` table (and its table of transitions names them all), so one file shows every
way a run's status can change."""

from __future__ import annotations

import re
from pathlib import Path

import agentcron.store
from agentcron.store import transitions

STORE = Path(agentcron.store.__file__).parent
# A write to runs or run_events, however SQLAlchemy spells it.
WRITES = re.compile(
    r"\b(?:insert|update|delete|dialect_insert)\((?:conn, )?(?:runs|run_events)\)"
    r"|\b(?:runs|run_events)\.(?:insert|update|delete)\(")


def test_only_transitions_and_events_write_runs() -> None:
    writers = {path.name for path in STORE.rglob("*.py")
               if "migrations" not in path.parts and WRITES.search(path.read_text())}
    assert writers == {"transitions.py", "events.py"}


def test_the_module_table_lists_every_transition() -> None:
    doc = transitions.__doc__ or ""
    for name in ("insert", "skip", "claim", "finish", "retry", "lose", "time out", "release",
                 "cancel", "replace", "prune"):
        assert re.search(rf"^{name}\s", doc, re.MULTILINE), name
