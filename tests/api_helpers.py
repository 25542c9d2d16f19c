"""Small helpers shared by the API tests: create things and check problem responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from interlink.core.settings import Settings
from interlink.http.app import create_app
from interlink.runtime import Runtime

PROBLEM = "application/problem+json"


async def make_key(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """Create a key (default: name "test key", scope keys:read); returns the created key JSON."""
    body.setdefault("name", "test key")
    body.setdefault("scopes", ["keys:read"])
    response = await client.post("/v1/keys", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def make_tenant(client: httpx.AsyncClient, admin_headers: dict[str, str], name: str) -> str:
    """Create a tenant with a platform key; returns its id."""
    response = await client.post("/v1/tenants", json={"name": name}, headers=admin_headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def security_events(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/v1/security-events", params=params, headers=headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def assert_problem(response: httpx.Response, status: int, reason: str | None = None) -> dict[str, Any]:
    """The response is an RFC 9457 problem with ``status`` (and ``reason`` when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:interlink:problem:")
    if reason is not None:
        assert body["reason"] == reason
    return body


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    """A started runtime (one process's caches and listeners) and an HTTP client to its app;
    several of them on one database stand for several processes."""
    runtime = Runtime(settings)
    await runtime.start()
    try:
        transport = httpx.ASGITransport(
            app=create_app(settings, runtime, access_log=False), client=("127.0.0.1", 50000)
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as client:
            yield runtime, client
    finally:
        await runtime.stop()
