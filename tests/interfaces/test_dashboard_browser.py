"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright,
against a real ``agentcron serve`` on PostgreSQL. Sign in, see a trigger and its next fire
time, pause it and see it paused, fire an agent and watch its run succeed (the page
refreshes itself). Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.support.api_server import ApiServer, api_server
from tests.support.browser import chromium
from tests.support.procs import REPO

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SHOTS = REPO / "test-output" / "screenshots"

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def node(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server(pg_url, tmp_path_factory.mktemp("browser"), "browser-node") as server:
        with server.client("admin") as admin:
            admin.put("/api/v1/agents/hello", json={
                "kind": "python", "config": {"target": "agentcron.examples:hello"},
                "description": "Greets someone"})
            admin.post("/api/v1/triggers", json={
                "agent": "hello", "cron": "30 9 * * 1-5", "tz": "Europe/Berlin",
                "name": "weekday-mornings", "payload": {"name": "Berlin"}})
            admin.post("/api/v1/triggers", json={"agent": "hello", "every": "1h",
                                                 "name": "hourly"})
            for name in ("Ada", "Grace"):
                run = admin.post("/api/v1/agents/hello/fire", json={"payload": {"name": name}})
                server.wait_run(run.json()["id"])
        yield server


def test_sign_in_pause_a_trigger_and_fire_an_agent(browser: object, node: ApiServer) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    expect = playwright_api.expect
    page = browser.new_page(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page.set_default_timeout(20_000)

    # Signing in: the dashboard sends us to /login; a wrong token is refused.
    page.goto(node.base + "/")
    expect(page).to_have_url(node.base + "/login")
    page.fill("#token", "act_not-a-real-token")
    page.click("button[type=submit]")
    expect(page.locator(".note.bad")).to_contain_text("not valid")
    page.fill("#token", node.tokens["write"])
    page.click("button[type=submit]")
    expect(page).to_have_url(node.base + "/")
    expect(page.locator("h1")).to_have_text("Overview")
    expect(page.locator("#nodes-alive")).to_have_text("1")
    cookie = next(c for c in page.context.cookies() if c["name"] == "agentcron_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert node.tokens["write"] not in cookie["value"]
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

    # The trigger and its next fire time, as the API reports it.
    with node.client("read") as api:
        triggers = api.get("/api/v1/triggers", params={"agent": "hello"}).json()["triggers"]
    mornings = next(t for t in triggers if t["name"] == "weekday-mornings")
    next_utc = datetime.fromisoformat(mornings["next_fire_at"].replace("Z", "+00:00"))
    page.click("nav >> text=Triggers")
    row = page.locator(f"#trigger-{mornings['id']}")
    expect(row).to_contain_text("At 09:30 on Monday through Friday (Europe/Berlin)")
    expect(row.locator(".next-fire")).to_contain_text(next_utc.strftime("%Y-%m-%d %H:%M:%S UTC"))
    expect(row.locator(".next-fire")).to_contain_text(re.compile(r"in \d"))
    expect(row.locator(".state")).to_have_text("active")
    page.screenshot(path=str(SHOTS / "triggers.png"), full_page=True)

    # Pause it: the page says so, the row shows it, and the API agrees.
    row.locator("button", has_text="Pause").click()
    expect(page.locator(".note")).to_contain_text(f"trigger {mornings['id']} paused")
    row = page.locator(f"#trigger-{mornings['id']}")
    expect(row.locator(".state")).to_have_text("paused")
    expect(row.locator(".next-fire")).to_have_text("paused")
    expect(row.locator("button", has_text="Resume")).to_be_visible()
    with node.client("read") as api:
        assert api.get(f"/api/v1/triggers/{mornings['id']}").json()["paused"] is True
    page.screenshot(path=str(SHOTS / "triggers-paused.png"), full_page=True)

    # Fire the agent from the agents page, then watch the run succeed on its own page,
    # which refreshes itself (no reload here).
    page.click("nav >> text=Agents")
    page.locator("tr[data-agent=hello] button", has_text="Fire now").click()
    note = page.locator(".note")
    expect(note).to_contain_text("of hello queued")
    run_id = re.search(r"run (\S+) of hello", note.inner_text()).group(1)  # type: ignore[union-attr]
    page.goto(f"{node.base}/runs/{run_id}")
    expect(page.locator("h1 .status")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("pre.output")).to_contain_text("hello, world")
    page.screenshot(path=str(SHOTS / "run.png"), full_page=True)

    page.click("nav >> text=Runs")
    expect(page.locator(f"tr[data-run='{run_id}'] .run-status")).to_have_text("succeeded")
    page.screenshot(path=str(SHOTS / "runs.png"), full_page=True)
    page.click("nav >> text=Agents")
    expect(page.locator("h2", has_text="Tokens and cost per day")).to_be_visible()
    page.screenshot(path=str(SHOTS / "agents.png"), full_page=True)
    page.click("nav >> text=Overview")
    expect(page.locator(".totals")).to_contain_text("succeeded")
    page.screenshot(path=str(SHOTS / "overview-after.png"), full_page=True)


def test_a_read_token_can_look_but_not_act(browser: object, node: ApiServer) -> None:
    expect = playwright_api.expect
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(node.base + "/login")
    page.fill("#token", node.tokens["read"])
    page.click("button[type=submit]")
    page.click("nav >> text=Triggers")
    expect(page.locator("button", has_text="Fire now").first).to_be_disabled()
    context.close()


def test_fire_now_with_a_payload_and_follow_the_note_to_the_run(browser: object,
                                                                  node: ApiServer) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    expect = playwright_api.expect
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(node.base + "/login")
    page.fill("#token", node.tokens["write"])
    page.click("button[type=submit]")
    page.click("nav >> text=Agents")
    row = page.locator("tr[data-agent=hello]")
    expect(row.locator("td.target")).to_have_text("agentcron.examples:hello")
    expect(row.locator("td.budget")).to_contain_text("none")

    # A payload that is not JSON is refused with the field named, and nothing is queued.
    row.locator("details.fire-payload summary").click()
    row.locator("textarea[name=payload]").fill('{"name": ')
    row.locator("button", has_text="Fire with this payload").click()
    expect(page.locator(".note.bad")).to_contain_text("error: payload")
    expect(page.locator(".note a.note-run")).to_have_count(0)

    row = page.locator("tr[data-agent=hello]")
    row.locator("details.fire-payload summary").click()
    row.locator("textarea[name=payload]").fill('{"name": "Payload"}')
    page.screenshot(path=str(SHOTS / "agents-fire-payload.png"), full_page=True)
    row.locator("button", has_text="Fire with this payload").click()
    note = page.locator(".note")
    expect(note).to_contain_text("of hello queued")
    run_id = re.search(r"run (\S+) of hello", note.inner_text()).group(1)  # type: ignore[union-attr]
    note.locator("a.note-run").click()
    expect(page).to_have_url(f"{node.base}/runs/{run_id}")
    expect(page.locator("h1 .status")).to_have_text("succeeded", timeout=30_000)
    expect(page.locator("pre.output")).to_contain_text("hello, Payload")
    page.screenshot(path=str(SHOTS / "run-from-payload.png"), full_page=True)
    with node.client("read") as api:
        assert api.get(f"/api/v1/runs/{run_id}").json()["payload"] == {"name": "Payload"}
    context.close()


def test_the_workers_page_shows_a_worker_and_its_state(browser: object,
                                                       node: ApiServer) -> None:
    from agentcron.services.access import Access

    SHOTS.mkdir(parents=True, exist_ok=True)
    expect = playwright_api.expect
    with node.client("admin") as admin:
        # The node's zombie timeout is 5 s; a browser slow to start on a busy machine must
        # not see the worker (silent since its claim) lost, or its run already taken back.
        admin.put("/api/v1/agents/far", json={"kind": "remote", "config": {},
                                              "zombie_timeout": "120s"})
        fired = admin.post("/api/v1/agents/far/fire", json={"payload": {"n": 1}})
        assert fired.status_code == 202, fired.text
    _, secret = Access(node.store).create_token("browser-worker", "worker", agents=["far"])
    import httpx

    claimed = httpx.post(f"{node.base}/api/v1/workers/claim", timeout=30,
                         headers={"Authorization": f"Bearer {secret}"},
                         json={"worker_id": "gpu-box-1", "agents": ["far"], "wait": "10s",
                               "version": "curl/1"})
    assert len(claimed.json()["runs"]) == 1, claimed.text
    context = browser.new_context(viewport={"width": 1280, "height": 860})  # type: ignore[attr-defined]
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(node.base + "/login")
    page.fill("#token", node.tokens["read"])
    page.click("button[type=submit]")
    page.click("nav >> text=Workers")
    expect(page).to_have_url(node.base + "/workers")
    row = page.locator("tr[data-worker='gpu-box-1']")
    expect(row).to_contain_text("far")
    expect(row.locator(".worker-state")).to_have_text("active")
    expect(row).to_contain_text("curl/1")
    page.screenshot(path=str(SHOTS / "workers.png"), full_page=True)
    context.close()
