"""Per-key rate limits: 429 problem+json with Retry-After and RateLimit-* headers, throttled
security events, and a window shared by every process through Redis."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import httpx

from interlink.bootstrap import bootstrap_if_empty
from interlink.core import clock
from tests.api_helpers import make_key, serve
from tests.conftest import auth, make_settings
from tests.services import REDIS_URL, need, redis_available


async def rate_limited_events(client: httpx.AsyncClient, headers: dict[str, str], key_id: str) -> int:
    response = await client.get(
        "/v1/security-events", params={"keyId": key_id, "eventType": "auth.rate_limited"}, headers=headers
    )
    return len(response.json()["data"])


async def test_limit_gives_429_with_headers(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await make_key(client, admin_headers, rateLimit={"limit": 3, "periodSeconds": 60})
    headers = auth(created["key"])
    for remaining in (2, 1, 0):
        ok = await client.get("/v1/keys", headers=headers)
        assert ok.status_code == 200
        assert ok.headers["ratelimit-limit"] == "3"
        assert ok.headers["ratelimit-remaining"] == str(remaining)
        assert 0 <= int(ok.headers["ratelimit-reset"]) <= 60
        assert "retry-after" not in ok.headers
    refused = await client.get("/v1/keys", headers=headers)
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert 1 <= int(refused.headers["ratelimit-reset"]) <= 60
    body = refused.json()
    assert body["status"] == 429 and body["type"] == "urn:interlink:problem:rate-limited"
    assert body["retryAfter"] == int(refused.headers["retry-after"])
    # Other keys are not affected; keys without a limit carry no rate-limit headers.
    other = await client.get("/v1/keys", headers=admin_headers)
    assert other.status_code == 200 and "ratelimit-limit" not in other.headers


async def test_one_rate_limited_event_per_minute(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await make_key(client, admin_headers, rateLimit={"limit": 1, "periodSeconds": 3600})
    headers = auth(created["key"])
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    for _ in range(6):
        assert (await client.get("/v1/keys", headers=headers)).status_code == 429
    assert await rate_limited_events(client, admin_headers, created["id"]) == 1
    clock.shift(timedelta(seconds=30))
    assert (await client.get("/v1/keys", headers=headers)).status_code == 429
    assert await rate_limited_events(client, admin_headers, created["id"]) == 1
    clock.shift(timedelta(seconds=31))
    assert (await client.get("/v1/keys", headers=headers)).status_code == 429
    assert await rate_limited_events(client, admin_headers, created["id"]) == 2
    events = (
        await client.get("/v1/security-events", params={"keyId": created["id"]}, headers=admin_headers)
    ).json()["data"]
    assert events[0]["reason"] == "rate_limited" and events[0]["riskScore"] >= 20


async def test_rate_limit_can_be_changed_and_removed(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await make_key(client, admin_headers, rateLimit={"limit": 1, "periodSeconds": 3600})
    headers = auth(created["key"])
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    assert (await client.get("/v1/keys", headers=headers)).status_code == 429
    removed = await client.patch(f"/v1/keys/{created['id']}", json={"rateLimit": None}, headers=admin_headers)
    assert removed.status_code == 200 and removed.json()["rateLimit"] is None
    for _ in range(3):
        response = await client.get("/v1/keys", headers=headers)
        assert response.status_code == 200 and "ratelimit-limit" not in response.headers
    raised = await client.patch(
        f"/v1/keys/{created['id']}",
        json={"rateLimit": {"limit": 50, "periodSeconds": 10}},
        headers=admin_headers,
    )
    assert raised.json()["rateLimit"] == {"limit": 50, "periodSeconds": 10}
    limited = await client.get("/v1/keys", headers=headers)
    assert limited.status_code == 200 and limited.headers["ratelimit-limit"] == "50"


async def test_invalid_rate_limits_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for limit, field in (
        ({"limit": 0}, "rateLimit.limit"),
        ({"limit": 5, "periodSeconds": 0}, "rateLimit.periodSeconds"),
        ({"limit": 5, "periodSeconds": 86_401}, "rateLimit.periodSeconds"),
        ({"limit": "many"}, "rateLimit.limit"),
        ({"periodSeconds": 5}, "rateLimit.limit"),
    ):
        response = await client.post(
            "/v1/keys", json={"name": "x", "scopes": ["keys:read"], "rateLimit": limit}, headers=admin_headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field


async def test_redis_window_is_shared_between_processes(db_url: str, tmp_path: Path) -> None:
    need(redis_available(), f"Redis not reachable at {REDIS_URL}")
    async with AsyncExitStack() as stack:
        runtime_a, client_a = await stack.enter_async_context(
            serve(make_settings(db_url, tmp_path / "a", redis_url=REDIS_URL))
        )
        _runtime_b, client_b = await stack.enter_async_context(
            serve(make_settings(db_url, tmp_path / "b", redis_url=REDIS_URL))
        )
        admin = await bootstrap_if_empty(runtime_a)
        assert admin is not None
        created = await make_key(client_a, auth(admin.key), rateLimit={"limit": 4, "periodSeconds": 600})
        headers = auth(created["key"])
        remaining = []
        for client in (client_a, client_b, client_a, client_b):
            response = await client.get("/v1/keys", headers=headers)
            assert response.status_code == 200, response.text
            remaining.append(int(response.headers["ratelimit-remaining"]))
        assert remaining == [3, 2, 1, 0]
        for client in (client_a, client_b):
            refused = await client.get("/v1/keys", headers=headers)
            assert refused.status_code == 429
            assert int(refused.headers["retry-after"]) >= 1
        # Each process records at most one rate-limited event per key per minute.
        count = await rate_limited_events(client_a, auth(admin.key), created["id"])
        assert count == 2


async def test_memory_windows_are_per_process(db_url: str, tmp_path: Path) -> None:
    """Without Redis each process counts on its own (the documented embedded behaviour)."""
    async with AsyncExitStack() as stack:
        runtime_a, client_a = await stack.enter_async_context(serve(make_settings(db_url, tmp_path / "a")))
        _runtime_b, client_b = await stack.enter_async_context(serve(make_settings(db_url, tmp_path / "b")))
        admin = await bootstrap_if_empty(runtime_a)
        assert admin is not None
        created = await make_key(client_a, auth(admin.key), rateLimit={"limit": 1, "periodSeconds": 600})
        headers = auth(created["key"])
        assert (await client_a.get("/v1/keys", headers=headers)).status_code == 200
        assert (await client_a.get("/v1/keys", headers=headers)).status_code == 429
        assert (await client_b.get("/v1/keys", headers=headers)).status_code == 200
