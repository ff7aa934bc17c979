"""Secrets at rest, on both backends: with a key the raw columns hold no plain secret and
every read (listing, claim, webhook check) gets the value back; values stored before the key
still read; a wrong or missing key is a clear error naming the setting; rotation re-seals
everything with the first key."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from agentcron.errors import ValidationError
from agentcron.models import AgentKind, AgentSpec
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from agentcron.store.schema import agents, triggers
from agentcron.store.secrets import SEALED_PREFIX, SECRET_KEY_ENV, SecretBox, SecretKeyError
from tests.conftest import T0

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
SIGNING = "whsec_" + base64.b64encode(bytes(range(32))).decode()
HTTP_CONFIG = {
    "url": "https://bot:hunter2@agents.example/run?api_key=qs-token",
    "secret": SIGNING,
    "headers": {"Authorization": "Bearer sk-header"},
}
COMMAND_CONFIG = {"argv": ["env"], "env": {"DB_PASSWORD": "sk-env-value"}, "cwd": None,
                  "output_limit": 1000, "inherit_env": ["OPENAI_API_KEY"]}
PLAIN_VALUES = ("hunter2", "qs-token", SIGNING, "sk-header", "sk-env-value")


def keyed(store: Store, keys: str | None) -> Store:
    """Another store on the same database, with its own key(s)."""
    return Store(store.url, secrets=SecretBox(keys))


@pytest.fixture
def sealed(store: Store) -> Iterator[tuple[Store, str, str]]:
    """Agents and a webhook trigger written with OLD_KEY: (that store, trigger id, secret)."""
    with_key = keyed(store, OLD_KEY)
    with_key.upsert_agent(AgentSpec(name="web", kind=AgentKind.HTTP, config=HTTP_CONFIG), T0)
    with_key.upsert_agent(AgentSpec(name="sh", kind=AgentKind.COMMAND,
                                    config=COMMAND_CONFIG), T0)
    trigger, secret = Services(with_key).triggers.create(
        TriggerInput(agent="sh", webhook=True), now=T0)
    assert secret is not None
    yield with_key, trigger.id, secret
    with_key.close()


def raw(store: Store) -> tuple[dict[str, Any], str]:
    with store.engine.connect() as conn:
        configs = {n: c for n, c in conn.execute(select(agents.c.name, agents.c.config))}
        secret = conn.execute(select(triggers.c.webhook_secret)).scalar_one()
    return configs, secret


def test_with_a_key_no_plain_secret_is_stored_and_every_read_opens_them(
        store: Store, sealed: tuple[Store, str, str]) -> None:
    with_key, trigger_id, secret = sealed
    configs, stored_secret = raw(store)
    text = json.dumps(configs) + stored_secret
    for value in (*PLAIN_VALUES, secret):
        assert value not in text
    assert configs["web"]["secret"].startswith(SEALED_PREFIX)
    assert set(configs["web"]["headers"]) == {"Authorization"}  # names stay readable
    assert configs["sh"]["inherit_env"] == ["OPENAI_API_KEY"]
    assert stored_secret.startswith(SEALED_PREFIX)

    assert with_key.get_agent("web").config == HTTP_CONFIG
    assert {a.name: a.config for a in with_key.list_agents()} == {
        "web": HTTP_CONFIG, "sh": COMMAND_CONFIG}
    assert with_key.webhook_target(trigger_id).secret == secret
    run_id = with_key.fire_now("sh", now=T0)
    [claimed] = with_key.claim_runs("n1", 1, T0 + timedelta(seconds=1))
    assert claimed.run_id == run_id and claimed.agent.config == COMMAND_CONFIG
    assert with_key.check_secrets() == 3


def test_values_stored_before_the_key_still_read(store: Store) -> None:
    store.upsert_agent(AgentSpec(name="web", kind=AgentKind.HTTP, config=HTTP_CONFIG), T0)
    with_key = keyed(store, NEW_KEY)
    try:
        assert with_key.get_agent("web").config == HTTP_CONFIG
        assert with_key.check_secrets() == 0
    finally:
        with_key.close()


def test_a_wrong_or_missing_key_names_the_setting(
        store: Store, sealed: tuple[Store, str, str]) -> None:
    _, trigger_id, _ = sealed
    for keys, words in ((NEW_KEY, "cannot decrypt"), (None, "is not set")):
        other = keyed(store, keys)
        try:
            reads: list[Callable[[], object]] = [
                partial(other.get_agent, "web"), other.list_agents,
                partial(other.webhook_target, trigger_id), other.check_secrets]
            for read in reads:
                with pytest.raises(SecretKeyError) as info:
                    read()
                assert SECRET_KEY_ENV in str(info.value) and words in str(info.value)
                assert not any(v in str(info.value) for v in PLAIN_VALUES)
        finally:
            other.close()


def test_a_malformed_key_is_a_validation_error_that_does_not_echo_it() -> None:
    with pytest.raises(ValidationError) as info:
        SecretBox("not-a-fernet-key")
    assert info.value.field == SECRET_KEY_ENV
    assert "not-a-fernet-key" not in str(info.value)


def test_rotation_reseals_everything_with_the_first_key(
        store: Store, sealed: tuple[Store, str, str]) -> None:
    _, trigger_id, secret = sealed
    store.upsert_agent(AgentSpec(name="plain", kind=AgentKind.HTTP,
                                 config={**HTTP_CONFIG, "secret": None}), T0)
    both = keyed(store, f"{NEW_KEY},{OLD_KEY}")
    new_only = keyed(store, NEW_KEY)
    try:
        assert both.get_agent("web").config == HTTP_CONFIG  # the old key still opens
        assert both.reseal_secrets() == {"agents": 3, "webhook_triggers": 1}
        assert new_only.get_agent("web").config == HTTP_CONFIG
        assert new_only.get_agent("plain").config["headers"] == HTTP_CONFIG["headers"]
        assert new_only.webhook_target(trigger_id).secret == secret
        assert new_only.check_secrets() == 4
        assert "sk-header" not in json.dumps(raw(store)[0])
        with pytest.raises(ValidationError):
            store.reseal_secrets()  # no key to encrypt with
    finally:
        both.close()
        new_only.close()


def test_a_sealed_value_is_decrypted_once_however_often_it_is_read() -> None:
    """Claiming opens each locked agent's config in its transaction: decryption must not
    be paid on every claim."""
    box = SecretBox(Fernet.generate_key().decode())
    sealed = box.seal("s3cret")
    fernet = box._fernet
    assert fernet is not None
    decrypt = fernet.decrypt
    calls: list[bytes] = []

    def counting(token: bytes | str, ttl: int | None = None) -> bytes:
        calls.append(token if isinstance(token, bytes) else token.encode())
        return decrypt(token, ttl)

    fernet.decrypt = counting  # type: ignore[method-assign]
    assert [box.open(sealed, "agent 'a'") for _ in range(100)] == ["s3cret"] * 100
    assert len(calls) == 1
    other = SecretBox(Fernet.generate_key().decode())  # another key: its own memory
    with pytest.raises(SecretKeyError):
        other.open(sealed, "agent 'a'")
