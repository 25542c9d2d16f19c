"""API keys through the REST API: storage, show-once, scopes, platform keys, expiry, rotation,
revocation and allowed IP ranges. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.crypto import keyed_hash
from interlink.core.enums import IntegrationEnvironment
from interlink.keys.format import display_prefix, generate_key
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem, make_key, make_tenant, security_events
from tests.conftest import auth

# -- storage and show-once -------------------------------------------------------------------


async def test_database_stores_only_the_hmac(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await make_key(client, admin_headers, name="stored", scopes=["keys:read"])
    plaintext = created["key"]
    secret_part = plaintext[len("il_live_") + 6 :]
    async with runtime.db.unit_of_work(write=False) as session:
        row = (
            (await session.execute(sa.text("SELECT * FROM api_keys WHERE id = :id"), {"id": created["id"]}))
            .mappings()
            .one()
        )
    dumped = " ".join(str(value) for value in row.values())
    assert plaintext not in dumped
    assert secret_part not in dumped
    assert row["key_hash"] == keyed_hash(runtime.keys.pepper, plaintext)
    assert row["key_hash"] != keyed_hash(b"another pepper", plaintext)
    assert row["prefix"] == display_prefix(plaintext) == created["prefix"]
    assert plaintext.startswith(created["prefix"])


async def test_key_is_shown_once(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await make_key(client, admin_headers, name="once", scopes=["keys:read"])
    plaintext = created["key"]
    shown = await client.get(f"/v1/keys/{created['id']}", headers=admin_headers)
    assert shown.status_code == 200
    assert "key" not in shown.json()
    assert plaintext not in shown.text
    assert shown.json()["prefix"] == created["prefix"]
    listed = await client.get("/v1/keys", headers=admin_headers)
    assert listed.status_code == 200
    assert all("key" not in item for item in listed.json()["data"])
    assert plaintext not in listed.text
    updated = await client.patch(f"/v1/keys/{created['id']}", json={"name": "renamed"}, headers=admin_headers)
    assert updated.status_code == 200
    assert "key" not in updated.json() and plaintext not in updated.text
    revoked = await client.post(f"/v1/keys/{created['id']}/revoke", headers=admin_headers)
    assert "key" not in revoked.json() and plaintext not in revoked.text


async def test_created_key_fields(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    headers = auth(admin.key)
    expires = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
    created = await make_key(
        client,
        headers,
        name="full",
        scopes=["keys:verify", "keys:read"],
        environment="SANDBOX",
        expiresAt=expires.isoformat(),
        metadata={"plan": "pro", "n": 3},
        allowedIps=["10.1.2.3", "192.168.0.0/16", "2001:db8::/32"],
        rateLimit={"limit": 100, "periodSeconds": 30},
    )
    assert created["key"].startswith("il_test_")
    assert created["environment"] == "SANDBOX"
    assert created["scopes"] == ["keys:read", "keys:verify"]
    assert created["status"] == "ACTIVE"
    assert created["tenantId"] == admin.tenant_id
    assert created["kind"] == "tenant"
    assert datetime.fromisoformat(created["expiresAt"]) == expires
    assert created["metadata"] == {"plan": "pro", "n": 3}
    assert created["allowedIps"] == ["10.1.2.3/32", "192.168.0.0/16", "2001:db8::/32"]
    assert created["rateLimit"] == {"limit": 100, "periodSeconds": 30}
    assert created["usageCount"] == 0
    assert created["lastUsedAt"] is None
    assert created["createdByKeyId"] == admin.key_id


# -- scopes ----------------------------------------------------------------------------------

ROUTES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/keys", "keys:read", None),
    ("POST", "/v1/keys", "keys:write", {"name": "x", "scopes": ["keys:write"]}),
    ("POST", "/v1/keys/verify", "keys:verify", {"key": "il_live_nothing"}),
    ("GET", "/v1/audit-events", "audit:read", None),
    ("GET", "/v1/security-events", "audit:read", None),
    ("GET", "/v1/tenants", "tenants:read", None),
]


async def test_each_route_enforces_its_scope(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    all_scopes = sorted({scope for _, _, scope, _ in ROUTES})
    for method, path, scope, body in ROUTES:
        others = [s for s in all_scopes if s != scope]
        without = await make_key(client, admin_headers, name=f"without {scope}", scopes=others)
        with_only = await make_key(client, admin_headers, name=f"only {scope}", scopes=[scope])
        denied = await client.request(method, path, json=body, headers=auth(without["key"]))
        problem = assert_problem(denied, 403, "insufficient_scope")
        assert scope in problem["detail"]
        allowed = await client.request(method, path, json=body, headers=auth(with_only["key"]))
        assert allowed.status_code in (200, 201), (method, path, allowed.text)
        events = await security_events(
            client, admin_headers, keyId=without["id"], eventType="auth.insufficient_scope"
        )
        assert len(events) == 1, (method, path)
        assert events[0]["details"]["missingScopes"] == [scope]
        assert events[0]["reason"] == "insufficient_scope"
        assert events[0]["tenantId"] == without["tenantId"]


async def test_key_routes_need_keys_write(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    target = await make_key(client, admin_headers, name="target")
    reader = await make_key(client, admin_headers, name="reader", scopes=["keys:read"])
    headers = auth(reader["key"])
    for method, path, body in (
        ("PATCH", f"/v1/keys/{target['id']}", {"name": "x"}),
        ("POST", f"/v1/keys/{target['id']}/rotate", {}),
        ("POST", f"/v1/keys/{target['id']}/revoke", {}),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert_problem(response, 403, "insufficient_scope")
    shown = await client.get(f"/v1/keys/{target['id']}", headers=headers)
    assert shown.status_code == 200
    assert shown.json()["status"] == "ACTIVE" and shown.json()["name"] == "target"


async def test_no_scope_escalation(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    manager = await make_key(client, admin_headers, name="manager", scopes=["keys:read", "keys:write"])
    headers = auth(manager["key"])
    escalate = await client.post(
        "/v1/keys", json={"name": "more", "scopes": ["keys:read", "audit:read"]}, headers=headers
    )
    body = assert_problem(escalate, 403)
    assert "audit:read" in body["detail"]
    admin_grab = await client.post("/v1/keys", json={"name": "root", "scopes": ["admin"]}, headers=headers)
    assert_problem(admin_grab, 403)
    same = await client.post("/v1/keys", json={"name": "same", "scopes": ["keys:read"]}, headers=headers)
    assert same.status_code == 201
    patch = await client.patch(
        f"/v1/keys/{same.json()['id']}", json={"scopes": ["keys:read", "tenants:read"]}, headers=headers
    )
    assert_problem(patch, 403)
    after = await client.get(f"/v1/keys/{same.json()['id']}", headers=admin_headers)
    assert after.json()["scopes"] == ["keys:read"]
    listed = await client.get("/v1/keys", headers=admin_headers)
    assert {k["name"] for k in listed.json()["data"]} >= {"manager", "same"}
    assert not {"more", "root"} & {k["name"] for k in listed.json()["data"]}


async def test_admin_scope_implies_all(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    tenant_id = await make_tenant(client, admin_headers, "Admin Scope Co")
    tenant_admin = await make_key(
        client, auth(admin_headers["Authorization"][7:], tenant_id), scopes=["admin"]
    )
    headers = auth(tenant_admin["key"])
    for method, path, _scope, body in ROUTES:
        response = await client.request(method, path, json=body, headers=headers)
        assert response.status_code in (200, 201), (method, path, response.text)
    granted = await make_key(
        client, headers, scopes=["audit:read", "keys:write", "secrets:write", "webhooks:write"]
    )
    assert granted["tenantId"] == tenant_id
    verified = await client.post(
        "/v1/keys/verify",
        json={"key": tenant_admin["key"], "scopes": ["mappings:write", "audit:read"]},
        headers=headers,
    )
    assert verified.json()["valid"] is True


async def test_unknown_scope_is_refused(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post(
        "/v1/keys", json={"name": "x", "scopes": ["keys:fly"]}, headers=admin_headers
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"].startswith("scopes")
    empty = await client.post("/v1/keys", json={"name": "x", "scopes": []}, headers=admin_headers)
    assert assert_problem(empty, 422)["errors"][0]["field"] == "scopes"


# -- platform keys -------------------------------------------------------------------------


async def test_tenant_keys_cannot_create_or_see_platform_keys(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    # A tenant key with every scope, in the very tenant that holds the platform admin key.
    tenant_admin = await make_key(client, admin_headers, name="tenant admin", scopes=["admin"])
    headers = auth(tenant_admin["key"])
    refused = await client.post(
        "/v1/keys", json={"name": "p", "scopes": ["keys:read"], "kind": "platform"}, headers=headers
    )
    assert_problem(refused, 403)
    for method, path, body in (
        ("GET", f"/v1/keys/{admin.key_id}", None),
        ("PATCH", f"/v1/keys/{admin.key_id}", {"name": "pwned"}),
        ("POST", f"/v1/keys/{admin.key_id}/rotate", {}),
        ("POST", f"/v1/keys/{admin.key_id}/revoke", {}),
    ):
        response = await client.request(method, path, json=body, headers=headers)
        assert_problem(response, 404)
    listed = await client.get("/v1/keys", headers=headers)
    ids = {k["id"] for k in listed.json()["data"]}
    assert tenant_admin["id"] in ids
    assert admin.key_id not in ids
    for status in ("ACTIVE", "ROTATING", "EXPIRED", "REVOKED"):
        filtered = await client.get("/v1/keys", params={"status": status}, headers=headers)
        assert admin.key_id not in {k["id"] for k in filtered.json()["data"]}
    still = await client.get(f"/v1/keys/{admin.key_id}", headers=admin_headers)
    assert still.json()["status"] == "ACTIVE" and still.json()["name"] != "pwned"


async def test_platform_keys_only_for_own_tenant(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    other = await make_tenant(client, admin_headers, "Other Co")
    acting = await client.post(
        "/v1/keys",
        json={"name": "p", "scopes": ["keys:read"], "kind": "platform"},
        headers=auth(admin.key, other),
    )
    assert_problem(acting, 403)
    own = await make_key(
        client, admin_headers, name="platform reader", scopes=["tenants:read"], kind="platform"
    )
    assert own["kind"] == "platform"
    # A platform key sees every tenant; a tenant key only its own.
    tenants = await client.get("/v1/tenants", headers=auth(own["key"]))
    assert {t["id"] for t in tenants.json()["data"]} == {admin.tenant_id, other}
    # A platform key without keys:write cannot mint platform keys either.
    limited = await make_key(
        client, admin_headers, name="platform writer", scopes=["keys:write", "keys:read"], kind="platform"
    )
    made = await make_key(client, auth(limited["key"]), name="sub", scopes=["keys:read"], kind="platform")
    assert made["kind"] == "platform"
    grab = await client.post(
        "/v1/keys",
        json={"name": "sub2", "scopes": ["tenants:write"], "kind": "platform"},
        headers=auth(limited["key"]),
    )
    assert_problem(grab, 403)


# -- expiry ----------------------------------------------------------------------------------


async def test_expired_key_is_refused(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    created = await make_key(client, admin_headers, scopes=["keys:read"], expiresAt=expires.isoformat())
    headers = auth(created["key"])
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    clock.shift(timedelta(hours=1, seconds=1))
    refused = await client.get("/v1/keys", headers=headers)
    assert_problem(refused, 401, "expired")
    shown = await client.get(f"/v1/keys/{created['id']}", headers=admin_headers)
    assert shown.json()["status"] == "EXPIRED"
    expired = await client.get("/v1/keys", params={"status": "EXPIRED"}, headers=admin_headers)
    assert [k["id"] for k in expired.json()["data"]] == [created["id"]]
    active = await client.get("/v1/keys", params={"status": "ACTIVE"}, headers=admin_headers)
    assert created["id"] not in {k["id"] for k in active.json()["data"]}
    events = await security_events(client, admin_headers, keyId=created["id"], eventType="key.expired_used")
    assert len(events) == 1
    assert events[0]["reason"] == "expired"
    assert events[0]["sourceIp"] == "127.0.0.1"
    assert events[0]["keyPrefix"] == created["prefix"]
    # An expired key cannot be changed or rotated.
    assert_problem(
        await client.patch(f"/v1/keys/{created['id']}", json={"name": "n"}, headers=admin_headers), 409
    )
    assert_problem(await client.post(f"/v1/keys/{created['id']}/rotate", headers=admin_headers), 409)


async def test_expiry_must_be_in_the_future(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await client.post(
        "/v1/keys", json={"name": "x", "scopes": ["keys:read"], "expiresAt": past}, headers=admin_headers
    )
    assert assert_problem(response, 422)["errors"][0]["field"] == "expiresAt"
    naive = await client.post(
        "/v1/keys",
        json={"name": "x", "scopes": ["keys:read"], "expiresAt": "2999-01-01T00:00:00"},
        headers=admin_headers,
    )
    assert assert_problem(naive, 422)["errors"][0]["field"] == "expiresAt"


async def test_extending_and_clearing_expiry(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    expires = datetime.now(UTC) + timedelta(minutes=5)
    created = await make_key(client, admin_headers, expiresAt=expires.isoformat())
    headers = auth(created["key"])
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200  # cached now
    later = (expires + timedelta(hours=2)).isoformat()
    patched = await client.patch(
        f"/v1/keys/{created['id']}", json={"expiresAt": later}, headers=admin_headers
    )
    assert patched.status_code == 200
    clock.shift(timedelta(hours=1))
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    cleared = await client.patch(f"/v1/keys/{created['id']}", json={"expiresAt": None}, headers=admin_headers)
    assert cleared.json()["expiresAt"] is None
    clock.shift(timedelta(days=365))
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200


# -- rotation --------------------------------------------------------------------------------


async def test_rotation_with_grace(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await make_key(
        client, admin_headers, name="rotating", scopes=["keys:read"], metadata={"team": "a"}
    )
    old_headers = auth(created["key"])
    assert (await client.get("/v1/keys", headers=old_headers)).status_code == 200
    rotated = await client.post(
        f"/v1/keys/{created['id']}/rotate", json={"gracePeriodSeconds": 3600}, headers=admin_headers
    )
    assert rotated.status_code == 201, rotated.text
    body = rotated.json()
    new = body["newKey"]
    assert new["key"] != created["key"] and new["id"] != created["id"]
    assert "key" not in body["oldKey"]
    assert new["scopes"] == ["keys:read"] and new["metadata"] == {"team": "a"} and new["name"] == "rotating"
    assert new["rotatedFromId"] == created["id"]
    assert body["oldKey"]["rotatedToId"] == new["id"]
    assert body["oldKey"]["status"] == "ROTATING"
    grace_until = datetime.fromisoformat(body["oldKey"]["graceUntil"])
    assert timedelta(minutes=59) < grace_until - datetime.now(UTC) <= timedelta(hours=1)

    new_headers = auth(new["key"])
    assert (await client.get("/v1/keys", headers=new_headers)).status_code == 200
    assert (await client.get("/v1/keys", headers=old_headers)).status_code == 200
    shown = await client.get(f"/v1/keys/{created['id']}", headers=admin_headers)
    assert shown.json()["status"] == "ROTATING"
    assert shown.json()["graceUntil"] == body["oldKey"]["graceUntil"]
    rotating = await client.get("/v1/keys", params={"status": "ROTATING"}, headers=admin_headers)
    assert [k["id"] for k in rotating.json()["data"]] == [created["id"]]
    # A rotating key cannot be rotated again.
    assert_problem(await client.post(f"/v1/keys/{created['id']}/rotate", headers=admin_headers), 409)

    clock.shift(timedelta(seconds=3601))
    assert_problem(await client.get("/v1/keys", headers=old_headers), 401, "expired")
    assert (await client.get("/v1/keys", headers=new_headers)).status_code == 200
    shown = await client.get(f"/v1/keys/{created['id']}", headers=admin_headers)
    assert shown.json()["status"] == "EXPIRED"
    events = await security_events(client, admin_headers, keyId=created["id"])
    assert [e["eventType"] for e in events] == ["key.expired_used", "key.rotated", "key.created"]
    assert events[1]["details"]["newKeyId"] == new["id"]
    assert events[1]["details"]["gracePeriodSeconds"] == 3600


async def test_rotation_without_grace(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await make_key(client, admin_headers)
    old_headers = auth(created["key"])
    assert (await client.get("/v1/keys", headers=old_headers)).status_code == 200
    rotated = await client.post(
        f"/v1/keys/{created['id']}/rotate", json={"gracePeriodSeconds": 0}, headers=admin_headers
    )
    assert rotated.status_code == 201
    assert rotated.json()["oldKey"]["status"] == "EXPIRED"
    assert_problem(await client.get("/v1/keys", headers=old_headers), 401, "expired")
    assert (await client.get("/v1/keys", headers=auth(rotated.json()["newKey"]["key"]))).status_code == 200


async def test_rotation_default_grace_and_bad_input(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await make_key(client, admin_headers)
    rotated = await client.post(f"/v1/keys/{created['id']}/rotate", headers=admin_headers)
    assert rotated.status_code == 201
    grace_until = datetime.fromisoformat(rotated.json()["oldKey"]["graceUntil"])
    expected = timedelta(seconds=runtime.settings.default_rotation_grace_seconds)
    assert expected - timedelta(minutes=1) < grace_until - datetime.now(UTC) <= expected
    other = await make_key(client, admin_headers)
    for bad in (-1, 2_592_001, "soon"):
        response = await client.post(
            f"/v1/keys/{other['id']}/rotate", json={"gracePeriodSeconds": bad}, headers=admin_headers
        )
        assert assert_problem(response, 422)["errors"][0]["field"] == "gracePeriodSeconds"
    unknown = await client.post(f"/v1/keys/{other['id']}/rotate", json={"grace": 5}, headers=admin_headers)
    assert assert_problem(unknown, 422)["errors"][0]["field"] == "grace"
    missing = await client.post("/v1/keys/key_01J0000000000000000000000/rotate", headers=admin_headers)
    assert_problem(missing, 404)


async def test_rotating_a_revoked_key_conflicts(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await make_key(client, admin_headers)
    assert (await client.post(f"/v1/keys/{created['id']}/revoke", headers=admin_headers)).status_code == 200
    response = await client.post(f"/v1/keys/{created['id']}/rotate", headers=admin_headers)
    assert_problem(response, 409)
    listed = await client.get("/v1/keys", headers=admin_headers)
    assert len(listed.json()["data"]) == 2  # the admin key and the revoked one; nothing was minted


async def test_rotation_by_a_tenant_key_keeps_grants(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    tenant_id = await make_tenant(client, admin_headers, "Rotate Co")
    acting = auth(admin_headers["Authorization"][7:], tenant_id)
    manager = await make_key(
        client, acting, name="manager", scopes=["keys:write", "keys:read", "keys:verify"]
    )
    service = await make_key(client, acting, name="service", scopes=["keys:verify", "keys:read"])
    rotated = await client.post(f"/v1/keys/{service['id']}/rotate", headers=auth(manager["key"]))
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["newKey"]
    assert new["scopes"] == ["keys:read", "keys:verify"]
    assert new["tenantId"] == tenant_id and new["kind"] == "tenant"
    assert new["createdByKeyId"] == manager["id"]
    # A key may rotate itself (it holds its own grants).
    own = await client.post(f"/v1/keys/{manager['id']}/rotate", headers=auth(manager["key"]))
    assert own.status_code == 201, own.text


async def test_no_escalation_through_rotation(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    """Rotation returns a working copy of the key: rotating a more powerful key would hand the
    caller grants it does not hold."""
    tenant_id = await make_tenant(client, admin_headers, "Escalate Co")
    acting = auth(admin.key, tenant_id)
    manager = await make_key(client, acting, name="manager", scopes=["keys:write", "keys:read"])
    tenant_admin = await make_key(client, acting, name="tenant admin", scopes=["admin"])
    auditor = await make_key(client, acting, name="auditor", scopes=["audit:read", "keys:read"])
    for target in (tenant_admin, auditor):
        refused = await client.post(f"/v1/keys/{target['id']}/rotate", headers=auth(manager["key"]))
        assert_problem(refused, 403)
        shown = await client.get(f"/v1/keys/{target['id']}", headers=acting)
        assert shown.json()["status"] == "ACTIVE" and shown.json()["rotatedToId"] is None
    listed = await client.get("/v1/keys", headers=acting)
    assert len(listed.json()["data"]) == 3
    # A platform key without admin cannot rotate the admin platform key either.
    platform_writer = await make_key(
        client, admin_headers, name="pw", scopes=["keys:write", "keys:read"], kind="platform"
    )
    refused = await client.post(f"/v1/keys/{admin.key_id}/rotate", headers=auth(platform_writer["key"]))
    assert_problem(refused, 403)
    # The tenant admin itself may rotate the tenant admin key.
    allowed = await client.post(f"/v1/keys/{tenant_admin['id']}/rotate", headers=auth(tenant_admin["key"]))
    assert allowed.status_code == 201 and allowed.json()["newKey"]["scopes"] == ["admin"]


async def test_weaker_keys_cannot_change_or_revoke_stronger_ones(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    """A key may change, rotate or revoke only keys whose every scope it holds."""
    tenant_id = await make_tenant(client, admin_headers, "Pecking Order")
    acting = auth(admin.key, tenant_id)
    manager = await make_key(client, acting, name="manager", scopes=["keys:write", "keys:read"])
    tenant_admin = await make_key(client, acting, name="tenant admin", scopes=["admin"])
    peer = await make_key(client, acting, name="peer", scopes=["keys:read"])

    loosen = await client.patch(
        f"/v1/keys/{tenant_admin['id']}", json={"allowedIps": []}, headers=auth(manager["key"])
    )
    assert_problem(loosen, 403)
    revoke = await client.post(f"/v1/keys/{tenant_admin['id']}/revoke", headers=auth(manager["key"]))
    assert_problem(revoke, 403)
    shown = await client.get(f"/v1/keys/{tenant_admin['id']}", headers=acting)
    assert shown.json()["status"] == "ACTIVE"

    # Keys within the manager's own grants are fair game.
    renamed = await client.patch(
        f"/v1/keys/{peer['id']}", json={"name": "renamed"}, headers=auth(manager["key"])
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"
    revoked = await client.post(f"/v1/keys/{peer['id']}/revoke", headers=auth(manager["key"]))
    assert revoked.status_code == 200 and revoked.json()["status"] == "REVOKED"


# -- revocation ------------------------------------------------------------------------------


async def test_revocation_is_immediate(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await make_key(client, admin_headers, scopes=["keys:read"])
    headers = auth(created["key"])
    for _ in range(3):
        assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    assert runtime.cache.get(keyed_hash(runtime.keys.pepper, created["key"])) is not None
    revoked = await client.post(
        f"/v1/keys/{created['id']}/revoke", json={"reason": "leaked in a log"}, headers=admin_headers
    )
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "REVOKED"
    assert revoked.json()["revokedReason"] == "leaked in a log"
    assert revoked.json()["revokedAt"] is not None
    assert_problem(await client.get("/v1/keys", headers=headers), 401, "revoked")
    again = await client.post(f"/v1/keys/{created['id']}/revoke", headers=admin_headers)
    assert again.status_code == 200 and again.json()["revokedReason"] == "leaked in a log"
    assert_problem(
        await client.patch(f"/v1/keys/{created['id']}", json={"name": "z"}, headers=admin_headers), 409
    )
    events = await security_events(client, admin_headers, keyId=created["id"])
    assert [e["eventType"] for e in events] == ["key.revoked_used", "key.revoked", "key.created"]
    assert events[1]["reason"] == "revoked" and events[1]["details"]["reason"] == "leaked in a log"


async def test_revoking_a_rotating_key_ends_its_grace(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await make_key(client, admin_headers)
    rotated = await client.post(f"/v1/keys/{created['id']}/rotate", headers=admin_headers)
    assert (await client.get("/v1/keys", headers=auth(created["key"]))).status_code == 200
    assert (await client.post(f"/v1/keys/{created['id']}/revoke", headers=admin_headers)).status_code == 200
    assert_problem(await client.get("/v1/keys", headers=auth(created["key"])), 401, "revoked")
    assert (await client.get("/v1/keys", headers=auth(rotated.json()["newKey"]["key"]))).status_code == 200


async def test_a_key_cannot_revoke_itself(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    response = await client.post(f"/v1/keys/{admin.key_id}/revoke", headers=auth(admin.key))
    assert_problem(response, 409)
    assert (await client.get("/v1/keys", headers=auth(admin.key))).status_code == 200


# -- allowed IP ranges -----------------------------------------------------------------------


async def test_allowed_ip_ranges_are_enforced(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    outside = await make_key(client, admin_headers, allowedIps=["10.0.0.0/8", "2001:db8::/32"])
    denied = await client.get("/v1/keys", headers=auth(outside["key"]))
    assert_problem(denied, 403, "ip_denied")
    events = await security_events(client, admin_headers, keyId=outside["id"], eventType="auth.ip_denied")
    assert len(events) == 1
    assert events[0]["sourceIp"] == "127.0.0.1" and events[0]["reason"] == "ip_denied"
    inside = await make_key(client, admin_headers, allowedIps=["127.0.0.0/8"])
    assert (await client.get("/v1/keys", headers=auth(inside["key"]))).status_code == 200
    exact = await make_key(client, admin_headers, allowedIps=["127.0.0.1"])
    assert exact["allowedIps"] == ["127.0.0.1/32"]
    assert (await client.get("/v1/keys", headers=auth(exact["key"]))).status_code == 200


async def test_an_ipv4_client_of_an_ipv6_socket_is_its_ipv4_address(
    app: Any, client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """A server listening on ``::`` sees IPv4 clients as ``::ffff:a.b.c.d``: IPv4 ranges match them,
    and they are recorded by their IPv4 address."""
    inside = await make_key(client, admin_headers, allowedIps=["127.0.0.0/8"])
    outside = await make_key(client, admin_headers, allowedIps=["10.0.0.0/8"])
    transport = httpx.ASGITransport(app=app, client=("::ffff:127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as mapped:
        assert (await mapped.get("/v1/keys", headers=auth(inside["key"]))).status_code == 200
        assert_problem(await mapped.get("/v1/keys", headers=auth(outside["key"])), 403, "ip_denied")
    events = await security_events(client, admin_headers, keyId=outside["id"], eventType="auth.ip_denied")
    assert [e["sourceIp"] for e in events] == ["127.0.0.1"]


def test_forwarded_addresses_are_read_through_ipv4_mapped_proxies() -> None:
    from types import SimpleNamespace

    from interlink.http.auth import resolve_client_ip

    runtime: Any = SimpleNamespace(trusted_proxy_networks=[ipaddress.ip_network("10.0.0.0/8")])
    assert resolve_client_ip("::ffff:10.0.0.5", "203.0.113.9", runtime) == "203.0.113.9"
    assert resolve_client_ip("::ffff:10.0.0.5", "203.0.113.9, ::ffff:10.0.0.7", runtime) == "203.0.113.9"
    assert resolve_client_ip("10.0.0.5", "::FFFF:198.51.100.4", runtime) == "198.51.100.4"
    assert resolve_client_ip("::ffff:192.0.2.1", "203.0.113.9", runtime) == "192.0.2.1"  # not a proxy
    assert resolve_client_ip("2001:db8::1", "203.0.113.9", runtime) == "2001:db8::1"
    untrusting: Any = SimpleNamespace(trusted_proxy_networks=[])
    assert resolve_client_ip("::ffff:127.0.0.1", "203.0.113.9", untrusting) == "127.0.0.1"


async def test_narrowing_allowed_ips_applies_at_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = await make_key(client, admin_headers)
    headers = auth(created["key"])
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    patched = await client.patch(
        f"/v1/keys/{created['id']}", json={"allowedIps": ["192.0.2.0/24"]}, headers=admin_headers
    )
    assert patched.json()["allowedIps"] == ["192.0.2.0/24"]
    assert_problem(await client.get("/v1/keys", headers=headers), 403, "ip_denied")
    reopened = await client.patch(f"/v1/keys/{created['id']}", json={"allowedIps": []}, headers=admin_headers)
    assert reopened.json()["allowedIps"] == []
    assert (await client.get("/v1/keys", headers=headers)).status_code == 200


async def test_invalid_cidr_is_refused(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for bad in (["10.0.0.0/33"], ["not-an-ip"], ["10.0.0.1", "300.1.1.1"], [""]):
        response = await client.post(
            "/v1/keys", json={"name": "x", "scopes": ["keys:read"], "allowedIps": bad}, headers=admin_headers
        )
        body = assert_problem(response, 422)
        assert body["errors"][0]["field"] == "allowedIps"
    created = await make_key(client, admin_headers)
    patched = await client.patch(
        f"/v1/keys/{created['id']}", json={"allowedIps": ["1.2.3.4/99"]}, headers=admin_headers
    )
    assert assert_problem(patched, 422)["errors"][0]["field"] == "allowedIps"
    listed = await client.get("/v1/keys", headers=admin_headers)
    assert len(listed.json()["data"]) == 2


# -- authentication failures -----------------------------------------------------------------


async def test_bad_keys_get_401_with_reason_and_event(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    real = await make_key(client, admin_headers)
    position = 20
    flipped = "A" if real["key"][position] != "A" else "B"
    checksum_broken = real["key"][:position] + flipped + real["key"][position + 1 :]
    revoked = await make_key(client, admin_headers, name="revoked")
    await client.post(f"/v1/keys/{revoked['id']}/revoke", headers=admin_headers)
    unknown = generate_key(IntegrationEnvironment.PRODUCTION)
    cases = [
        (unknown, "unknown", "auth.failed"),
        ("il_live_short", "malformed", "auth.failed"),
        ("hello world", "malformed", "auth.failed"),
        (checksum_broken, "malformed", "auth.failed"),
        (revoked["key"], "revoked", "key.revoked_used"),
    ]
    for key, reason, _event in cases:
        response = await client.get("/v1/keys", headers={"Authorization": f"Bearer {key}"})
        body = assert_problem(response, 401, reason)
        assert body["correlationId"] == response.headers["x-correlation-id"]
    failures = await security_events(client, admin_headers, minRisk=1)
    failures = [e for e in failures if e["eventType"] in ("auth.failed", "key.revoked_used")]
    assert sorted((e["reason"], e["eventType"]) for e in failures) == sorted(
        (reason, event) for _, reason, event in cases
    )
    unattributed = [e for e in failures if e["eventType"] == "auth.failed"]
    assert all(e["tenantId"] is None and e["keyId"] is None for e in unattributed)
    assert {e["keyPrefix"] for e in unattributed if e["reason"] == "unknown"} == {display_prefix(unknown)}
    assert all(e["sourceIp"] == "127.0.0.1" for e in failures)
    revoked_event = next(e for e in failures if e["eventType"] == "key.revoked_used")
    assert revoked_event["tenantId"] == admin.tenant_id and revoked_event["keyId"] == revoked["id"]
    # The plaintext of a presented key is never stored in an event.
    for event in failures:
        assert unknown not in str(event) and checksum_broken not in str(event)


async def test_missing_key_gets_401(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"}):
        response = await client.get("/v1/keys", headers=headers)
        assert_problem(response, 401, "missing")


async def test_unattributed_events_are_platform_only(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    unknown = generate_key(IntegrationEnvironment.PRODUCTION)
    assert_problem(await client.get("/v1/keys", headers=auth(unknown)), 401, "unknown")
    assert len(await security_events(client, admin_headers, eventType="auth.failed")) == 1
    tenant_id = await make_tenant(client, admin_headers, "Unattributed Co")
    acting = auth(admin.key, tenant_id)
    assert await security_events(client, acting, eventType="auth.failed") == []
    reader = await make_key(client, acting, scopes=["audit:read"])
    assert await security_events(client, auth(reader["key"]), eventType="auth.failed") == []
    own_reader = await make_key(client, admin_headers, scopes=["audit:read"])
    assert await security_events(client, auth(own_reader["key"]), eventType="auth.failed") == []
