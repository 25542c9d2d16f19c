"""The first path every user takes: bootstrap, create a tenant, create and verify a key."""

from __future__ import annotations

import httpx

from tests.conftest import auth


async def test_tenant_and_key_round_trip(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await client.post("/v1/tenants", json={"name": "Acme Inc"}, headers=admin_headers)
    assert created.status_code == 201, created.text
    tenant = created.json()
    assert tenant["slug"] == "acme-inc"

    made = await client.post(
        "/v1/keys",
        json={"name": "backend", "scopes": ["keys:read", "keys:verify"]},
        headers=auth(admin_headers["Authorization"][7:], tenant["id"]),
    )
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["tenantId"] == tenant["id"]
    assert key["key"].startswith("il_live_")

    listed = await client.get("/v1/keys", headers=auth(key["key"]))
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["data"]] == [key["id"]]

    verified = await client.post("/v1/keys/verify", json={"key": key["key"]}, headers=auth(key["key"]))
    assert verified.json()["valid"] is True
    assert verified.json()["tenantId"] == tenant["id"]
