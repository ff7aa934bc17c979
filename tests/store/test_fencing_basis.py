"""What self-fencing (``engine/fence.py``) relies on from the store: a beat is stamped no
earlier than it was sent, and PostgreSQL connections are bounded on a silent link."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from agentcron.store import NodeInfo, Store
from agentcron.store.database import TCP_TIMEOUTS
from agentcron.store.schema import nodes


def test_a_beat_is_stamped_no_earlier_than_it_was_sent(store: Store) -> None:
    store.register_node(NodeInfo("n1", "h", 1, "t", 30.0))
    for _ in range(5):
        before = store.now()  # the store's clock, read before the beat is sent
        store.heartbeat("n1", [])
        with store.engine.connect() as conn:
            stamped = conn.execute(select(nodes.c.heartbeat_at)
                                   .where(nodes.c.id == "n1")).scalar_one()
        assert stamped >= before


@pytest.mark.postgres
def test_postgres_connections_carry_keepalives_and_a_user_timeout(pg_store: Store) -> None:
    raw = pg_store.engine.raw_connection()
    try:
        params = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
    finally:
        raw.close()
    for name, value in TCP_TIMEOUTS.items():
        assert params.get(name) == str(value), name
