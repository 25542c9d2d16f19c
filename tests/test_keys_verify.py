"""``POST /v1/keys/verify``: every outcome code, and who may verify whose keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.enums import IntegrationEnvironment
from interlink.keys.format import generate_key
from interlink.keys.service import VerifyCode
from tests.api_helpers import make_key, make_tenant
from tests.conftest import auth


async def verify(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, **extra: Any
) -> dict[str, Any]:
    response = await client.post("/v1/keys/verify", json={"key": key, **extra}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["valid"] is (body["code"] == "valid")
    return body


async def events_of(client: httpx.AsyncClient, headers: dict[str, str], key_id: str) -> list[str]:
    response = await client.get("/v1/security-events", params={"keyId": key_id}, headers=headers)
    return [e["eventType"] for e in response.json()["data"]]


async def test_valid_key_returns_identity(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    tenant_id = await make_tenant(client, admin_headers, "Verify Co")
    acting = auth(admin_headers["Authorization"][7:], tenant_id)
    expires = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    target = await make_key(
        client,
        acting,
        name="customer key",
        scopes=["events:write", "webhooks:read"],
        metadata={"customerId": "c_42", "plan": "pro"},
        expiresAt=expires.isoformat(),
        environment="STAGING",
    )
    checker = await make_key(client, acting, name="checker", scopes=["keys:verify"])
    result = await verify(client, auth(checker["key"]), target["key"], scopes=["events:write"])
    assert result["code"] == "valid"
    assert result["keyId"] == target["id"]
    assert result["tenantId"] == tenant_id
    assert result["name"] == "customer key"
    assert result["kind"] == "tenant"
    assert result["environment"] == "STAGING"
    assert result["scopes"] == ["events:write", "webhooks:read"]
    assert result["metadata"] == {"customerId": "c_42", "plan": "pro"}
    assert datetime.fromisoformat(result["expiresAt"]) == expires
    assert result["missingScopes"] is None
    assert result["rateLimit"] is None


async def test_every_failure_code(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    headers = auth(admin.key)
    unknown = generate_key(IntegrationEnvironment.PRODUCTION)
    malformed = await verify(client, headers, "il_live_not-a-key")
    assert malformed == {**malformed, "code": "malformed", "valid": False, "keyId": None, "tenantId": None}
    unknown_result = await verify(client, headers, unknown)
    assert unknown_result["code"] == "unknown" and unknown_result["keyId"] is None

    expiring = await make_key(
        client, headers, expiresAt=(datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    )
    revoked = await make_key(client, headers)
    await client.post(f"/v1/keys/{revoked['id']}/revoke", headers=headers)
    fenced = await make_key(client, headers, allowedIps=["198.51.100.0/24"])
    limited = await make_key(client, headers, rateLimit={"limit": 1, "periodSeconds": 60})
    narrow = await make_key(client, headers, scopes=["keys:read"], metadata={"secretish": "x"})

    revoked_result = await verify(client, headers, revoked["key"])
    assert revoked_result["code"] == "revoked"
    assert revoked_result["keyId"] == revoked["id"] and revoked_result["tenantId"] == admin.tenant_id
    assert revoked_result["metadata"] is None

    inside = await verify(client, headers, fenced["key"], ip="198.51.100.23")
    assert inside["code"] == "valid"
    outside = await verify(client, headers, fenced["key"], ip="203.0.113.9")
    assert outside["code"] == "ip_denied" and outside["metadata"] is None
    no_ip = await verify(client, headers, fenced["key"])
    assert no_ip["code"] == "ip_denied"

    first = await verify(client, headers, limited["key"])
    assert first["code"] == "valid"
    assert first["rateLimit"] == {
        "limit": 1,
        "remaining": 0,
        "resetSeconds": first["rateLimit"]["resetSeconds"],
    }
    second = await verify(client, headers, limited["key"])
    assert second["code"] == "rate_limited"
    assert second["rateLimit"]["remaining"] == 0 and second["rateLimit"]["resetSeconds"] >= 1

    scoped = await verify(client, headers, narrow["key"], scopes=["keys:read", "audit:read", "keys:write"])
    assert scoped["code"] == "insufficient_scope"
    assert scoped["missingScopes"] == ["audit:read", "keys:write"]
    assert scoped["scopes"] == ["keys:read"] and scoped["metadata"] is None

    clock.shift(timedelta(minutes=11))
    expired = await verify(client, headers, expiring["key"])
    assert expired["code"] == "expired" and expired["keyId"] == expiring["id"]

    seen = {code.value for code in VerifyCode}
    assert seen == {
        "valid",
        "malformed",
        "unknown",
        "expired",
        "revoked",
        "ip_denied",
        "rate_limited",
        "insufficient_scope",
    }
    assert await events_of(client, headers, revoked["id"]) == [
        "key.revoked_used",
        "key.revoked",
        "key.created",
    ]
    assert await events_of(client, headers, fenced["id"]) == [
        "auth.ip_denied",
        "auth.ip_denied",
        "key.created",
    ]
    assert await events_of(client, headers, limited["id"]) == ["auth.rate_limited", "key.created"]
    assert await events_of(client, headers, narrow["id"]) == ["auth.insufficient_scope", "key.created"]
    assert await events_of(client, headers, expiring["id"]) == ["key.expired_used", "key.created"]
    ip_events = (
        await client.get("/v1/security-events", params={"keyId": fenced["id"]}, headers=headers)
    ).json()["data"]
    assert ip_events[1]["sourceIp"] == "203.0.113.9"


async def test_verify_checks_the_ip_field(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    target = await make_key(client, admin_headers)
    for bad in ("not-an-ip", "10.0.0.0/8", "999.1.1.1"):
        response = await client.post(
            "/v1/keys/verify", json={"key": target["key"], "ip": bad}, headers=admin_headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "ip"
    ok = await verify(client, admin_headers, target["key"], ip="2001:db8::1")
    assert ok["code"] == "valid"


async def test_verify_request_validation(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for body, field in (
        ({}, "key"),
        ({"key": ""}, "key"),
        ({"key": "x" * 513}, "key"),
        ({"key": "il_live_x", "scopes": ["nope"]}, "scopes.0"),
        ({"key": "il_live_x", "extra": 1}, "extra"),
    ):
        response = await client.post("/v1/keys/verify", json=body, headers=admin_headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["errors"][0]["field"] == field


async def test_tenant_key_cannot_verify_another_tenants_key(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    platform = auth(admin.key)
    tenant_a = await make_tenant(client, platform, "Tenant A")
    tenant_b = await make_tenant(client, platform, "Tenant B")
    checker_a = await make_key(client, auth(admin.key, tenant_a), scopes=["keys:verify"])
    key_a = await make_key(client, auth(admin.key, tenant_a), metadata={"who": "a"})
    key_b = await make_key(client, auth(admin.key, tenant_b), metadata={"who": "b"})

    foreign = await verify(client, auth(checker_a["key"]), key_b["key"])
    assert foreign["code"] == "unknown"
    assert foreign["keyId"] is None and foreign["tenantId"] is None and foreign["metadata"] is None
    assert foreign["scopes"] is None and foreign["name"] is None
    own = await verify(client, auth(checker_a["key"]), key_a["key"])
    assert own["code"] == "valid" and own["metadata"] == {"who": "a"}
    # A tenant key cannot widen its reach by naming another tenant.
    named = await client.post(
        "/v1/keys/verify", json={"key": key_b["key"]}, headers=auth(checker_a["key"], tenant_b)
    )
    assert named.status_code == 404
    # Even a revoked key of another tenant stays "unknown": nothing leaks about it.
    await client.post(f"/v1/keys/{key_b['id']}/revoke", headers=auth(admin.key, tenant_b))
    still_foreign = await verify(client, auth(checker_a["key"]), key_b["key"])
    assert still_foreign["code"] == "unknown" and still_foreign["keyId"] is None


async def test_platform_key_verifies_any_tenant_or_the_named_one(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    platform = auth(admin.key)
    tenant_a = await make_tenant(client, platform, "Tenant A")
    tenant_b = await make_tenant(client, platform, "Tenant B")
    key_a = await make_key(client, auth(admin.key, tenant_a))
    key_b = await make_key(client, auth(admin.key, tenant_b))
    for key, tenant in ((key_a, tenant_a), (key_b, tenant_b)):
        result = await verify(client, platform, key["key"])
        assert result["code"] == "valid" and result["tenantId"] == tenant
    restricted_ok = await verify(client, auth(admin.key, tenant_a), key_a["key"])
    assert restricted_ok["code"] == "valid" and restricted_ok["tenantId"] == tenant_a
    restricted_no = await verify(client, auth(admin.key, tenant_a), key_b["key"])
    assert restricted_no["code"] == "unknown" and restricted_no["tenantId"] is None
    own_restricted = await verify(client, auth(admin.key, admin.tenant_id), key_b["key"])
    assert own_restricted["code"] == "valid"
    # A platform-kind verifier key that is not admin behaves the same.
    verifier = await make_key(client, platform, scopes=["keys:verify"], kind="platform")
    assert (await verify(client, auth(verifier["key"]), key_b["key"]))["code"] == "valid"
    assert (await verify(client, auth(verifier["key"], tenant_a), key_b["key"]))["code"] == "unknown"


async def test_verify_counts_usage(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Any
) -> None:
    target = await make_key(client, admin_headers)
    for _ in range(4):
        assert (await verify(client, admin_headers, target["key"], ip="192.0.2.44"))["code"] == "valid"
    assert (await verify(client, admin_headers, target["key"], scopes=["admin"]))[
        "code"
    ] == "insufficient_scope"
    await runtime.usage.flush()
    shown = (await client.get(f"/v1/keys/{target['id']}", headers=admin_headers)).json()
    assert shown["usageCount"] == 4
    assert shown["lastUsedIp"] == "192.0.2.44"
    assert shown["lastUsedAt"] is not None
