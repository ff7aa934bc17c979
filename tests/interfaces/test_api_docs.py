"""The interactive API docs are off unless asked for, and no page of the node loads a
script from another origin (in process, over the ``store`` fixture: both backends)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from agentcron.api.app import create_app
from agentcron.store import Store
from tests.support.api_server import api_server
from tests.support.browser import chromium


def test_api_docs_turns_the_docs_pages_on_and_by_default_no_page_loads_a_foreign_script(
        store: Store) -> None:
    async def pages(api_docs: bool) -> dict[str, httpx.Response]:
        app = create_app(store, "docs-node", api_docs=api_docs)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://docs.test") as client:
            return {path: await client.get(path)
                    for path in ("/docs", "/redoc", "/login", "/docs/static/swagger-ui.css")}

    def same_origin(page: httpx.Response) -> None:
        scripts = re.findall(r"<(?:script|link)[^>]*(?:src|href)=[\"']([^\"']+)", page.text)
        assert scripts and all(s.startswith("/") and not s.startswith("//")
                               for s in scripts), scripts
        assert "script-src 'self';" in page.headers["content-security-policy"]
        assert "<script>" not in page.text  # no inline script: the policy would refuse it

    off, on = asyncio.run(pages(False)), asyncio.run(pages(True))
    assert off["/docs"].status_code == off["/redoc"].status_code == 404
    same_origin(off["/login"])
    assert on["/docs"].status_code == on["/docs/static/swagger-ui.css"].status_code == 200
    assert on["/redoc"].status_code == 404  # ReDoc would need a CDN: not served
    assert "swagger-ui" in on["/docs"].text
    same_origin(on["/docs"])


@pytest.mark.slow
def test_the_docs_page_renders_in_a_browser_from_the_node_alone(
        tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Swagger UI comes up in real Chromium under the node's policy, and every request the
    page makes goes to the node's own origin."""
    db_url = f"sqlite:///{tmp_path}/docs.db"
    Store(db_url).upgrade()
    with api_server(db_url, tmp_path, "docs-node", extra=["--api-docs"]) as node, \
            chromium() as browser:
        page = browser.new_page()
        requested: list[str] = []
        refused: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.on("console", lambda m: refused.append(m.text)
                if "Content Security Policy" in m.text else None)
        page.goto(f"{node.base}/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=30_000)
        paths = page.locator(".opblock-summary-path").all_inner_texts()
        assert any("/api/v1/triggers" in p for p in paths), paths
        assert requested and all(u.startswith(node.base + "/") for u in requested), requested
        assert not refused, refused
        with node.client(None) as anonymous:
            assert anonymous.get("/redoc").status_code == 404
