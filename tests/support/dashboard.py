"""A dashboard client in process: a fresh app over a store, signed in with a new token."""

from __future__ import annotations

import re

import httpx

from agentcron.api.app import create_app
from agentcron.services.access import Access
from agentcron.store import Store

BASE = "http://dash.test"


def session_client(store: Store, scope: str = "write") -> tuple[httpx.AsyncClient, str]:
    """An in-process client of a fresh app, signed in with a new token of ``scope``."""
    _, token = Access(store).create_token(f"dash-{scope}", scope)
    app = create_app(store, "dash-node")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
    return client, token


async def sign_in(client: httpx.AsyncClient, token: str) -> tuple[httpx.Response, str]:
    response = await client.post("/login", data={"token": token},
                                  headers={"Origin": BASE})
    assert response.status_code == 303, response.text
    page = await client.get("/triggers")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    return response, csrf.group(1) if csrf else ""
