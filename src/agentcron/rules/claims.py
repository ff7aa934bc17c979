"""The worker protocol's claim limit: the server refuses a claim for more, and a worker
whose ``concurrency`` is larger claims in several calls."""

from __future__ import annotations

MAX_CLAIM = 100
"""The most runs one claim hands out."""
