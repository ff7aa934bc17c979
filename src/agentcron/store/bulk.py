"""One statement for many rows: the shape every batched store operation uses.

``bulk_source`` turns a list of Python rows into a table expression the statement can join
against, so that updating 1,000 runs or triggers is one SQL statement, not 1,000:

- PostgreSQL: ``unnest`` over one typed array parameter per column. The SQL text is the
  same for 1 row or 4,000, so SQLAlchemy compiles it once and PostgreSQL can prepare it;
  a ``VALUES`` list would be a new statement (and a costly compile) for every batch size.
- SQLite: ``json_each`` over one JSON parameter, because SQLite cannot name the columns of a
  ``VALUES`` list in a ``FROM`` clause. Times are encoded in the same fixed-width text that
  the ``UTCDateTime`` type stores, so comparisons and assignments keep working.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, bindparam, column, func, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause
from sqlalchemy.types import TypeEngine

from agentcron.store.types import UTCDateTime


class BulkSource:
    """A FROM-able set of rows with typed columns, addressed as ``source[name]``."""

    def __init__(self, from_clause: FromClause, columns: Mapping[str, ColumnElement[Any]]) -> None:
        self.from_clause = from_clause
        self._columns = columns

    def __getitem__(self, name: str) -> ColumnElement[Any]:
        return self._columns[name]


def bulk_source(
    conn: Connection,
    types: Mapping[str, TypeEngine[Any]],
    rows: Sequence[Mapping[str, Any]],
    name: str = "v",
) -> BulkSource:
    """Rows as a table expression. Every row must have every key of ``types``."""
    if conn.dialect.name == "postgresql":
        arrays = [
            bindparam(f"{name}_{key}", [row[key] for row in rows], type_=ARRAY(type_))
            for key, type_ in types.items()
        ]
        table = (
            func.unnest(*arrays)
            .table_valued(*(column(key, type_) for key, type_ in types.items()))
            .render_derived(name=name)
        )
        return BulkSource(table, {key: table.c[key] for key in types})

    encoded = json.dumps([{key: _encode(row[key], types[key]) for key in types} for row in rows])
    table = func.json_each(encoded).table_valued("value").alias(name)
    columns = {
        key: func.json_extract(table.c.value, f"$.{key}", type_=type_)
        for key, type_ in types.items()
    }
    return BulkSource(table, columns)


def _encode(value: Any, type_: TypeEngine[Any]) -> Any:
    if isinstance(type_, JSON):
        # json_extract unwraps JSON strings, so a JSON column travels as its own text.
        return json.dumps(value)
    if isinstance(value, datetime):
        return UTCDateTime().process_bind_param(value, _SQLITE)
    if isinstance(value, bool):
        return int(value)
    return value


class _SqliteDialectName:
    name = "sqlite"


_SQLITE: Any = _SqliteDialectName()


def by_primary_key(conn: Connection) -> None:
    """Make the rest of this transaction join a bulk source to its table by primary key.

    A batched write of runs (``UPDATE runs ... FROM unnest(...) AS v WHERE runs.id = v.id
    AND runs.node_id = :node ...``) is fast only if PostgreSQL looks each row of the batch
    up by ``id``. Its statistics never know a node's own id (a new one every start), so once
    ``runs`` has been analysed the planner estimates that one run matches, scans the whole
    table and joins the batch to it in a nested loop: every outcome write of a busy node
    then rescans the batch for each of its running runs, and the database, not the work,
    becomes the limit (measured: a finish of 1,000 outcomes took 1 s instead of a few ms,
    and a node offered 5,000 fires/s fell behind). Sequential scans are priced out for this
    transaction only (``SET LOCAL``), so the primary key (or another index) is used. One
    statement on PostgreSQL, nothing on SQLite (whose planner walks the batch and looks
    each row up by key)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL enable_seqscan = off"))
