"""Security events (ApiSecurityAuditEvent): what is recorded, the documented risk score, filters
and cursor pagination of ``GET /v1/security-events``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.enums import IntegrationEnvironment
from interlink.keys.format import generate_key
from interlink.keys.security import BASE_RISK, BURST_RISK, NEW_IP_RISK, SecurityEventType
from interlink.runtime import Runtime
from tests.api_helpers import make_key
from tests.conftest import auth


async def verify(client: httpx.AsyncClient, headers: dict[str, str], key: str, **extra: Any) -> str:
    response = await client.post("/v1/keys/verify", json={"key": key, **extra}, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["code"])


async def events(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/security-events", params=params, headers=headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def unknown_key() -> str:
    return generate_key(IntegrationEnvironment.PRODUCTION)


# -- the documented score ----------------------------------------------------------------------


def test_documented_constants() -> None:
    assert NEW_IP_RISK == 25 and BURST_RISK == 25
    assert BASE_RISK[SecurityEventType.REVOKED_KEY_USED] == max(BASE_RISK.values())
    assert set(BASE_RISK) == set(SecurityEventType)


async def test_failures_from_a_new_ip_and_bursts(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    ip = "203.0.113.50"
    for _ in range(6):
        assert await verify(client, admin_headers, unknown_key(), ip=ip) == "unknown"
    scored = list(reversed(await events(client, admin_headers, sourceIp=ip)))
    base = BASE_RISK[SecurityEventType.AUTH_FAILED]
    assert [e["riskScore"] for e in scored] == [
        base + NEW_IP_RISK,  # first failure ever from this IP
        base,
        base,
        base,
        base + BURST_RISK,  # the fifth failure within ten minutes
        base + BURST_RISK,
    ]
    assert scored[0]["details"]["riskFactors"] == {"newIp": True, "burst": False}
    assert scored[4]["details"]["riskFactors"] == {"newIp": False, "burst": True}
    assert all(e["eventType"] == "auth.failed" and e["reason"] == "unknown" for e in scored)
    assert all(e["tenantId"] is None and e["keyId"] is None for e in scored)

    clock.shift(timedelta(minutes=11))  # the burst window has passed; the IP is known now
    assert await verify(client, admin_headers, "garbage", ip=ip) == "malformed"
    latest = (await events(client, admin_headers, sourceIp=ip))[0]
    assert latest["riskScore"] == base and latest["reason"] == "malformed"
    assert await verify(client, admin_headers, unknown_key(), ip="203.0.113.51") == "unknown"
    assert (await events(client, admin_headers, sourceIp="203.0.113.51"))[0][
        "riskScore"
    ] == base + NEW_IP_RISK


async def test_new_ip_is_per_key_and_windowed(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    revoked_base = BASE_RISK[SecurityEventType.REVOKED_KEY_USED]
    created = await make_key(client, admin_headers)
    await client.post(f"/v1/keys/{created['id']}/revoke", headers=admin_headers)
    far = "198.51.100.7"
    assert await verify(client, admin_headers, created["key"], ip=far) == "revoked"
    assert await verify(client, admin_headers, created["key"], ip=far) == "revoked"
    # 127.0.0.1 is where the key was created and revoked from: not new for this key.
    assert (await client.get("/v1/keys", headers=auth(created["key"]))).status_code == 401
    used = await events(client, admin_headers, keyId=created["id"], eventType="key.revoked_used")
    assert [(e["sourceIp"], e["riskScore"]) for e in reversed(used)] == [
        (far, revoked_base + NEW_IP_RISK),
        (far, revoked_base),
        ("127.0.0.1", revoked_base),
    ]
    # Another key has never been seen from that IP: new for it.
    other = await make_key(client, admin_headers)
    await client.post(f"/v1/keys/{other['id']}/revoke", headers=admin_headers)
    assert await verify(client, admin_headers, other["key"], ip=far) == "revoked"
    assert (await events(client, admin_headers, keyId=other["id"]))[0][
        "riskScore"
    ] == revoked_base + NEW_IP_RISK
    # Past the new-IP window the address counts as new again.
    clock.shift(timedelta(days=runtime.settings.security_new_ip_window_days, minutes=1))
    assert await verify(client, admin_headers, created["key"], ip=far) == "revoked"
    latest = (await events(client, admin_headers, keyId=created["id"]))[0]
    assert latest["riskScore"] == revoked_base + NEW_IP_RISK


async def test_last_used_ip_is_not_new(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await make_key(client, admin_headers)
    assert await verify(client, admin_headers, created["key"], ip="192.0.2.10") == "valid"
    await runtime.usage.flush()
    await client.post(f"/v1/keys/{created['id']}/revoke", headers=admin_headers)
    assert await verify(client, admin_headers, created["key"], ip="192.0.2.10") == "revoked"
    assert await verify(client, admin_headers, created["key"], ip="192.0.2.11") == "revoked"
    used = await events(client, admin_headers, keyId=created["id"], eventType="key.revoked_used")
    base = BASE_RISK[SecurityEventType.REVOKED_KEY_USED]
    assert [(e["sourceIp"], e["riskScore"]) for e in reversed(used)] == [
        ("192.0.2.10", base),
        ("192.0.2.11", base + NEW_IP_RISK),
    ]


async def test_score_is_capped_at_100(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    ip = "203.0.113.99"
    for _ in range(4):
        await verify(client, admin_headers, unknown_key(), ip=ip)
    created = await make_key(client, admin_headers)
    await client.post(f"/v1/keys/{created['id']}/revoke", headers=admin_headers)
    assert await verify(client, admin_headers, created["key"], ip=ip) == "revoked"
    event = (await events(client, admin_headers, keyId=created["id"]))[0]
    assert event["details"]["riskFactors"] == {"newIp": True, "burst": True}
    assert event["riskScore"] == 100


async def test_base_score_of_every_event_type(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    def base(kind: SecurityEventType) -> int:
        return BASE_RISK[kind]

    key = await make_key(client, admin_headers, rateLimit={"limit": 1, "periodSeconds": 600})
    await client.patch(
        f"/v1/keys/{key['id']}", json={"scopes": ["keys:read", "keys:verify"]}, headers=admin_headers
    )
    await client.patch(f"/v1/keys/{key['id']}", json={"name": "only a rename"}, headers=admin_headers)
    rotated = (await client.post(f"/v1/keys/{key['id']}/rotate", headers=admin_headers)).json()
    lifecycle = await events(client, admin_headers, keyId=key["id"])
    assert [(e["eventType"], e["riskScore"]) for e in reversed(lifecycle)] == [
        ("key.created", base(SecurityEventType.KEY_CREATED)),
        ("key.updated", base(SecurityEventType.KEY_UPDATED)),
        ("key.rotated", base(SecurityEventType.KEY_ROTATED)),
    ]
    assert lifecycle[1]["details"]["fields"] == ["scopes"]
    assert all(e["details"]["riskFactors"] == {"newIp": False, "burst": False} for e in lifecycle)
    assert all(e["details"]["byKeyId"] == admin.key_id for e in lifecycle)

    # Each failure from its own fresh IP: base + the new-IP factor, never a burst.
    new_key = rotated["newKey"]
    assert await verify(client, admin_headers, new_key["key"], ip="192.0.2.100") == "valid"
    assert await verify(client, admin_headers, new_key["key"], ip="192.0.2.101") == "rate_limited"
    narrow = await make_key(client, admin_headers)
    assert await verify(client, admin_headers, narrow["key"], ip="192.0.2.102", scopes=["audit:read"]) == (
        "insufficient_scope"
    )
    fenced = await make_key(client, admin_headers, allowedIps=["10.0.0.0/8"])
    assert await verify(client, admin_headers, fenced["key"], ip="192.0.2.103") == "ip_denied"
    expiring = await make_key(client, admin_headers)
    await client.post(
        f"/v1/keys/{expiring['id']}/rotate", json={"gracePeriodSeconds": 0}, headers=admin_headers
    )
    assert await verify(client, admin_headers, expiring["key"], ip="192.0.2.104") == "expired"
    revoked = await make_key(client, admin_headers)
    await client.post(f"/v1/keys/{revoked['id']}/revoke", headers=admin_headers)
    assert await verify(client, admin_headers, revoked["key"], ip="192.0.2.105") == "revoked"
    assert await verify(client, admin_headers, unknown_key(), ip="192.0.2.106") == "unknown"
    expected = {
        "192.0.2.101": ("auth.rate_limited", SecurityEventType.RATE_LIMITED),
        "192.0.2.102": ("auth.insufficient_scope", SecurityEventType.INSUFFICIENT_SCOPE),
        "192.0.2.103": ("auth.ip_denied", SecurityEventType.IP_DENIED),
        "192.0.2.104": ("key.expired_used", SecurityEventType.EXPIRED_KEY_USED),
        "192.0.2.105": ("key.revoked_used", SecurityEventType.REVOKED_KEY_USED),
        "192.0.2.106": ("auth.failed", SecurityEventType.AUTH_FAILED),
    }
    for ip, (event_type, kind) in expected.items():
        found = await events(client, admin_headers, sourceIp=ip)
        assert [(e["eventType"], e["riskScore"]) for e in found] == [
            (event_type, base(kind) + NEW_IP_RISK)
        ], ip
    assert await events(client, admin_headers, sourceIp="192.0.2.100") == []  # success is not an event


async def test_event_records_request_context(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    bad = unknown_key()
    response = await client.get(
        "/v1/keys",
        headers={
            "Authorization": f"Bearer {bad}",
            "User-Agent": "scanner/2.0",
            "X-Correlation-Id": "corr-sec-1",
        },
    )
    assert response.status_code == 401
    event = (await events(client, admin_headers, eventType="auth.failed"))[0]
    assert event["userAgent"] == "scanner/2.0"
    assert event["correlationId"] == "corr-sec-1"
    assert event["sourceIp"] == "127.0.0.1"
    assert event["keyPrefix"] == bad[:14]
    assert event["id"].startswith("sev_")
    assert bad not in str(event)


# -- filters and pagination --------------------------------------------------------------------


async def test_filters(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    first = await make_key(client, admin_headers, name="first")
    await client.post(f"/v1/keys/{first['id']}/revoke", headers=admin_headers)
    await verify(client, admin_headers, first["key"], ip="192.0.2.1")
    await verify(client, admin_headers, unknown_key(), ip="192.0.2.2")
    clock.shift(timedelta(hours=2))
    middle = clock.utcnow() - timedelta(hours=1)
    second = await make_key(client, admin_headers, name="second")
    await verify(client, admin_headers, second["key"], ip="192.0.2.1", scopes=["admin"])

    everything = await events(client, admin_headers)
    assert [e["eventType"] for e in everything] == [
        "auth.insufficient_scope",
        "key.created",
        "auth.failed",
        "key.revoked_used",
        "key.revoked",
        "key.created",
        "key.created",  # the admin key, at first start
    ]
    by_type = await events(client, admin_headers, eventType="key.created")
    assert [e["keyId"] for e in by_type] == [second["id"], first["id"], admin.key_id]
    by_key = await events(client, admin_headers, keyId=first["id"])
    assert [e["eventType"] for e in by_key] == ["key.revoked_used", "key.revoked", "key.created"]
    by_ip = await events(client, admin_headers, sourceIp="192.0.2.1")
    assert [e["eventType"] for e in by_ip] == ["auth.insufficient_scope", "key.revoked_used"]
    risky = await events(client, admin_headers, minRisk=50)
    assert risky and all(e["riskScore"] >= 50 for e in risky)
    assert {e["eventType"] for e in risky} == {"key.revoked_used", "auth.failed", "auth.insufficient_scope"}
    assert await events(client, admin_headers, minRisk=100) == []
    since = await events(client, admin_headers, since=middle.isoformat())
    assert [e["eventType"] for e in since] == ["auth.insufficient_scope", "key.created"]
    until = await events(client, admin_headers, until=middle.isoformat())
    assert len(until) == 5 and {e["keyId"] for e in until if e["keyId"]} == {first["id"], admin.key_id}
    combined = await events(
        client,
        admin_headers,
        sourceIp="192.0.2.1",
        since=middle.isoformat(),
        eventType="auth.insufficient_scope",
    )
    assert len(combined) == 1 and combined[0]["keyId"] == second["id"]


async def test_bad_filters_are_422(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for params, field in (
        ({"minRisk": 101}, "minRisk"),
        ({"minRisk": "high"}, "minRisk"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2025-01-01T00:00:00"}, "until"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"after": "not-a-cursor"}, "after"),
    ):
        response = await client.get("/v1/security-events", params=params, headers=admin_headers)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == field


async def test_cursor_pagination(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for i in range(7):
        await verify(client, admin_headers, unknown_key(), ip=f"192.0.2.{i + 1}")
    everything = await events(client, admin_headers, limit=200)
    assert len(everything) == 8  # seven failures and the admin key's creation
    ids = [e["id"] for e in everything]
    assert ids == sorted(ids, reverse=True)
    walked: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if after:
            params["after"] = after
        response = await client.get("/v1/security-events", params=params, headers=admin_headers)
        page = response.json()
        walked.extend(e["id"] for e in page["data"])
        pages += 1
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        assert page["nextCursor"] == page["data"][-1]["id"]
        after = page["nextCursor"]
    assert pages == 3
    assert walked == ids
    filtered = await client.get(
        "/v1/security-events", params={"limit": 2, "eventType": "auth.failed"}, headers=admin_headers
    )
    body = filtered.json()
    assert body["hasMore"] is True and len(body["data"]) == 2
    rest = await events(client, admin_headers, eventType="auth.failed", after=body["nextCursor"], limit=50)
    assert len(rest) == 5 and all(e["eventType"] == "auth.failed" for e in rest)


async def test_events_are_tenant_scoped(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    platform = auth(admin.key)
    tenant_a = (await client.post("/v1/tenants", json={"name": "Sec A"}, headers=platform)).json()["id"]
    tenant_b = (await client.post("/v1/tenants", json={"name": "Sec B"}, headers=platform)).json()["id"]
    key_a = await make_key(client, auth(admin.key, tenant_a))
    key_b = await make_key(client, auth(admin.key, tenant_b))
    await client.post(f"/v1/keys/{key_b['id']}/revoke", headers=auth(admin.key, tenant_b))
    assert (await client.get("/v1/keys", headers=auth(key_b["key"]))).status_code == 401
    reader_a = await make_key(client, auth(admin.key, tenant_a), scopes=["audit:read"])
    seen_a = await events(client, auth(reader_a["key"]))
    assert {e["tenantId"] for e in seen_a} == {tenant_a}
    assert {e["keyId"] for e in seen_a} == {key_a["id"], reader_a["id"]}
    assert await events(client, auth(reader_a["key"]), keyId=key_b["id"]) == []
    seen_b = await events(client, auth(admin.key, tenant_b))
    assert [e["eventType"] for e in seen_b] == ["key.revoked_used", "key.revoked", "key.created"]
    home = await events(client, platform)
    assert not {e["keyId"] for e in home} & {key_a["id"], key_b["id"]}


def test_unattributed_failures_are_throttled_per_source_and_in_all() -> None:
    from datetime import timedelta

    from interlink.core import clock
    from interlink.core.db import Database
    from interlink.keys.security import (
        UNATTRIBUTED_EVENTS_PER_MINUTE,
        UNATTRIBUTED_EVENTS_PER_MINUTE_TOTAL,
        SecurityLog,
    )

    log = SecurityLog(Database("sqlite+aiosqlite:///:memory:"), 30)
    allowed = [log._allow_unattributed("203.0.113.7") for _ in range(UNATTRIBUTED_EVENTS_PER_MINUTE + 5)]
    assert allowed.count(True) == UNATTRIBUTED_EVENTS_PER_MINUTE
    # One IPv6 client rotating through its /64 counts as one source.
    rotating = [log._allow_unattributed(f"2001:db8:1:2::{i:x}") for i in range(50)]
    assert rotating.count(True) == UNATTRIBUTED_EVENTS_PER_MINUTE
    # Many distinct sources together stop at the total.
    many = [
        log._allow_unattributed(f"198.51.{i // 250}.{i % 250}")
        for i in range(2 * UNATTRIBUTED_EVENTS_PER_MINUTE_TOTAL)
    ]
    assert many.count(True) == UNATTRIBUTED_EVENTS_PER_MINUTE_TOTAL - 2 * UNATTRIBUTED_EVENTS_PER_MINUTE
    clock.shift(timedelta(seconds=61))
    assert log._allow_unattributed("203.0.113.7") is True  # a new minute
