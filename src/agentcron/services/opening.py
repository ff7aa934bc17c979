"""Opening the store a front door names (``--db``, ``serve``, the Python API)."""

from __future__ import annotations

from agentcron.store import Store


def open_store(url: str, *, pool_size: int = 5, prepare: bool = True) -> Store:
    """Open the store. With ``prepare``: a brand-new SQLite database (no schema at all, for
    instance a file that does not exist yet) is created and migrated on the spot, so the
    embedded default works out of the box; any other database must be migrated with
    ``agentcron db upgrade`` (raises DatabaseNotMigratedError otherwise). Without it the
    store is opened as it is (``db upgrade`` itself). A database that cannot be reached or
    used raises DatabaseUnavailableError, saying which and why."""
    from agentcron.store import migrate
    from agentcron.store.errors import database_error

    store = Store(url, pool_size=pool_size)
    if not prepare:
        return store
    try:
        if store.backend == "sqlite" and migrate.current_revision(store.engine) is None:
            store.upgrade()
        store.ensure_migrated()
    except BaseException as exc:
        store.close()
        unusable = database_error(exc, url)
        if unusable is not None:
            raise unusable from exc
        raise
    return store
