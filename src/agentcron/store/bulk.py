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
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, any_, bindparam, column, func, text, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import BindParameter, ColumnElement
from sqlalchemy.sql.selectable import FromClause
from sqlalchemy.types import TypeEngine

from agentcron.store.types import UTCDateTime


class BulkSource:
    """A FROM-able set of rows with typed columns, addressed as ``source[name]``."""

    def __init__(self, from_clause: FromClause, columns: Mapping[str, ColumnElement[Any]],
                 arrays: Mapping[str, BindParameter[Any]] | None = None) -> None:
        self.from_clause = from_clause
        self._columns = columns
        self._arrays = arrays or {}

    def __getitem__(self, name: str) -> ColumnElement[Any]:
        return self._columns[name]

    def key_in(self, column: ColumnElement[Any], key: str = "id") -> ColumnElement[bool]:
        """``column`` is one of the batch's ``key`` values. On PostgreSQL this is
        ``column = ANY`` of the array already bound for that key (no second parameter), so
        a ``write_by_key`` statement reaches its table through the key's index for exactly
        the batch's rows; on SQLite it is true (its planner looks each row up by key)."""
        if key in self._arrays:
            return column == any_(self._arrays[key])
        return true()


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
        return BulkSource(table, {key: table.c[key] for key in types},
                          {key: array for key, array in zip(types, arrays, strict=True)})

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


def one_of(conn: Connection, column: ColumnElement[Any], values: Sequence[Any]
           ) -> ColumnElement[bool]:
    """``column IN values`` for a batch-sized list. On PostgreSQL ``= ANY`` of one array
    parameter: the SQL text is the same for any number of values, so it is compiled and
    parsed once, where an ``IN`` list of 1,000 is a new statement of 1,000 parameters
    (rendered by SQLAlchemy, split by psycopg and planned by PostgreSQL every time)."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(list(values))


def write_by_key(conn: Connection, stmt: Executable) -> Sequence[Row[Any]]:
    """Execute a batched write that joins a bulk source to its table by primary key, and
    return its rows. The statement restricts the table with ``BulkSource.key_in``.

    A batched write of runs (``UPDATE runs ... FROM unnest(...) AS v WHERE runs.id = v.id
    AND runs.node_id = :node ...``) is fast only if PostgreSQL reaches each row of the
    batch by ``id`` and joins the two sides by hashing or merging. Its statistics never
    know a node's own id (a new one every start), so once ``runs`` has been analysed the
    planner estimates that one run matches and picks a nested loop that rescans the batch
    for each run it finds: 1,000 outcomes made a million comparisons and took a second
    instead of 50 ms (measured; pricing out sequential scans alone, as before, only moved
    that loop onto a full index scan). So for this one statement sequential scans and
    nested loops are priced out, and the ``= ANY`` of the batch's keys bounds the table's
    side to the batch: whatever the statistics, the cost grows with the batch, not with
    the table or the square of the batch. The settings are read and restored around the
    statement (``set_config`` local to the transaction), so the transaction's other
    statements plan as usual. Two statements more on PostgreSQL, none on SQLite."""
    with joined_by_key(conn):
        return conn.execute(stmt).all()


@contextmanager
def joined_by_key(conn: Connection) -> Iterator[None]:
    """The planner settings of ``write_by_key`` for the statements run inside (restored
    after them; a statement that fails aborts the transaction, which drops them too)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    before = conn.execute(_PIN_KEY_JOIN).one()
    yield
    conn.execute(_RESTORE_PLANNER, {"nestloop": before.nestloop, "seqscan": before.seqscan})


_PIN_KEY_JOIN = text(
    "SELECT current_setting('enable_nestloop') AS nestloop, "
    "current_setting('enable_seqscan') AS seqscan, "
    "set_config('enable_nestloop', 'off', true), set_config('enable_seqscan', 'off', true)")
_RESTORE_PLANNER = text(
    "SELECT set_config('enable_nestloop', :nestloop, true), "
    "set_config('enable_seqscan', :seqscan, true)")
