"""The agent the remote workload's worker processes run (``--python bench.remote_agent:noop``)."""

from __future__ import annotations


def noop() -> None:
    """Nothing: what is measured is the protocol's cost per run."""
