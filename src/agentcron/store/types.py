"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

# Fixed width, so that SQLite compares times correctly as strings.
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on the way in and out.

    PostgreSQL stores ``timestamptz``. SQLite has no time type, so the value is stored as
    fixed-width UTC text, which sorts and compares like the instant it names. Naive
    datetimes are refused: a naive time is a bug waiting for a time zone change.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(26))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; use an aware UTC time")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.strftime(_SQLITE_FORMAT)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            if len(value) == 26 and value[10] == " ":
                # What this type writes: fromisoformat reads it ~20x faster than strptime
                # (a sync reads 10,000 triggers); anything else takes the strict path.
                with contextlib.suppress(ValueError):
                    parsed = datetime.fromisoformat(value)
                    if parsed.tzinfo is None:
                        return parsed.replace(tzinfo=UTC)
            return datetime.strptime(value, _SQLITE_FORMAT).replace(tzinfo=UTC)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]
