"""PostgreSQL LISTEN/NOTIFY: wake idle nodes at once instead of at their next poll.

Notifications are an optimisation only. Every loop also polls, so a lost notification (a
node reconnecting, SQLite, a crash between commit and delivery) costs latency, never a fire.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, make_url

from agentcron.store.database import TCP_TIMEOUTS

log = structlog.get_logger(__name__)

CHANNEL = "agentcron"
#: Where ``notify`` also notes its topics on the connection, so that the ``Store`` can hand
#: them to this process's own listeners once the transaction has committed (on SQLite that
#: is the only delivery; on PostgreSQL it spares this process the round trip).
TOPICS_KEY = "agentcron_topics"


def notify(conn: Connection, topic: str) -> None:
    """Queue a notification; PostgreSQL delivers it when the transaction commits."""
    conn.info.setdefault(TOPICS_KEY, set()).add(topic)
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_notify(CHANNEL, topic)))


def take_topics(conn: Connection) -> set[str]:
    """The topics ``notify`` noted on this connection since the last call (and forget
    them: the connection goes back to the pool)."""
    topics: set[str] = conn.info.pop(TOPICS_KEY, set())
    return topics


class Listener:
    """Calls ``on_topic`` for every notification on the agentcron channel.

    Runs until cancelled. A lost connection (database restart) is logged and retried with
    backoff; while disconnected, nodes fall back to polling, so nothing is missed.
    """

    def __init__(self, sqlalchemy_url: str, on_topic: Callable[[str], None]) -> None:
        url = make_url(sqlalchemy_url).set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)
        self._on_topic = on_topic
        self.connected = asyncio.Event()

    async def run(self) -> None:
        import psycopg
        from psycopg.conninfo import make_conninfo

        conninfo = make_conninfo(self._conninfo, connect_timeout=5, **TCP_TIMEOUTS)
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.connected.set()
                    delay = 0.5
                    # A notification may have been sent while we were away.
                    self._on_topic("reconnected")
                    async for message in conn.notifies():
                        self._on_topic(message.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any connection failure: back off and reconnect
                self.connected.clear()
                log.warning("listen_connection_lost", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
