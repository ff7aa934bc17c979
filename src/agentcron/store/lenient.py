"""Reading rows whose stored values do not read back.

Nothing a front door writes gets here, but a database can hold anything (a bad migration, a
manual fix, another tool): a time SQLite cannot parse, payload text that is not JSON. Readers
first read rows the normal way; only when that fails do they read the row again with
``raw_columns`` and make what they can of it with ``read_leniently``, so one bad row is
shown, with what could not be read, instead of failing a listing or a show.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, String, Table, type_coerce
from sqlalchemy.engine import Dialect, RowMapping

from agentcron.store.types import UTCDateTime

#: Shown for a time a row must have but whose stored value cannot be read.
UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
_TIMES = UTCDateTime()


def raw_columns(table: Table, instead: Mapping[str, Any] | None = None) -> list[Any]:
    """Every column of ``table``, times and JSON without their result conversion; a column
    named in ``instead`` is replaced by the expression given there."""
    instead = instead or {}
    return [instead[c.name] if c.name in instead
            else type_coerce(c, String).label(c.name)
            if isinstance(c.type, UTCDateTime | JSON) else c for c in table.c]


def read_leniently(raw: RowMapping, table: Table, dialect: Dialect, *,
                   required_times: tuple[str, ...] = (), as_read: tuple[str, ...] = ()
                   ) -> tuple[dict[str, Any], list[str]]:
    """The values of a row read with ``raw_columns``, converted where they read back, and
    what could not be read (``"column: why"``). A time that does not read back becomes None
    (``UNKNOWN_TIME`` for a column in ``required_times``); JSON text that does not parse
    stays the text it is. Columns in ``as_read`` are left alone."""
    values = dict(raw)
    problems: list[str] = []
    for column in table.c:
        name = column.name
        if name in as_read:
            continue
        if isinstance(column.type, UTCDateTime):
            try:
                values[name] = _TIMES.process_result_value(values[name], dialect)
            except Exception as exc:
                problems.append(problem(name, exc))
                values[name] = UNKNOWN_TIME if name in required_times else None
        # PostgreSQL's driver has decoded json already; SQLite hands over the stored text.
        elif (isinstance(column.type, JSON) and dialect.name == "sqlite"
              and isinstance(values[name], str)):
            try:
                values[name] = json.loads(values[name])
            except (ValueError, RecursionError) as exc:
                problems.append(problem(name, exc))
    return values, problems


def problem(name: str, exc: Exception) -> str:
    """``"column: why"``, the first line of the error."""
    lines = str(exc).strip().splitlines()
    return f"{name}: {lines[0] if lines else type(exc).__name__}"
