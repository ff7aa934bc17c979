"""Secrets at rest: the secret values of agent configs and webhook secrets, encrypted with
Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) when ``AGENTCRON_SECRET_KEY`` is set.

What is sealed (``SecretBox.seal_config``, kind-independent because the keys mean a secret in
every kind that has them): ``secret``, every value of ``headers`` and ``env``, and ``url`` /
``base_url`` when they carry credentials or a query string. Names (of headers, variables,
``inherit_env``) stay readable. A trigger's ``webhook_secret`` is sealed as a whole.

A sealed value is ``SEALED_PREFIX`` + a Fernet token, so values stored before a key was set
(or by a node without one) still read as they are: reading never needs every row to be sealed.

The key: one Fernet key (``python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"`` or ``agentcron secrets key``), or several separated
by commas for rotation: the first seals, every one of them opens (``MultiFernet``).
``agentcron secrets rotate`` re-seals everything with the first key, after which the others
can be dropped.

Errors: a malformed key is a ``ValidationError`` naming ``AGENTCRON_SECRET_KEY``; a sealed
value that no key opens (a wrong or missing key) is a ``SecretKeyError`` naming the setting
and the row, never a traceback from the cipher.

The ``Store`` hands its box to every connection of its engine (an execution option), so the
row converters find it with ``box_of(conn)`` without every function taking it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from agentcron.errors import AgentcronError, ValidationError
from agentcron.store.schema import agents, alert_rules, triggers

SECRET_KEY_ENV = "AGENTCRON_SECRET_KEY"
SEALED_PREFIX = "agentcron-fernet:"
#: Decrypted values kept in memory by one box (secrets of agents and webhook triggers).
_OPENED_MAX = 4096
_OPTION = "agentcron_secrets"
_TABLE_KEYS = ("headers", "env")
_URL_KEYS = ("url", "base_url")
_KEY_HINT = (f"set {SECRET_KEY_ENV} to one or more comma-separated Fernet keys "
             "(`agentcron secrets key` prints a new one)")


class SecretKeyError(AgentcronError):
    """A stored secret cannot be opened with the configured key(s)."""


class SecretBox:
    """Seals and opens secret values. Without keys it stores values as they are and opens
    only unsealed ones."""

    def __init__(self, keys: str | None = None) -> None:
        self._fernet: MultiFernet | None = None
        # Claiming opens every locked agent's config inside its transaction, many times a
        # second under load: a value is decrypted once, then read from here. Bounded; a
        # sealed value maps to one plain value for the life of the keys, so nothing goes stale.
        self._opened: dict[str, str] = {}
        names = [k.strip() for k in (keys or "").split(",") if k.strip()]
        if not names:
            return
        try:
            self._fernet = MultiFernet([Fernet(k.encode()) for k in names])
        except (ValueError, TypeError):  # never echo the value: it is the key
            raise ValidationError(
                SECRET_KEY_ENV, "is not a Fernet key (32 url-safe base64-encoded bytes)",
                _KEY_HINT) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecretBox:
        return cls((os.environ if environ is None else environ).get(SECRET_KEY_ENV))

    @property
    def enabled(self) -> bool:
        return self._fernet is not None

    # -- one value ------------------------------------------------------------------------

    def seal(self, value: str) -> str:
        """``value`` sealed with the first key; as it is without a key or if sealed already."""
        if self._fernet is None or is_sealed(value):
            return value
        return SEALED_PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, value: str, where: str) -> str:
        """The plain value; ``where`` names the row in the error (``agent 'x'``)."""
        if not is_sealed(value):
            return value
        if self._fernet is None:
            raise SecretKeyError(
                f"{SECRET_KEY_ENV} is not set, but the secrets of {where} are stored "
                f"encrypted: set it to the key they were encrypted with")
        plain = self._opened.get(value)
        if plain is not None:
            return plain
        try:
            plain = self._fernet.decrypt(value[len(SEALED_PREFIX):].encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"{SECRET_KEY_ENV} cannot decrypt the secrets of {where}: they were "
                "encrypted with another key (list the old key after the new one, "
                "comma-separated, to read them)") from None
        if len(self._opened) >= _OPENED_MAX:
            self._opened.clear()
        self._opened[value] = plain
        return plain

    def reseal(self, value: str, where: str) -> str:
        """``value`` sealed afresh with the first key (rotation)."""
        if self._fernet is None:
            raise ValidationError(SECRET_KEY_ENV, "is not set: there is no key to encrypt with",
                                  _KEY_HINT)
        return SEALED_PREFIX + self._fernet.encrypt(self.open(value, where).encode()).decode()

    # -- agent configs --------------------------------------------------------------------

    def seal_config(self, config: dict[str, Any]) -> dict[str, Any]:
        return _map_secrets(config, lambda v: self.seal(v))

    def open_config(self, config: dict[str, Any], where: str) -> dict[str, Any]:
        return _map_secrets(config, lambda v: self.open(v, where))

    def reseal_config(self, config: dict[str, Any], where: str) -> dict[str, Any]:
        return _map_secrets(config, lambda v: self.reseal(v, where))


def new_key() -> str:
    """A new random key for ``AGENTCRON_SECRET_KEY``."""
    return Fernet.generate_key().decode()


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def _has_credentials(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return True  # not a URL we can judge: treat it as secret
    return "@" in parts.netloc or bool(parts.query)


def _map_secrets(config: dict[str, Any], change: Any) -> dict[str, Any]:
    """``config`` with ``change`` applied to each secret value (a new dict)."""
    out = dict(config)
    if isinstance(out.get("secret"), str) and out["secret"]:
        out["secret"] = change(out["secret"])
    for key in _TABLE_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = {k: change(v) if isinstance(v, str) else v for k, v in out[key].items()}
    for key in _URL_KEYS:
        value = out.get(key)
        if isinstance(value, str) and (is_sealed(value) or _has_credentials(value)):
            out[key] = change(value)
    return out


# -- the box of a connection ------------------------------------------------------------------

_PLAIN = SecretBox()


def attach(engine: Any, box: SecretBox) -> None:
    """Give every connection of ``engine`` this box (``box_of``)."""
    engine.update_execution_options(**{_OPTION: box})


def box_of(conn: Connection) -> SecretBox:
    """The box of the store this connection belongs to (no key when none was attached)."""
    box = conn.get_execution_options().get(_OPTION)
    return box if isinstance(box, SecretBox) else _PLAIN


# -- every stored secret ----------------------------------------------------------------------


def open_all(conn: Connection) -> int:
    """Open every sealed secret once (``serve`` at start): ``SecretKeyError`` now, naming
    the row, rather than when a run of that agent is claimed. Returns how many are sealed."""
    box = box_of(conn)
    sealed = 0
    for name, config in conn.execute(select(agents.c.name, agents.c.config)):
        opened = box.open_config(dict(config or {}), f"agent {name!r}")
        sealed += opened != config
    for trigger_id, secret in conn.execute(
        select(triggers.c.id, triggers.c.webhook_secret)
        .where(triggers.c.webhook_secret.is_not(None))
    ):
        box.open(secret, f"webhook trigger {trigger_id}")
        sealed += is_sealed(secret)
    for rule_id, channels, secret in conn.execute(
        select(alert_rules.c.id, alert_rules.c.channels, alert_rules.c.webhook_secret)
    ):
        for value in [*(channels or []), *([secret] if secret else [])]:
            box.open(value, f"alert rule {rule_id}")
            sealed += is_sealed(value)
    return sealed


def reseal_all(conn: Connection) -> dict[str, int]:
    """Seal every secret afresh with the first key, in the caller's transaction: values
    sealed with an older key (listed after the first) and plain values alike. Returns the
    number of agents and webhook triggers rewritten."""
    box = box_of(conn)
    done = {"agents": 0, "webhook_triggers": 0}
    for name, config in conn.execute(select(agents.c.name, agents.c.config)).all():
        resealed = box.reseal_config(dict(config or {}), f"agent {name!r}")
        if resealed != config:
            conn.execute(update(agents).where(agents.c.name == name).values(config=resealed))
            done["agents"] += 1
    for trigger_id, secret in conn.execute(
        select(triggers.c.id, triggers.c.webhook_secret)
        .where(triggers.c.webhook_secret.is_not(None))
    ).all():
        conn.execute(update(triggers).where(triggers.c.id == trigger_id).values(
            webhook_secret=box.reseal(secret, f"webhook trigger {trigger_id}")))
        done["webhook_triggers"] += 1
    # Alert rules' channels and webhook secrets (counted apart: the report keeps its shape).
    for rule_id, channels, secret in conn.execute(
        select(alert_rules.c.id, alert_rules.c.channels, alert_rules.c.webhook_secret)
    ).all():
        where = f"alert rule {rule_id}"
        conn.execute(update(alert_rules).where(alert_rules.c.id == rule_id).values(
            channels=[box.reseal(c, where) for c in channels or []],
            webhook_secret=box.reseal(secret, where) if secret else None))
    return done
