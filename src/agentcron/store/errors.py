"""What a database error means, for the layers above the store (which import no driver).

The store raises SQLAlchemy's exceptions as they come; these functions classify them so the
engine can back off, the CLI can print one line, and the API can answer 422, without any of
them knowing SQLAlchemy. Database URLs are shown only through ``hide_password``.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from agentcron.errors import DatabaseUnavailableError


def is_connection_error(exc: BaseException) -> bool:
    """The database could not be reached or the connection broke: worth retrying later."""
    if isinstance(exc, OperationalError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def is_refused_value(exc: BaseException) -> bool:
    """The database refused a value that validation let through (a NUL in text, say)."""
    return isinstance(exc, DataError)


def hide_password(url: str) -> str:
    """``url`` with its password masked; never raises (an unparsable URL shows nothing)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL never reaches the database; show nothing of it
        return "<the configured database URL>"


def database_error(exc: BaseException, url: str) -> DatabaseUnavailableError | None:
    """``exc`` as the error every front door shows for a database it cannot use
    (``cannot use the database URL: reason``), or None when it is not such an error."""
    reason = unusable_database(exc, url)
    if reason is None:
        return None
    return DatabaseUnavailableError(f"cannot use the database {hide_password(url)}: {reason}")


def unusable_database(exc: BaseException, url: str) -> str | None:
    """The one-line reason a database cannot be reached or used (the driver's first line,
    with the URL's password masked), or None when ``exc`` is not such an error."""
    if not isinstance(exc, OperationalError):
        return None
    text = str(exc.orig) if exc.orig is not None else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    reason = lines[0] if lines else "unknown error"
    try:
        password = make_url(url).password
    except Exception:
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    return reason
