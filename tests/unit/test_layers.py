"""The package list is the layer list: these tests fail when an import points the wrong way.

Read from the source with ``ast`` (nothing is imported), so a lazy import inside a function
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentcron

PACKAGE = Path(agentcron.__file__).resolve().parent

# What each top-level part of the package may import (besides itself). Front doors sit on
# top; ``server`` is the serve process that both the CLI's ``serve`` and the Python API start,
# so it is the one front door others may name; no other front door imports another.
BASE = {"errors", "models", "logs"}
PURE = BASE | {"rules", "schedule"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "models": {"errors"},
    "logs": set(),
    "rules": BASE,
    "schedule": BASE,
    "executors": PURE,
    "examples": PURE | {"executors"},
    "store": PURE,
    "engine": PURE | {"executors", "store", "__init__"},
    "services": PURE | {"executors", "store", "engine"},
    "api": PURE | {"services", "engine", "store", "executors", "__init__"},
    "server": PURE | {"services", "engine", "store", "executors", "api", "mcp_server"},
    # ``agentcron mcp`` starts the MCP front door's stdio process, as ``serve`` starts the
    # server and ``worker`` the worker: the CLI names it.
    "cli": PURE | {"services", "engine", "store", "server", "worker", "mcp_server"},
    # The MCP front door: tools over the services (stdio for ``agentcron mcp``, Streamable
    # HTTP mounted by ``server``).
    "mcp_server": PURE | {"services", "store", "__init__"},
    # The remote worker: speaks HTTP to the API, runs agents with the executors; it never
    # opens the database.
    "worker": PURE | {"executors", "__init__"},
    "python_api": PURE | {"services", "engine", "store", "executors", "server"},
    "__main__": {"cli"},
    "__init__": {"executors", "python_api"},
}
FRONT_DOORS = {"api", "cli", "mcp_server", "python_api", "server", "worker"}
# Front doors that are processes the CLI starts (``serve``, ``worker``, ``mcp``): the CLI
# names them (and ``server`` serves the MCP front door's HTTP endpoint).
PROCESSES = {"mcp_server", "server", "worker"}


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    return rel.parts[0]


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            # ``from agentcron import executors`` names a part through the imported name.
            if node.module == "agentcron":
                for alias in node.names:
                    yield node.lineno, f"agentcron.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def _target(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "agentcron":
        return None
    if len(parts) == 1:
        return "__init__"
    return "__init__" if parts[1] == "__version__" else parts[1]


def _violations() -> list[str]:
    found = []
    for path in _sources():
        part = _part(path)
        for line, module in _imports(path):
            target = _target(module)
            if target is None or target == part:
                continue
            if target not in ALLOWED.get(part, set()):
                found.append(f"{path.relative_to(PACKAGE)}:{line} ({part}) imports {module}")
    return found


def test_every_import_points_down_the_layers() -> None:
    assert _violations() == []


def test_every_part_of_the_package_has_a_place_in_the_layers() -> None:
    parts = {_part(p) for p in _sources()}
    assert parts <= set(ALLOWED), f"give {sorted(parts - set(ALLOWED))} a layer in ALLOWED"


@pytest.mark.parametrize("door", sorted(FRONT_DOORS - PROCESSES))
def test_no_front_door_imports_another_except_the_processes(door: str) -> None:
    others = FRONT_DOORS - {door} - PROCESSES
    assert not ALLOWED[door] & others


def test_sql_lives_only_in_the_store() -> None:
    outside = []
    for path in _sources():
        if _part(path) == "store":
            continue
        for line, module in _imports(path):
            if module.split(".")[0] in {"sqlalchemy", "psycopg", "alembic"}:
                outside.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert outside == []


def test_the_check_sees_a_wrong_way_import(tmp_path: Path) -> None:
    """The rules above would pass vacuously if ``_imports`` saw nothing: prove it sees one."""
    source = tmp_path / "mod.py"
    source.write_text("from agentcron.api.app import create_app\nimport agentcron.store\n")
    assert [m for _, m in _imports(source)] == ["agentcron.api.app", "agentcron.store"]
    assert _target("agentcron.api.app") == "api"
    assert "api" not in ALLOWED["store"]


def test_the_command_line_starts_without_the_database_or_the_web_framework() -> None:
    """``agentcron --help`` and a typo's usage error must answer at once: the CLI imports
    the store, SQLAlchemy and FastAPI only inside the commands that use them."""
    heavy = ("sqlalchemy", "fastapi", "uvicorn", "agentcron.store", "agentcron.api")
    code = ("import sys, agentcron.cli; "
            f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.strip()
    assert loaded == "[]"
