"""What every command shares: the database the root ``--db`` option names, opening it, and
the one place errors become messages and exit codes.

Exit codes: 0 success; 1 a failure the input cannot fix by itself (not found, conflict,
database unreachable or not migrated); 2 bad input (``ValidationError``, or a usage error
from Typer itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperGroup

from agentcron.errors import (
    AgentcronError,
    ConflictError,
    DatabaseNotMigratedError,
    NotFoundError,
    ValidationError,
)

if TYPE_CHECKING:
    from agentcron.services import Services
    from agentcron.store import Store

EXIT_FAILURE = 1
EXIT_USAGE = 2


@dataclass
class CliState:
    """Per-invocation state, kept on the root click context (``ctx.obj``)."""

    db_url: str
    _store: Store | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState), "the root callback sets the CLI state"
    return obj


def open_store(ctx: typer.Context, *, prepare: bool = True) -> Store:
    """The store named by ``--db``, opened once per invocation and closed at its end.

    With ``prepare``: a SQLite database without an agentcron schema (for instance a file
    that does not exist yet) is created and migrated on the spot, so the embedded default
    just works; any other database must already be at this version's schema, else
    ``DatabaseNotMigratedError`` ("run `agentcron db upgrade` first").
    """
    st = state(ctx)
    if st._store is None:
        from agentcron.services.opening import open_store as open_named

        st._store = open_named(st.db_url, prepare=prepare)
    return st._store


def services(ctx: typer.Context, *, prepare: bool = True) -> Services:
    """The services over the store named by ``--db`` (see ``open_store`` for ``prepare``)."""
    from agentcron.services import Services

    return Services(open_store(ctx, prepare=prepare))


# -- errors ---------------------------------------------------------------------------------


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``error: <message>`` on stderr (each line of it: an input with several
    problems has one per line) and exit with ``code``."""
    typer.echo("\n".join(f"error: {line}" for line in message.splitlines() or [""]), err=True)
    raise typer.Exit(code)


def hide_password(url: str) -> str:
    from agentcron.store.errors import hide_password as masked  # lazy: --help stays quick

    return masked(url)


def _database_error(exc: Exception, url: str) -> str | None:
    """The one-line message for a database that cannot be reached or used, else None."""
    from agentcron.store.errors import database_error

    error = database_error(exc, url)
    return None if error is None else str(error)


class AgentcronGroup(TyperGroup):
    """The root command group. Every subcommand runs inside its ``invoke``, so this is the
    single place where agentcron's errors become a one-line message and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            fail(str(exc), EXIT_USAGE)
        except (NotFoundError, ConflictError, DatabaseNotMigratedError) as exc:
            fail(str(exc))
        except AgentcronError as exc:
            fail(str(exc))
        except Exception as exc:  # usage errors and bugs pass through untouched
            url = ctx.obj.db_url if isinstance(ctx.obj, CliState) else "(unknown)"
            message = _database_error(exc, url)
            if message is None:
                raise
            fail(message)
