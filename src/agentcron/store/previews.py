"""Listings read the start of a large column, never the whole value.

A page of 50 runs whose payloads are 256 KiB each would otherwise move 12 MiB from the
database on every refresh of the dashboard; with these columns it moves at most
``PREVIEW_BYTES + 1`` characters of each payload and output, whatever was stored.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Column, Text, cast, func
from sqlalchemy.sql.elements import Label

from agentcron.models import PREVIEW_BYTES, Cut

# One character more than a listing shows: a head longer than PREVIEW_BYTES was cut.
_HEAD_CHARS = PREVIEW_BYTES + 1


def payload_head(column: Column[Any]) -> Label[str]:
    """The start of a JSON column's text, under the column's own name."""
    return func.substr(cast(column, Text), 1, _HEAD_CHARS).label(column.name)


def text_head(column: Column[Any]) -> Label[str]:
    """The start of a text column, under the column's own name."""
    return func.substr(column, 1, _HEAD_CHARS).label(column.name)


def payload_from_head(head: str | None) -> Any:
    """The payload a ``payload_head`` read: the value itself when the head is all of it,
    else a ``Cut`` (also for a head that is not JSON: a listing shows it as text)."""
    if head is None:
        return None
    if len(head) <= PREVIEW_BYTES:
        try:
            return json.loads(head)
        except (ValueError, RecursionError):
            return Cut(head)
    return Cut(head)
