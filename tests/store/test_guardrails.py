"""Guardrails on triggers agents make (created_by ``mcp:`` / ``run:``), enforced by the
store in the creating transaction: max_live, min_interval (every, cron, at), may_schedule,
expiry, approval. Both backends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from agentcron.errors import ConflictError, GuardrailError, ValidationError
from agentcron.models import RunStatus
from agentcron.services import Services, TriggerInput
from agentcron.store import Store
from tests.conftest import T0
from tests.support.helpers import add_agent, add_trigger, mcp_trigger, race, runs_of


def _mcp(store: Store, now: Any = T0, agent: str = "a", token: str = "bot", **kwargs: Any
         ) -> Any:
    return mcp_trigger(store, TriggerInput(agent=agent, **kwargs), token, now)


def test_an_agent_made_trigger_records_who_made_it_and_expires(store: Store) -> None:
    add_agent(store, now=T0)
    made = _mcp(store, every="10m", name="check")
    assert (made.created_by, made.source) == ("mcp:bot", "mcp")
    assert made.expires_at == T0 + timedelta(days=30)  # the default expires_after
    assert made.end_at == made.expires_at  # the Bounded schedule stops it there
    assert made.approval is None and not made.paused
    by_hand = add_trigger(store, T0, every="10m")
    assert (by_hand.created_by, by_hand.expires_at, by_hand.end_at) == ("cli", None, None)


def test_max_live_refuses_the_next_one_with_its_reason(store: Store) -> None:
    add_agent(store, now=T0, scheduling={"max_live": 2})
    _mcp(store, every="10m")
    _mcp(store, every="20m")
    add_trigger(store, T0, every="1m")  # made by a person: not counted, not limited
    with pytest.raises(GuardrailError) as refused:
        _mcp(store, every="30m")
    assert "agent 'a' already has 2 live agent-made triggers (max_live 2)" in str(refused.value)
    assert "[agents.a.scheduling] max_live" in str(refused.value)
    assert len(store.list_triggers("a")) == 3  # nothing half-written


@pytest.mark.parametrize(("schedule", "allowed"), [
    ({"every": "30s"}, False),
    ({"every": "2m"}, True),
    ({"cron": "*/30 * * * * *"}, False),  # six fields: every 30 seconds
    ({"cron": "0,1 9 * * *"}, False),  # mostly a day apart, but 09:00 and 09:01
    ({"cron": "*/5 * * * *"}, True),
    ({"at": (T0 + timedelta(seconds=20)).isoformat()}, False),
    ({"at": (T0 + timedelta(minutes=5)).isoformat()}, True),
])
def test_min_interval_for_every_cron_and_at(store: Store, schedule: dict[str, str],
                                            allowed: bool) -> None:
    add_agent(store, now=T0, scheduling={"min_interval": "2m"})
    if allowed:
        assert _mcp(store, **schedule).created_by == "mcp:bot"
        return
    with pytest.raises(GuardrailError) as refused:
        _mcp(store, **schedule)
    assert "under its min_interval 2m" in str(refused.value)
    assert store.list_triggers("a") == []


def test_an_expired_trigger_does_not_fire(store: Store) -> None:
    add_agent(store, now=T0, max_concurrency=100, scheduling={"expires_after": "1h"})
    made = _mcp(store, every="20m", overlap="allow")
    assert made.expires_at == T0 + timedelta(hours=1)
    for minutes in (20, 40, 60):
        store.fire_due(T0 + timedelta(minutes=minutes))
    fired = sorted(r.scheduled_for for r in runs_of(store, made.id))
    assert fired == [T0 + timedelta(minutes=m) for m in (20, 40, 60)]
    assert store.get_trigger(made.id).next_fire_at is None
    store.fire_due(T0 + timedelta(minutes=80))
    store.fire_due(T0 + timedelta(hours=5))
    assert len(runs_of(store, made.id)) == 3
    # A resume after it expired does not bring it back.
    svc = Services(store)
    svc.pause_trigger(made.id, T0 + timedelta(hours=5))
    assert svc.resume_trigger(made.id, T0 + timedelta(hours=5)).next_fire_at is None


def test_approval_pending_does_not_fire_until_approved(store: Store) -> None:
    add_agent(store, now=T0, scheduling={"require_approval": True})
    svc = Services(store)
    made = _mcp(store, every="10m")
    assert (made.approval, made.paused, made.paused_reason) == (
        "pending", True, "awaiting approval")
    store.fire_due(T0 + timedelta(hours=1))
    assert runs_of(store, made.id) == []
    with pytest.raises(ConflictError) as refused:
        svc.resume_trigger(made.id, T0 + timedelta(hours=1))
    assert f"agentcron triggers approve {made.id}" in str(refused.value)
    # A resume of many leaves it paused too.
    assert svc.pausing.resume(_select_all(), now=T0 + timedelta(hours=1)) == []
    assert store.get_trigger(made.id).paused
    approved = svc.approve_trigger(made.id, T0 + timedelta(hours=1))
    assert (approved.approval, approved.paused, approved.paused_reason) == (
        "approved", False, None)
    assert approved.next_fire_at == T0 + timedelta(hours=1, minutes=10)
    store.fire_due(T0 + timedelta(hours=1, minutes=10))
    assert [r.scheduled_for for r in runs_of(store, made.id)] == [
        T0 + timedelta(hours=1, minutes=10)]
    with pytest.raises(ConflictError, match="not awaiting approval"):
        svc.approve_trigger(made.id, T0 + timedelta(hours=2))


def _select_all() -> Any:
    from agentcron.services.pausing import TriggerSelector

    return TriggerSelector(all=True)


def test_created_by_filters_exactly_or_by_prefix(store: Store) -> None:
    add_agent(store, now=T0)
    svc = Services(store)
    cli_made = add_trigger(store, T0, every="10m")
    ops = _mcp(store, every="10m", token="ops")
    bot = _mcp(store, every="20m", token="bot")
    api, _ = svc.create_trigger(TriggerInput(agent="a", every="30m"), T0, "api",
                                created_by="api:deploy")

    def ids(created_by: str) -> set[str]:
        return {t.id for t in svc.triggers.all(created_by=created_by)}

    assert ids("mcp:") == {ops.id, bot.id}
    assert ids("mcp:ops") == {ops.id}
    assert ids("cli") == {cli_made.id}
    assert ids("api:deploy") == {api.id}
    assert ids("run:") == set()
    page, total = svc.triggers_page(created_by="mcp:")
    assert total == 2 and {t.id for t in page} == {ops.id, bot.id}
    # "%" and "_" are not wildcards in a prefix.
    assert ids("mc_:") == set()


def test_a_run_that_finishes_without_follow_ups_reads_no_agent_row(store: Store) -> None:
    """The hot path: a finish batch without follow-ups takes no agent lock, reads no
    policy (not one statement more than before follow-ups existed)."""
    from sqlalchemy import event

    from agentcron.models import Outcome

    add_agent(store, now=T0, max_concurrency=10)
    add_trigger(store, T0, every="1m")
    store.fire_due(T0 + timedelta(minutes=1))
    [claimed] = store.claim_runs("n1", 10, T0 + timedelta(minutes=1))
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        result = store.finish("n1", [Outcome(claimed.run_id, claimed.lease,
                                             RunStatus.SUCCEEDED)], T0 + timedelta(minutes=1))
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
    assert result.applied == [claimed.run_id]
    assert seen and not [s for s in seen if "scheduling" in s or "FROM agents" in s]


def test_agents_may_not_make_webhook_triggers(store: Store) -> None:
    add_agent(store, now=T0)
    with pytest.raises(GuardrailError, match="agents may not create webhook triggers"):
        _mcp(store, webhook=True)
    assert store.list_triggers("a") == []


def test_an_update_cannot_move_an_agent_made_trigger_past_its_expiry(store: Store) -> None:
    add_agent(store, now=T0, scheduling={"expires_after": "1d"})
    made = _mcp(store, every="1h")
    later = (T0 + timedelta(days=10)).isoformat()
    changed = Services(store).update_trigger(made.id, {"end": later, "every": "2h"}, T0)
    assert changed.end_at == made.expires_at == T0 + timedelta(days=1)
    assert changed.every_s == 7200.0
    kept = Services(store).update_trigger(made.id, {"end": later}, T0)
    assert kept.end_at == made.expires_at


def test_an_mcp_tokens_own_limit_is_read_where_the_trigger_is_written(store: Store) -> None:
    add_agent(store, "a", now=T0)
    add_agent(store, "b", now=T0)
    access = Services(store).access
    access.create_token("narrow", "schedule", agents=["a"])
    assert _mcp(store, agent="a", token="narrow", every="10m").created_by == "mcp:narrow"
    with pytest.raises(GuardrailError) as other:
        _mcp(store, agent="b", token="narrow", every="10m")
    assert "token 'narrow' may schedule only a, not agent 'b'" in str(other.value)
    access.revoke_token("narrow")
    with pytest.raises(GuardrailError) as revoked:
        Services(store).create_trigger(TriggerInput(agent="a", every="20m"), T0, "mcp",
                                       created_by="mcp:narrow")
    assert "token 'narrow' no longer exists" in str(revoked.value)
    assert [t.created_by for t in store.list_triggers()] == ["mcp:narrow"]


def test_a_tokens_own_max_live_holds_across_agents(store: Store) -> None:
    """A runaway MCP client is stopped by its token's cap even where each agent's own
    max_live (100 by default) has room; deleting one of its triggers makes room again."""
    for name in ("a", "b"):
        add_agent(store, name, now=T0, scheduling={"min_interval": "1m"})
    Services(store).access.create_token("capped", "schedule", max_live=2)
    first = _mcp(store, agent="a", token="capped", every="10m")
    _mcp(store, agent="b", token="capped", every="10m")
    with pytest.raises(GuardrailError) as full:
        _mcp(store, agent="b", token="capped", every="20m")
    assert ("token 'capped' already has 2 live triggers made through it (its max_live 2)"
            in str(full.value))
    assert "--max-live" in str(full.value)
    Services(store).delete_trigger(first.id)
    assert _mcp(store, agent="b", token="capped", every="20m").created_by == "mcp:capped"


def test_creates_through_one_capped_token_at_once_never_pass_its_max_live(
        store: Store) -> None:
    """Engines (as nodes serving /mcp) create through one token for different agents at
    the same moment: their agent locks do not meet, so the token's row lock serialises
    them; exactly ``max_live`` are made and the rest refused."""
    names = [f"agent{i}" for i in range(6)]
    for name in names:
        add_agent(store, name, now=T0)
    Services(store).access.create_token("racer", "schedule", max_live=3)
    peers = [Store(store.url) for _ in names]

    def create(peer: Store, i: int) -> str:
        try:
            Services(peer).create_trigger(TriggerInput(agent=names[i], every="1h"), T0,
                                          "mcp", created_by="mcp:racer")
        except GuardrailError as exc:
            return str(exc)
        return "made"

    try:
        answers = race(peers, create)
    finally:
        for peer in peers:
            peer.close()
    assert answers.count("made") == 3, answers
    assert all("max_live 3" in a for a in answers if a != "made"), answers
    assert len(store.list_triggers()) == 3


def test_only_a_token_that_makes_triggers_over_mcp_takes_max_live(store: Store) -> None:
    access = Services(store).access
    for scope, value in (("read", 3), ("schedule", -1), ("schedule", True)):
        with pytest.raises(ValidationError) as refused:
            access.create_token(f"t-{scope}-{value}", scope, max_live=value)
        assert refused.value.field == "max_live"
    assert access.create_token("ok", "schedule", max_live=0)[0].max_live == 0
    assert access.create_token("adm", "admin", max_live=5)[0].max_live == 5
    assert [t.max_live for t in access.list_tokens()] == [5, 0]
