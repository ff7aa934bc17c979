"""The alert operations of ``Store`` (kept here so ``store.py`` stays one screenful per
concern): rules, the outbox's delivery leases, and the periodic checks. Each method is one
transaction, like every ``Store`` method."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from agentcron.models import Alert, AlertDelivery, AlertRule
from agentcron.store import alert_rules
from agentcron.store import alerts as outbox
from agentcron.store.database import db_now


class AlertOperations:
    """Mixed into ``Store``; ``_write`` and ``_read`` are its transactions."""

    def _write(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def add_alert_rule(self, values: dict[str, Any], now: datetime | None = None) -> None:
        """Store a validated rule (``services.alerts`` builds ``values``)."""
        with self._write() as conn:
            alert_rules.insert_rule(conn, values, db_now(conn, now))

    def alert_rules(self, agent: str | None = None) -> list[AlertRule]:
        with self._read() as conn:
            return alert_rules.list_rules(conn, agent)

    def get_alert_rule(self, rule_id: str) -> AlertRule:
        with self._read() as conn:
            return alert_rules.get_rule(conn, rule_id)

    def delete_alert_rule(self, rule_id: str) -> None:
        with self._write() as conn:
            alert_rules.delete_rule(conn, rule_id)

    def replace_declared_alert_rules(self, source: str, rows: list[dict[str, Any]],
                                     now: datetime | None = None) -> None:
        with self._write() as conn:
            alert_rules.replace_declared(conn, source, rows, db_now(conn, now))

    def check_alert_rules(self, now: datetime | None = None) -> int:
        """The periodic rules' pass (long running, dead man's switch); exactly once across
        nodes, see ``alert_rules.check_rules``. Returns how many alerts it raised."""
        with self._write() as conn:
            return alert_rules.check_rules(conn, db_now(conn, now))

    def claim_alerts(self, node_id: str, limit: int, lease_s: float,
                     now: datetime | None = None) -> list[AlertDelivery]:
        """Lease due alerts to this node; see ``alerts.claim_deliveries``."""
        with self._write() as conn:
            return outbox.claim_deliveries(conn, node_id, limit, lease_s, db_now(conn, now))

    def settle_alert(self, alert_id: str, lease: int, *, error: str | None = None,
                     retry_in_s: float | None = None, now: datetime | None = None) -> bool:
        """One delivery's outcome, fenced on the lease; see ``alerts.settle``."""
        with self._write() as conn:
            return outbox.settle(conn, alert_id, lease, db_now(conn, now), error=error,
                                 retry_in_s=retry_in_s)

    def prune_alerts(self, before: datetime) -> int:
        """Delete delivered and failed alerts last raised before ``before``."""
        with self._write() as conn:
            return outbox.prune(conn, before)

    def list_alerts(self, *, limit: int = 50, status: str | None = None,
                    agent: str | None = None) -> list[Alert]:
        with self._read() as conn:
            return outbox.list_alerts(conn, limit=limit, status=status, agent=agent)
