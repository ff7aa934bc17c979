"""Where Python agents' callables come from: registered in-process, or imported by path.

A python agent's ``config["target"]`` is first looked up in the ``AgentRegistry`` (filled by
the ``@agent`` decorator of the Python API), then imported as ``"package.module:function"``
(or ``"module:Class.method"``). Imports are cached per process; a failed import is not cached,
so a node that gets the missing code later (a rolling deploy) resolves it on the next run.

Where targets are imported from: the usual ``sys.path`` plus the folders a node adds with
``add_import_paths`` (the folder of its agents file and its working directory, like
``python -m`` and uvicorn's ``--app-dir``), so ``python = "mytasks:summarize"`` finds the
``mytasks.py`` next to the agents file without ``PYTHONPATH``.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from agentcron.errors import ValidationError

IMPORT_HINT = ("give module:function importable on every node: put the module next to the "
               "agents file or in the folder the node starts in, or install it or add its "
               "folder to PYTHONPATH")

_cache: dict[str, Callable[..., Any]] = {}
_cache_lock = threading.Lock()


class AgentRegistry:
    """In-process map from a name to the callable that implements a Python agent. Thread-safe."""

    def __init__(self) -> None:
        self._fns: dict[str, Callable[..., Any]] = {}
        self._lock = threading.Lock()

    def register(self, name: str, fn: Callable[..., Any]) -> None:
        """Map ``name`` to ``fn``.

        Registering the same function again is a no-op, and so is re-registering a function
        with the same module and qualified name (a module reload). A different function under
        a taken name raises ``ValidationError``: two agents must not share a name silently.
        """
        if not name or not isinstance(name, str):
            raise ValidationError("name", f"invalid agent name {name!r}", "give a non-empty string")
        if not callable(fn):
            raise ValidationError("python", f"{fn!r} is not callable", "register a function")
        with self._lock:
            old = self._fns.get(name)
            if old is not None and old is not fn and _qualname(old) != _qualname(fn):
                raise ValidationError(
                    "name",
                    f"agent {name!r} is already registered to {_qualname(old)}",
                    "give each agent a unique name",
                )
            self._fns[name] = fn

    def get(self, name: str) -> Callable[..., Any] | None:
        with self._lock:
            return self._fns.get(name)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._fns)

    def lookup(self, target: str) -> Callable[..., Any] | None:
        """The registered callable for ``target``, else an already imported one; no import."""
        fn = self.get(target)
        return fn if fn is not None else cached_target(target)

    def resolve_target(self, target: str) -> Callable[..., Any]:
        """Import ``target``, ignoring registered names (the module-level ``resolve_target``)."""
        return resolve_target(target)


def add_import_paths(*folders: str | os.PathLike[str]) -> None:
    """Put ``folders`` (made absolute) first on ``sys.path``, each once, keeping their order."""
    for folder in reversed(folders):
        path = os.path.abspath(os.fspath(folder))
        if path not in sys.path:
            sys.path.insert(0, path)
    importlib.invalidate_caches()  # a module written since the last import is found


def cached_target(target: str) -> Callable[..., Any] | None:
    with _cache_lock:
        return _cache.get(target)


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``"package.module:function"`` / ``"module:Class.method"`` and return the callable.

    Raises ``ValidationError("python", "cannot import '<target>': <reason>", hint)``. Importing
    runs the module's top-level code, which may be slow: call this off the event loop.
    """
    fn = cached_target(target)
    if fn is not None:
        return fn
    module_name, sep, attr_path = target.partition(":")
    if not sep or not module_name or not attr_path:
        raise _cannot(target, "expected 'module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any error while running the module's code means "cannot import"
        raise _cannot(target, f"{type(exc).__name__}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise _cannot(target, f"{part!r} not found in {module_name}") from None
    if not callable(obj):
        raise _cannot(target, f"{type(obj).__name__} object is not callable")
    resolved: Callable[..., Any] = obj
    with _cache_lock:
        _cache[target] = resolved
    return resolved


def _cannot(target: str, reason: str) -> ValidationError:
    return ValidationError("python", f"cannot import '{target}': {reason}", IMPORT_HINT)


def _qualname(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}:{getattr(fn, '__qualname__', repr(fn))}"
