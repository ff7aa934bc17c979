"""The dashboard in-process (no browser): sign-in cookie, CSRF protection, scopes, and
pages that stay fast and bounded with 100,000 runs in PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text

from agentcron.services import Services, TriggerInput
from agentcron.services.access import Access
from agentcron.store import Store
from tests.support.dashboard import BASE, session_client, sign_in
from tests.support.helpers import add_agent


def test_sign_in_cookie_and_csrf(sqlite_store: Store) -> None:
    store = sqlite_store
    add_agent(store, "a")
    trigger = Services(store).add_trigger(TriggerInput(agent="a", every="1h"))

    async def main() -> None:
        client, token = session_client(store)
        async with client:
            assert (await client.get("/")).headers["location"] == "/login"
            refused = await client.post("/login", data={"token": "act_" + "y" * 43})
            assert refused.status_code == 401
            cross = await client.post("/login", data={"token": token},
                                      headers={"Origin": "https://evil.example"})
            assert cross.status_code == 403
            response, csrf = await sign_in(client, token)
            cookie = response.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict",
                                                                                 "strict")
            assert token not in cookie
            assert "content-security-policy" in (await client.get("/")).headers

            pause = f"/triggers/{trigger.id}/pause"
            no_token = await client.post(pause, data={"next": "/triggers"})
            assert no_token.status_code == 403 and "CSRF" in no_token.text
            forged = await client.post(pause, data={"csrf": csrf},
                                       headers={"Origin": "https://evil.example"})
            assert forged.status_code == 403
            assert store.get_trigger(trigger.id).paused is False
            done = await client.post(pause, data={"csrf": csrf, "next": "//evil.example/x"},
                                     headers={"Origin": BASE})
            assert done.status_code == 303 and done.headers["location"].startswith("/?note=")
            assert store.get_trigger(trigger.id).paused is True

            await client.post("/logout", data={"csrf": csrf})
            assert (await client.get("/")).headers["location"] == "/login"

    asyncio.run(main())


def test_a_read_session_cannot_act(sqlite_store: Store) -> None:
    store = sqlite_store
    add_agent(store, "a")

    async def main() -> None:
        client, token = session_client(store, "read")
        async with client:
            _, csrf = await sign_in(client, token)
            page = await client.get("/agents")
            assert "disabled" in page.text
            fire = await client.post("/agents/a/fire", data={"csrf": csrf})
            assert fire.status_code == 403 and "read-only" in fire.text

    asyncio.run(main())


def test_a_revoked_token_ends_its_sessions(sqlite_store: Store) -> None:
    async def main() -> None:
        client, token = session_client(sqlite_store)
        async with client:
            await sign_in(client, token)
            assert (await client.get("/")).status_code == 200
            Access(sqlite_store).revoke_token("dash-write")
            assert (await client.get("/")).status_code == 303

    asyncio.run(main())


# -- 100,000 runs ---------------------------------------------------------------------------

N_RUNS = 100_000
MAX_ROWS = 1001  # no statement may return more rows: the largest API page (1000) + 1
MAX_PAGE_S = 3.0

BULK = text("""
INSERT INTO runs (id, trigger_id, agent, scheduled_for, status, attempt, lease, coalesced,
                  queued_at, run_after, started_at, finished_at, input_tokens, output_tokens,
                  cost_usd, output)
SELECT lpad(to_hex(g), 8, '0') || '-0000-7000-8000-' || lpad(to_hex(g), 12, '0'),
       CASE WHEN g % 2 = 0 THEN :trigger END,
       'bulk' || (g % 5),
       t, (ARRAY['succeeded', 'failed', 'cancelled', 'skipped'])[1 + g % 4],
       1, 1, 1, t, t, t, t + interval '2 seconds', 100, 20, 0.0015, 'ok'
FROM generate_series(1, :n) AS g,
     LATERAL (SELECT CAST(:t0 AS timestamptz) - make_interval(secs => (:n - g) * 1.7)) AS x(t)
