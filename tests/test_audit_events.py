"""The audit trail: every mutation writes a row (who, what, tenant, correlation id, changed fields,
never a secret), platform acts for another tenant carry both identities, and
``GET /v1/audit-events`` filters and paginates."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.crypto import keyed_hash
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem
from tests.conftest import auth


def with_cid(headers: dict[str, str], correlation_id: str) -> dict[str, str]:
    return {**headers, "X-Correlation-Id": correlation_id, "User-Agent": "audit-test/1.0"}


async def audit_rows(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit-events", params=params, headers=headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def one_row(client: httpx.AsyncClient, headers: dict[str, str], correlation_id: str) -> dict[str, Any]:
    rows = await audit_rows(client, headers, correlationId=correlation_id)
    mutations = [r for r in rows if r["action"] != "platform.accessed"]
    assert len(mutations) == 1, rows
    return mutations[0]


async def all_audit_text(runtime: Runtime) -> str:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = (await session.execute(sa.text("SELECT * FROM audit_events"))).mappings().all()
    return json.dumps([{k: str(v) for k, v in row.items()} for row in rows])


async def test_tenant_mutations_are_audited(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    created = await client.post(
        "/v1/tenants",
        json={"name": "Audited Co", "metadata": {"tier": "gold"}},
        headers=with_cid(admin_headers, "cid-tenant-create"),
    )
    assert created.status_code == 201
    tenant_id = created.json()["id"]
    acting = auth(admin.key, tenant_id)
    row = await one_row(client, acting, "cid-tenant-create")
    assert row["action"] == "tenant.created"
    assert row["resourceType"] == "tenant" and row["resourceId"] == tenant_id
    assert row["tenantId"] == tenant_id
    assert row["actorKeyId"] == admin.key_id and row["actorTenantId"] == admin.tenant_id
    assert row["actorType"] == "api_key"
    assert row["sourceIp"] == "127.0.0.1" and row["userAgent"] == "audit-test/1.0"
    assert row["changes"] == {
        "name": {"old": None, "new": "Audited Co"},
        "slug": {"old": None, "new": "audited-co"},
        "metadata": {"old": None, "new": {"tier": "gold"}},
    }
    assert row["id"].startswith("aud_")

    updated = await client.patch(
        f"/v1/tenants/{tenant_id}",
        json={"name": "Audited Inc"},
        headers=with_cid(admin_headers, "cid-tenant-upd"),
    )
    assert updated.status_code == 200
    row = await one_row(client, acting, "cid-tenant-upd")
    assert row["action"] == "tenant.updated" and row["tenantId"] == tenant_id
    assert row["changes"] == {"name": {"old": "Audited Co", "new": "Audited Inc"}}
    assert row["actorTenantId"] == admin.tenant_id


async def test_key_mutations_are_audited_without_secrets(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    made = await client.post(
        "/v1/keys",
        json={"name": "audited", "scopes": ["keys:read"], "metadata": {"team": "x"}},
        headers=with_cid(admin_headers, "cid-key-create"),
    )
    key = made.json()
    row = await one_row(client, admin_headers, "cid-key-create")
    assert (
        row["action"] == "key.created" and row["resourceType"] == "api_key" and row["resourceId"] == key["id"]
    )
    assert row["tenantId"] == admin.tenant_id and row["actorKeyId"] == admin.key_id
    assert row["changes"]["name"] == {"old": None, "new": "audited"}
    assert row["changes"]["scopes"] == {"old": None, "new": ["keys:read"]}
    assert row["changes"]["status"] == {"old": None, "new": "ACTIVE"}
    assert row["changes"]["metadata"] == {"old": None, "new": {"team": "x"}}

    await client.patch(
        f"/v1/keys/{key['id']}",
        json={"name": "renamed", "allowedIps": ["127.0.0.0/8"]},
        headers=with_cid(admin_headers, "cid-key-update"),
    )
    row = await one_row(client, admin_headers, "cid-key-update")
    assert row["action"] == "key.updated"
    assert row["changes"] == {
        "allowedIps": {"old": [], "new": ["127.0.0.0/8"]},
        "name": {"old": "audited", "new": "renamed"},
    }

    rotated = await client.post(
        f"/v1/keys/{key['id']}/rotate",
        json={"gracePeriodSeconds": 60},
        headers=with_cid(admin_headers, "cid-key-rotate"),
    )
    new_key = rotated.json()["newKey"]
    rows = await audit_rows(client, admin_headers, correlationId="cid-key-rotate")
    assert sorted((r["action"], r["resourceId"]) for r in rows) == sorted(
        [("key.rotated", key["id"]), ("key.created", new_key["id"])]
    )
    rotation = next(r for r in rows if r["action"] == "key.rotated")
    assert rotation["changes"]["status"] == {"old": "ACTIVE", "new": "ROTATING"}
    assert rotation["changes"]["rotatedToId"] == {"old": None, "new": new_key["id"]}
    assert rotation["changes"]["graceUntil"]["old"] is None
    assert rotation["changes"]["graceUntil"]["new"] == rotated.json()["oldKey"]["graceUntil"].replace(
        "Z", "+00:00"
    )

    await client.post(
        f"/v1/keys/{new_key['id']}/revoke",
        json={"reason": "done"},
        headers=with_cid(admin_headers, "cid-key-revoke"),
    )
    row = await one_row(client, admin_headers, "cid-key-revoke")
    assert row["action"] == "key.revoked" and row["resourceId"] == new_key["id"]
    assert row["changes"]["status"] == {"old": "ACTIVE", "new": "REVOKED"}
    assert row["changes"]["revokedReason"] == {"old": None, "new": "done"}
    # Revoking again changes nothing and writes nothing.
    await client.post(f"/v1/keys/{new_key['id']}/revoke", headers=with_cid(admin_headers, "cid-key-revoke-2"))
    assert await audit_rows(client, admin_headers, correlationId="cid-key-revoke-2") == []

    text = await all_audit_text(runtime)
    for plaintext in (key["key"], new_key["key"], admin.key):
        assert plaintext not in text
        assert plaintext[len(key["prefix"]) :] not in text
        assert keyed_hash(runtime.keys.pepper, plaintext) not in text


async def test_failed_mutations_write_nothing(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    reader = (
        await client.post(
            "/v1/keys", json={"name": "r", "scopes": ["keys:read", "keys:write"]}, headers=admin_headers
        )
    ).json()
    attempts = [
        ("POST", "/v1/keys", {"name": "x", "scopes": ["admin"]}, auth(reader["key"])),  # escalation: 403
        (
            "POST",
            "/v1/keys",
            {"name": "x", "scopes": ["keys:read"], "allowedIps": ["nope"]},
            admin_headers,
        ),  # 422
        ("POST", f"/v1/keys/{admin.key_id}/revoke", {}, admin_headers),  # self-revocation: 409
        ("POST", "/v1/tenants", {"name": "x"}, auth(reader["key"])),  # not a platform key: 403
        ("PATCH", f"/v1/keys/{reader['id']}", {"scopes": ["keys:fly"]}, admin_headers),  # 422
    ]
    for i, (method, path, body, headers) in enumerate(attempts):
        response = await client.request(method, path, json=body, headers=with_cid(headers, f"cid-fail-{i}"))
        assert 400 <= response.status_code < 500, response.text
        assert await audit_rows(client, admin_headers, correlationId=f"cid-fail-{i}") == []


async def test_platform_acts_record_both_identities(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    tenant_id = (await client.post("/v1/tenants", json={"name": "Target"}, headers=admin_headers)).json()[
        "id"
    ]
    acting = auth(admin.key, tenant_id)
    made = await client.post(
        "/v1/keys",
        json={"name": "for target", "scopes": ["audit:read"]},
        headers=with_cid(acting, "cid-act-create"),
    )
    target_key = made.json()
    assert target_key["tenantId"] == tenant_id
    tenant_reader = auth(target_key["key"])
    row = await one_row(client, tenant_reader, "cid-act-create")
    assert row["action"] == "key.created"
    assert row["tenantId"] == tenant_id and row["actorTenantId"] == admin.tenant_id
    assert row["actorKeyId"] == admin.key_id

    for method, path, body, cid in (
        ("PATCH", f"/v1/keys/{target_key['id']}", {"name": "renamed"}, "cid-act-update"),
        ("POST", f"/v1/keys/{target_key['id']}/rotate", {"gracePeriodSeconds": 0}, "cid-act-rotate"),
    ):
        response = await client.request(method, path, json=body, headers=with_cid(acting, cid))
        assert response.status_code in (200, 201), response.text
        rows = await audit_rows(
            client, tenant_reader if cid != "cid-act-rotate" else acting, correlationId=cid
        )
        assert rows and all(
            r["tenantId"] == tenant_id
            and r["actorTenantId"] == admin.tenant_id
            and r["actorKeyId"] == admin.key_id
            for r in rows
        )

    # Reads for another tenant are audited as platform.accessed, in the target tenant.
    read = await client.get(f"/v1/keys/{target_key['id']}", headers=with_cid(acting, "cid-act-read"))
    assert read.status_code == 200
    rows = await audit_rows(client, acting, correlationId="cid-act-read")
    assert len(rows) == 1
    access = rows[0]
    assert access["action"] == "platform.accessed"
    assert access["tenantId"] == tenant_id and access["actorTenantId"] == admin.tenant_id
    assert access["actorKeyId"] == admin.key_id
    assert access["resourceType"] == "route" and access["resourceId"] == f"/v1/keys/{target_key['id']}"
    assert access["changes"] == {
        "method": {"old": None, "new": "GET"},
        "path": {"old": None, "new": f"/v1/keys/{target_key['id']}"},
    }
    # A NUL in the path (%00) is recorded as U+FFFD, and the read answers as it would without it.
    odd = await client.get("/v1/keys/key_%00x", headers=with_cid(acting, "cid-act-nul"))
    assert_problem(odd, 404)
    (nul_row,) = await audit_rows(client, acting, correlationId="cid-act-nul")
    assert nul_row["resourceId"] == "/v1/keys/key_\ufffdx"
    assert nul_row["changes"]["path"]["new"] == "/v1/keys/key_\ufffdx"
    # The home tenant's own trail does not mix in the other tenant's rows.
    home = await audit_rows(client, admin_headers, limit=200)
    assert all(r["tenantId"] == admin.tenant_id for r in home)
    assert not [r for r in home if r["correlationId"] in ("cid-act-read", "cid-act-create")]


async def test_own_tenant_reads_are_not_audited(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    await client.get("/v1/keys", headers=with_cid(admin_headers, "cid-own-read"))
    await client.get("/v1/keys", headers=with_cid(auth(admin.key, admin.tenant_id), "cid-own-read-2"))
    reader = (
        await client.post("/v1/keys", json={"name": "r", "scopes": ["keys:read"]}, headers=admin_headers)
    ).json()
    await client.get("/v1/keys", headers=with_cid(auth(reader["key"]), "cid-own-read-3"))
    for cid in ("cid-own-read", "cid-own-read-2", "cid-own-read-3"):
        assert await audit_rows(client, admin_headers, correlationId=cid) == []


async def test_tenant_keys_see_only_their_tenants_trail(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    tenant_a = (await client.post("/v1/tenants", json={"name": "Trail A"}, headers=admin_headers)).json()[
        "id"
    ]
    tenant_b = (await client.post("/v1/tenants", json={"name": "Trail B"}, headers=admin_headers)).json()[
        "id"
    ]
    reader_a = (
        await client.post(
            "/v1/keys", json={"name": "ra", "scopes": ["audit:read"]}, headers=auth(admin.key, tenant_a)
        )
    ).json()
    await client.post(
        "/v1/keys", json={"name": "kb", "scopes": ["keys:read"]}, headers=auth(admin.key, tenant_b)
    )
    seen = await audit_rows(client, auth(reader_a["key"]), limit=200)
    assert {r["tenantId"] for r in seen} == {tenant_a}
    assert {r["action"] for r in seen} == {"tenant.created", "key.created"}
    named_b = await client.get("/v1/audit-events", headers=auth(reader_a["key"], tenant_b))
    assert named_b.status_code == 404


async def test_filters_and_pagination(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    manager = (
        await client.post(
            "/v1/keys", json={"name": "manager", "scopes": ["keys:write", "keys:read"]}, headers=admin_headers
        )
    ).json()
    made = []
    for i in range(5):
        response = await client.post(
            "/v1/keys", json={"name": f"k{i}", "scopes": ["keys:read"]}, headers=auth(manager["key"])
        )
        made.append(response.json())
    clock.shift(timedelta(hours=3))
    middle = clock.utcnow() - timedelta(hours=1)
    await client.post(f"/v1/keys/{made[0]['id']}/revoke", headers=admin_headers)
    await client.patch(f"/v1/keys/{made[1]['id']}", json={"name": "renamed"}, headers=auth(manager["key"]))

    everything = await audit_rows(client, admin_headers, limit=200)
    # bootstrap: tenant.created (in the default tenant) and the admin key; then manager + 5 keys + 2 changes
    assert [r["action"] for r in everything][:2] == ["key.updated", "key.revoked"]
    ids = [r["id"] for r in everything]
    assert ids == sorted(ids, reverse=True)

    by_action = await audit_rows(client, admin_headers, action="key.created")
    assert {r["resourceId"] for r in by_action} >= {m["id"] for m in made} | {manager["id"]}
    by_actor = await audit_rows(client, admin_headers, actorKeyId=manager["id"])
    assert [r["resourceId"] for r in by_actor] == [made[1]["id"]] + [m["id"] for m in reversed(made)]
    by_resource = await audit_rows(client, admin_headers, resourceType="api_key", resourceId=made[0]["id"])
    assert [r["action"] for r in by_resource] == ["key.revoked", "key.created"]
    tenants_only = await audit_rows(client, admin_headers, resourceType="tenant")
    assert [r["action"] for r in tenants_only] == ["tenant.created"]
    since = await audit_rows(client, admin_headers, since=middle.isoformat())
    assert [r["action"] for r in since] == ["key.updated", "key.revoked"]
    until = await audit_rows(client, admin_headers, until=middle.isoformat(), limit=200)
    assert len(until) == len(everything) - 2
    assert await audit_rows(client, admin_headers, action="key.revoked", actorKeyId=manager["id"]) == []

    walked: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 4}
        if after:
            params["after"] = after
        page = (await client.get("/v1/audit-events", params=params, headers=admin_headers)).json()
        walked.extend(r["id"] for r in page["data"])
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        after = page["nextCursor"]
    assert walked == ids

    for params, field in (
        ({"limit": 0}, "limit"),
        ({"after": "garbage"}, "after"),
        ({"since": "2025-01-01T00:00:00"}, "since"),
        ({"until": "tomorrow"}, "until"),
    ):
        response = await client.get("/v1/audit-events", params=params, headers=admin_headers)
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == field


async def test_audit_read_scope_required(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    key = (
        await client.post("/v1/keys", json={"name": "k", "scopes": ["keys:read"]}, headers=admin_headers)
    ).json()
    response = await client.get("/v1/audit-events", headers=auth(key["key"]))
    assert response.status_code == 403
    assert response.json()["reason"] == "insufficient_scope"


def test_diff_records_changed_fields_and_redacts_secrets() -> None:
    from datetime import UTC, datetime

    from interlink.core import audit

    moment = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    changes = audit.diff(
        {"name": "a", "same": 1, "clientSecret": "s3cr3t-old", "keyHash": None, "expiresAt": None},
        {"name": "b", "same": 1, "clientSecret": "s3cr3t-new", "keyHash": "abc123", "expiresAt": moment},
    )
    assert changes == {
        "name": {"old": "a", "new": "b"},
        "clientSecret": {"old": "[redacted]", "new": "[redacted]"},
        "keyHash": {"old": None, "new": "[redacted]"},
        "expiresAt": {"old": None, "new": "2030-01-02T03:04:05+00:00"},
    }
    removed = audit.diff({"password": "hunter2"}, {"password": None})
    assert removed == {"password": {"old": "[redacted]", "new": None}}
    assert "hunter2" not in str(removed) and "s3cr3t" not in str(changes)
