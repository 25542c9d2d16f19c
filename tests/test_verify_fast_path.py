"""``POST /v1/keys/verify`` is answered by the direct ASGI path with the same contract as the route.

Valid requests never reach the FastAPI route; anything that fails to parse or validate is handed to
it (and answered with its problems), without authenticating twice or counting a use twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

import interlink.http.routers.keys as keys_router
from interlink.bootstrap import BootstrapResult
from tests.conftest import auth

VERIFY = "/v1/keys/verify"


@pytest.fixture
def route_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every time the FastAPI route (not the fast path) runs the verification."""
    calls: list[str] = []
    original = keys_router.verify_for

    async def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("route")
        return await original(*args, **kwargs)

    monkeypatch.setattr(keys_router, "verify_for", spy)
    return calls


async def _key(client: httpx.AsyncClient, admin: BootstrapResult, **body: object) -> dict:  # type: ignore[type-arg]
    made = await client.post(
        "/v1/keys", json={"name": "k", "scopes": ["keys:verify"], **body}, headers=auth(admin.key)
    )
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


async def test_valid_requests_take_the_fast_path(
    client: httpx.AsyncClient, admin: BootstrapResult, route_calls: list[str]
) -> None:
    target = await _key(client, admin, metadata={"plan": "pro"})
    answer = await client.post(VERIFY, json={"key": target["key"]}, headers=auth(admin.key))
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-correlation-id"]
    body = answer.json()
    assert body["valid"] is True and body["code"] == "valid"
    assert body["keyId"] == target["id"] and body["metadata"] == {"plan": "pro"}
    assert route_calls == []

    metrics = (await client.get("/metrics")).text
    assert 'route="/v1/keys/verify"' in metrics


@pytest.mark.parametrize(
    ("content", "headers", "status", "field"),
    [
        (b'{"key": ', {"content-type": "application/json"}, 400, None),
        (json.dumps({"key": "x", "bogus": 1}).encode(), {"content-type": "application/json"}, 422, "bogus"),
        (json.dumps({"scopes": []}).encode(), {"content-type": "application/json"}, 422, "key"),
        (json.dumps({"key": 5}).encode(), {"content-type": "application/json"}, 422, "key"),
        (
            json.dumps({"key": "x", "ip": "not-an-ip"}).encode(),
            {"content-type": "application/json"},
            422,
            "ip",
        ),
    ],
)
async def test_invalid_bodies_get_the_routes_problems(
    client: httpx.AsyncClient,
    admin: BootstrapResult,
    route_calls: list[str],
    content: bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    answer = await client.post(VERIFY, content=content, headers={**auth(admin.key), **headers})
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["correlationId"] == answer.headers["x-correlation-id"]
    if field:
        assert field in [e["field"] for e in problem["errors"]]
    assert route_calls == []  # FastAPI refused the body before the handler ran


async def test_fallback_authenticates_once(
    client: httpx.AsyncClient, admin: BootstrapResult, route_calls: list[str]
) -> None:
    caller = await _key(client, admin, rateLimit={"limit": 100, "periodSeconds": 60})
    target = await _key(client, admin)
    # A non-JSON content type is the route's to judge: the fast path hands the request over
    # untouched and FastAPI refuses the body (after its authentication dependency ran once).
    refused = await client.post(
        VERIFY,
        content=json.dumps({"key": target["key"]}),
        headers={**auth(caller["key"]), "content-type": "text/plain"},
    )
    assert refused.status_code == 422
    assert route_calls == []
    fast = await client.post(VERIFY, json={"key": target["key"]}, headers=auth(caller["key"]))
    assert fast.status_code == 200
    assert fast.headers["ratelimit-remaining"] == "98"  # one use per request, never two


@pytest.mark.parametrize("case", ["missing", "malformed", "revoked", "scope", "tenant"])
async def test_caller_failures_are_problems(
    client: httpx.AsyncClient, admin: BootstrapResult, case: str
) -> None:
    target = await _key(client, admin)
    headers: dict[str, str] = {}
    expected = {
        "missing": (401, "missing"),
        "malformed": (401, "malformed"),
        "revoked": (401, "revoked"),
        "scope": (403, "insufficient_scope"),
        "tenant": (404, None),
    }[case]
    if case == "malformed":
        headers = auth("il_live_nope")
    elif case == "revoked":
        caller = await _key(client, admin)
        await client.post(f"/v1/keys/{caller['id']}/revoke", headers=auth(admin.key))
        headers = auth(caller["key"])
    elif case == "scope":
        made = await client.post(
            "/v1/keys", json={"name": "r", "scopes": ["keys:read"]}, headers=auth(admin.key)
        )
        headers = auth(made.json()["key"])
    elif case == "tenant":
        headers = auth(admin.key, "ten_01M89XPD3TD96A2CX5AP2F3M6Q")
    answer = await client.post(VERIFY, json={"key": target["key"]}, headers=headers)
    assert answer.status_code == expected[0], answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json().get("reason") == expected[1]
    assert answer.json()["instance"] == VERIFY


async def test_rate_limited_caller_gets_429_with_headers(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    caller = await _key(client, admin, rateLimit={"limit": 1, "periodSeconds": 60})
    first = await client.post(VERIFY, json={"key": caller["key"]}, headers=auth(caller["key"]))
    assert first.status_code == 200 and first.headers["ratelimit-limit"] == "1"
    second = await client.post(VERIFY, json={"key": caller["key"]}, headers=auth(caller["key"]))
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    assert second.json()["type"] == "urn:interlink:problem:rate-limited"


async def test_chunked_body_is_read_whole(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    target = await _key(client, admin)
    payload = json.dumps({"key": target["key"]}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 7):
            yield payload[i : i + 7]

    answer = await client.post(
        VERIFY, content=chunks(), headers={**auth(admin.key), "content-type": "application/json"}
    )
    assert answer.status_code == 200 and answer.json()["valid"] is True


async def test_openapi_still_documents_verify(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"][VERIFY]["post"]
    assert "requestBody" in operation
    assert "200" in operation["responses"] and "401" in operation["responses"]