""")


@pytest.fixture
def hundred_k(pg_store: Store) -> Iterator[tuple[Store, str, str]]:
    store = pg_store
    for i in range(5):
        add_agent(store, f"bulk{i}")
    trigger = Services(store).add_trigger(TriggerInput(agent="bulk0", cron="*/5 * * * *"))
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        conn.execute(BULK, {"trigger": trigger.id, "n": N_RUNS, "t0": now})
        conn.execute(text("ANALYZE runs"))
    newest = f"{N_RUNS:08x}-0000-7000-8000-{N_RUNS:012x}"
    yield store, trigger.id, newest


@pytest.mark.postgres
@pytest.mark.slow
def test_pages_stay_bounded_with_100k_runs(hundred_k: tuple[Store, str, str]) -> None:
    store, trigger_id, newest = hundred_k
    seen: list[tuple[str, int]] = []

    def record(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, cursor.rowcount))

    async def main() -> dict[str, float]:
        client, token = session_client(store, "admin")
        timings: dict[str, float] = {}
        async with client:
            await sign_in(client, token)
            headers = {"Authorization": f"Bearer {token}"}
            paths = ["/", "/triggers", "/runs", "/runs?status=failed", "/runs?agent=bulk3",
                     "/runs?status=running", "/runs?status=queued&agent=bulk2",
                     f"/runs?trigger={trigger_id}", f"/runs?before={newest}",
                     f"/runs/{newest}", "/agents"]
            api = ["/api/v1/stats?days=7", "/api/v1/runs?limit=1000",
                   "/api/v1/runs?status=skipped&agent=bulk1", "/api/v1/nodes", "/metrics"]
            for path in paths + api:
                started = time.perf_counter()
                response = await client.get(path, headers=headers if path in api else {})
                timings[path] = time.perf_counter() - started
                assert response.status_code == 200, (path, response.text[:500])
        return timings

    event.listen(store.engine, "after_cursor_execute", record)
    try:
        timings = asyncio.run(main())
    finally:
        event.remove(store.engine, "after_cursor_execute", record)

    # The first page's numbers come from the 100k rows: the 24 h window holds ~50k of them.
    worst = max(seen, key=lambda s: s[1])
    assert worst[1] <= MAX_ROWS, f"a statement returned {worst[1]} rows:\n{worst[0]}"
    slow = {path: round(t, 3) for path, t in timings.items() if t > MAX_PAGE_S}
    assert not slow, slow
    print("page timings (s) with 100k runs:",
          {path: round(t, 3) for path, t in timings.items()})


def test_overdue_triggers_show_that_firing_is_behind(store: Store) -> None:
    """No node fires these: the overview, the stats document and the dashboard say how
    many triggers wait and how late the oldest is (what an overloaded pool looks like,
    since full nodes leave due triggers due)."""
    from agentcron.services.overview import gauges, overview

    services = Services(store)
    add_agent(store, "a")
    now = services.now()
    ids = [services.add_trigger(TriggerInput(agent="a", every="1s"),
                                now - timedelta(seconds=30)).id for _ in range(3)]
    services.add_trigger(TriggerInput(agent="a", every="1h"), now)  # not due
    services.pause_trigger(ids[0])  # a paused trigger is not behind
    view = overview(services, now)
    assert view.behind.overdue == 2
    assert view.behind.oldest_s is not None and 28 <= view.behind.oldest_s <= 31
    assert gauges(services).behind.overdue == 2

    async def main() -> str:
        client, token = session_client(store)
        async with client:
            await sign_in(client, token)
            return (await client.get("/")).text

    page = asyncio.run(main())
    assert 'id="firing-behind"' in page and "2 triggers are overdue" in page


@pytest.mark.postgres
@pytest.mark.slow
def test_the_overview_counts_the_window_not_the_table(hundred_k: tuple[Store, str, str]
                                                      ) -> None:
    from agentcron.services.overview import overview

    store, _, _ = hundred_k
    view = overview(Services(store))
    in_window = sum(view.last_24h.values())
    expected = int(timedelta(hours=24).total_seconds() / 1.7)
    assert abs(in_window - expected) <= 2 * 3600 / 1.7  # the window starts on an hour
    assert sum(sum(h.counts.values()) for h in view.hours) == in_window
