"""The interactive API docs are off unless asked for, and no page of the node loads a
script from another origin (in process, over the ``store`` fixture: both backends)."""

from __future__ import annotations

import asyncio
import re

import httpx

from agentcron.api.app import create_app
from agentcron.store import Store


def test_api_docs_turns_the_docs_pages_on_and_by_default_no_page_loads_a_foreign_script(
        store: Store) -> None:
    async def pages(api_docs: bool) -> dict[str, httpx.Response]:
        app = create_app(store, "docs-node", api_docs=api_docs)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://docs.test") as client:
            return {path: await client.get(path) for path in ("/docs", "/redoc", "/login")}

    off, on = asyncio.run(pages(False)), asyncio.run(pages(True))
    assert off["/docs"].status_code == off["/redoc"].status_code == 404
    scripts = re.findall(r"<script[^>]*src=[\"']([^\"']+)", off["/login"].text)
    assert scripts and all(s.startswith("/") and not s.startswith("//") for s in scripts), scripts
    assert on["/docs"].status_code == on["/redoc"].status_code == 200
    assert "swagger-ui" in on["/docs"].text
