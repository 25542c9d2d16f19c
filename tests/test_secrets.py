"""Encrypted secrets: REST API, service (reveal, binding), risk score, master key rotation and CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from datetime import datetime, timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.actor import Actor, system_actor
from interlink.core.crypto import Keyring, generate_master_key, local_secrets_path, parse_master_keys
from interlink.core.enums import DeliveryChannel, TokenType
from interlink.core.errors import NotFound
from interlink.core.models import AuditEvent, IntegrationSecret
from interlink.core.secrets import (
    MAX_VALUE_BYTES,
    ReencryptResult,
    SecretExpired,
    SecretSpec,
    SecretStore,
    SecretUnreadable,
    _reencrypt_batch,
    assess_risk,
    count_by_key_id,
    reencrypt_all,
)
from interlink.core.tenancy import create_tenant
from interlink.runtime import Runtime
from tests.cli_runner import run_interlink
from tests.conftest import TEST_PEPPER, auth, make_settings

VALUE = "sk_live_Zq81-unique-secret-value-7f3a9c"
K1 = generate_master_key("k1")
K2 = generate_master_key("k2")


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "stripe", "value": VALUE, "tokenType": "API_KEY"}
    body.update(overrides)
    return body


def _field_errors(response: httpx.Response) -> list[str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [e["field"] for e in response.json()["errors"]]


async def _tenant_key(
    client: httpx.AsyncClient, admin_key: str, tenant_id: str | None, scopes: list[str]
) -> str:
    made = await client.post(
        "/v1/keys", json={"name": "svc", "scopes": scopes}, headers=auth(admin_key, tenant_id)
    )
    assert made.status_code == 201, made.text
    return str(made.json()["key"])


# -- REST API --------------------------------------------------------------------------------


async def test_create_list_get_rotate_delete(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    responses: list[httpx.Response] = []
    created = await client.post(
        "/v1/secrets",
        json=_body(metadata={"provider": "stripe"}, ownerType="connection", ownerId="conn_1"),
        headers=admin_headers,
    )
    responses.append(created)
    assert created.status_code == 201, created.text
    info = created.json()
    assert info["id"].startswith("sec_")
    assert info["tenantId"] == admin.tenant_id
    assert info["name"] == "stripe"
    assert info["tokenType"] == "API_KEY"
    assert (info["ownerType"], info["ownerId"]) == ("connection", "conn_1")
    assert info["keyId"] == "test1"
    assert info["version"] == 1
    assert info["metadata"] == {"provider": "stripe"}
    assert info["lastRotatedAt"] is None
    assert info["accessCount"] == 0 and info["lastAccessedAt"] is None
    created_at = clock.as_utc(_dt(info["createdAt"]))
    assert _dt(info["rotateBy"]) - created_at == timedelta(days=90)
    assert info["riskScore"] == 10
    assert info["riskFactors"] == [{"code": "tokenType", "points": 10}]
    assert "value" not in info and "ciphertext" not in info

    default_owner = await client.post(
        "/v1/secrets", json=_body(name="hook", tokenType="WEBHOOK_SECRET"), headers=admin_headers
    )
    responses.append(default_owner)
    assert default_owner.status_code == 201, default_owner.text
    assert (default_owner.json()["ownerType"], default_owner.json()["ownerId"]) == ("tenant", admin.tenant_id)

    got = await client.get(f"/v1/secrets/{info['id']}", headers=admin_headers)
    responses.append(got)
    assert got.status_code == 200
    assert got.json()["name"] == "stripe"

    listed = await client.get("/v1/secrets", headers=admin_headers)
    responses.append(listed)
    assert [s["name"] for s in listed.json()["data"]] == ["hook", "stripe"]  # newest first
    by_owner = await client.get(
        "/v1/secrets", params={"ownerType": "connection", "ownerId": "conn_1"}, headers=admin_headers
    )
    responses.append(by_owner)
    assert [s["id"] for s in by_owner.json()["data"]] == [info["id"]]
    by_type = await client.get("/v1/secrets", params={"ownerType": "tenant"}, headers=admin_headers)
    assert [s["name"] for s in by_type.json()["data"]] == ["hook"]

    new_value = VALUE + "-rotated"
    rotated = await client.post(
        f"/v1/secrets/{info['id']}/rotate", json={"value": new_value}, headers=admin_headers
    )
    responses.append(rotated)
    assert rotated.status_code == 200, rotated.text
    after = rotated.json()
    assert after["version"] == 2
    assert after["lastRotatedAt"] is not None
    assert _dt(after["rotateBy"]) - _dt(after["lastRotatedAt"]) == timedelta(days=90)
    assert after["createdAt"] == info["createdAt"]

    chosen = (clock.utcnow() + timedelta(days=7)).replace(microsecond=0)
    rotated_again = await client.post(
        f"/v1/secrets/{info['id']}/rotate",
        json={"value": VALUE + "-3", "rotateBy": chosen.isoformat()},
        headers=admin_headers,
    )
    responses.append(rotated_again)
    assert rotated_again.json()["version"] == 3
    assert _dt(rotated_again.json()["rotateBy"]) == chosen

    deleted = await client.delete(f"/v1/secrets/{info['id']}", headers=admin_headers)
    responses.append(deleted)
    assert deleted.status_code == 204
    assert deleted.content == b""
    gone = await client.get(f"/v1/secrets/{info['id']}", headers=admin_headers)
    assert gone.status_code == 404
    assert gone.headers["content-type"].startswith("application/problem+json")
    again = await client.delete(f"/v1/secrets/{info['id']}", headers=admin_headers)
    assert again.status_code == 404

    for response in responses:
        assert VALUE not in response.text


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_pagination(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    for i in range(5):
        made = await client.post("/v1/secrets", json=_body(name=f"s{i}"), headers=admin_headers)
        assert made.status_code == 201
    first = (await client.get("/v1/secrets", params={"limit": 2}, headers=admin_headers)).json()
    assert [s["name"] for s in first["data"]] == ["s4", "s3"]
    assert first["hasMore"] is True
    second = (
        await client.get(
            "/v1/secrets", params={"limit": 2, "after": first["nextCursor"]}, headers=admin_headers
        )
    ).json()
    assert [s["name"] for s in second["data"]] == ["s2", "s1"]
    third = (
        await client.get(
            "/v1/secrets", params={"limit": 2, "after": second["nextCursor"]}, headers=admin_headers
        )
    ).json()
    assert [s["name"] for s in third["data"]] == ["s0"]
    assert third["hasMore"] is False and third["nextCursor"] is None
    bad = await client.get("/v1/secrets", params={"after": "nope"}, headers=admin_headers)
    assert _field_errors(bad) == ["after"]


async def test_duplicate_name_is_409(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    assert (await client.post("/v1/secrets", json=_body(), headers=admin_headers)).status_code == 201
    dup = await client.post("/v1/secrets", json=_body(value="other"), headers=admin_headers)
    assert dup.status_code == 409
    assert dup.json()["type"] == "urn:interlink:problem:conflict"
    assert "stripe" in dup.json()["detail"]
    listed = await client.get("/v1/secrets", headers=admin_headers)
    assert len(listed.json()["data"]) == 1


async def test_same_name_in_another_tenant_is_fine(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    other = await client.post("/v1/tenants", json={"name": "Other"}, headers=admin_headers)
    assert (await client.post("/v1/secrets", json=_body(), headers=admin_headers)).status_code == 201
    made = await client.post("/v1/secrets", json=_body(), headers=auth(admin.key, other.json()["id"]))
    assert made.status_code == 201, made.text
    assert made.json()["tenantId"] == other.json()["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_body(value="a" * (MAX_VALUE_BYTES + 1)), "value"),
        (
            _body(value="é" * (MAX_VALUE_BYTES // 2 + 1)),
            "value",
        ),  # within the character limit, too many bytes
        (_body(value=""), "value"),
        (_body(value=123), "value"),
        (_body(tokenType="PASSWORD"), "tokenType"),
        (_body(name=""), "name"),
        (_body(name=" padded "), "name"),
        (_body(ownerId="conn_1"), "ownerType"),
        (_body(ownerType="connection"), "ownerId"),
        (_body(ownerType="Not Valid", ownerId="x"), "ownerType"),
        (_body(ownerType="connection", ownerId="has space"), "ownerId"),
        (_body(rotateBy="2001-01-01T00:00:00Z"), "rotateBy"),
        (_body(expiresAt="2001-01-01T00:00:00Z"), "expiresAt"),
        (_body(rotateBy="2999-01-01T00:00:00"), "rotateBy"),  # no timezone
        (_body(metadata={"blob": "x" * 20_000}), "metadata"),
        (_body(metadata=[1, 2]), "metadata"),
        (_body(unexpected=True), "unexpected"),
        ({"name": "x", "tokenType": "API_KEY"}, "value"),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/secrets", json=body, headers=admin_headers)
    assert field in _field_errors(response)
    assert VALUE not in response.text
    listed = await client.get("/v1/secrets", headers=admin_headers)
    assert listed.json()["data"] == []


async def test_rotate_bad_input(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    secret = (await client.post("/v1/secrets", json=_body(), headers=admin_headers)).json()
    url = f"/v1/secrets/{secret['id']}/rotate"
    assert _field_errors(await client.post(url, json={}, headers=admin_headers)) == ["value"]
    too_big = await client.post(url, json={"value": "b" * (MAX_VALUE_BYTES + 1)}, headers=admin_headers)
    assert _field_errors(too_big) == ["value"]
    past = await client.post(
        url, json={"value": "new", "rotateBy": "2001-01-01T00:00:00Z"}, headers=admin_headers
    )
    assert _field_errors(past) == ["rotateBy"]
    missing = await client.post(
        "/v1/secrets/sec_01M89XPD3TD96A2CX5AP2F3M6Q/rotate", json={"value": "v"}, headers=admin_headers
    )
    assert missing.status_code == 404
    unchanged = await client.get(f"/v1/secrets/{secret['id']}", headers=admin_headers)
    assert unchanged.json()["version"] == 1


async def test_exactly_max_size_value_is_accepted(
    client: httpx.AsyncClient, runtime: Runtime, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    value = "z" * MAX_VALUE_BYTES
    made = await client.post("/v1/secrets", json=_body(value=value), headers=admin_headers)
    assert made.status_code == 201, made.text[:300]
    async with runtime.db.unit_of_work() as session:
        revealed = await SecretStore.from_runtime(runtime).reveal(
            session, system_actor(admin.tenant_id), made.json()["id"]
        )
    assert revealed.value == value


async def test_scopes_are_enforced(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    secret = (await client.post("/v1/secrets", json=_body(), headers=admin_headers)).json()
    reader = await _tenant_key(client, admin.key, None, ["secrets:read"])
    assert (await client.get(f"/v1/secrets/{secret['id']}", headers=auth(reader))).status_code == 200
    assert (await client.get("/v1/secrets", headers=auth(reader))).status_code == 200
    denied = [
        await client.post("/v1/secrets", json=_body(name="x"), headers=auth(reader)),
        await client.post(f"/v1/secrets/{secret['id']}/rotate", json={"value": "v"}, headers=auth(reader)),
        await client.delete(f"/v1/secrets/{secret['id']}", headers=auth(reader)),
    ]
    assert [r.status_code for r in denied] == [403, 403, 403]
    writer = await _tenant_key(client, admin.key, None, ["secrets:write"])
    assert (await client.get("/v1/secrets", headers=auth(writer))).status_code == 403
    assert (await client.post("/v1/secrets", json=_body(name="w"), headers=auth(writer))).status_code == 201
    assert (await client.get("/v1/secrets")).status_code == 401


async def test_tenant_isolation(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    secret = (await client.post("/v1/secrets", json=_body(), headers=admin_headers)).json()
    tenant_b = (await client.post("/v1/tenants", json={"name": "B"}, headers=admin_headers)).json()["id"]
    key_b = await _tenant_key(client, admin.key, tenant_b, ["secrets:read", "secrets:write"])
    as_b = auth(key_b)
    url = f"/v1/secrets/{secret['id']}"
    attempts = [
        await client.get(url, headers=as_b),
        await client.post(f"{url}/rotate", json={"value": "stolen"}, headers=as_b),
        await client.delete(url, headers=as_b),
        # A platform key acting for tenant B sees only tenant B, too.
        await client.get(url, headers=auth(admin.key, tenant_b)),
    ]
    assert [r.status_code for r in attempts] == [404, 404, 404, 404]
    assert (await client.get("/v1/secrets", headers=as_b)).json()["data"] == []
    # Tenant B's key naming tenant A is told tenant A does not exist.
    assert (await client.get(url, headers=auth(key_b, admin.tenant_id))).status_code == 404
    intact = await client.get(url, headers=admin_headers)
    assert intact.status_code == 200
    assert intact.json()["version"] == 1


async def test_audit_rows_without_the_value(
    client: httpx.AsyncClient, runtime: Runtime, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    secret = (await client.post("/v1/secrets", json=_body(), headers=admin_headers)).json()
    await client.post(
        f"/v1/secrets/{secret['id']}/rotate", json={"value": VALUE + "2"}, headers=admin_headers
    )
    async with runtime.db.unit_of_work() as session:
        await SecretStore.from_runtime(runtime).reveal(
            session, system_actor(admin.tenant_id), secret["id"], purpose="test"
        )
    await client.delete(f"/v1/secrets/{secret['id']}", headers=admin_headers)

    trail = await client.get(
        "/v1/audit-events",
        params={"resourceType": "secret", "resourceId": secret["id"]},
        headers=admin_headers,
    )
    assert trail.status_code == 200
    events = trail.json()["data"]
    assert [e["action"] for e in events] == [
        "secret.deleted",
        "secret.accessed",
        "secret.rotated",
        "secret.created",
    ]
    created = events[-1]
    assert created["actorKeyId"] == admin.key_id
    assert created["correlationId"]
    assert created["changes"]["name"] == {"old": None, "new": "stripe"}
    assert created["changes"]["tokenType"] == {"old": None, "new": "API_KEY"}
    rotated = events[-2]
    assert rotated["changes"]["version"] == {"old": 1, "new": 2}
    assert events[1]["changes"]["accessCount"] == {"old": 0, "new": 1}
    assert VALUE not in trail.text

    async with runtime.db.unit_of_work(write=False) as session:
        rows = (
            await session.scalars(sa.select(AuditEvent).where(AuditEvent.resource_type == "secret"))
        ).all()
    assert len(rows) == 4
    dumped = json.dumps([r.changes for r in rows])
    assert VALUE not in dumped and "v1.test1." not in dumped


# -- service: reveal, binding, risk --------------------------------------------------------


async def _make_tenant(runtime: Runtime, name: str) -> str:
    async with runtime.db.unit_of_work() as session:
        tenant = await create_tenant(session, system_actor("ten_bootstrap"), name)
    return tenant.id


async def _create(runtime: Runtime, actor: Actor, name: str, value: str, **kw: Any) -> IntegrationSecret:
    async with runtime.db.unit_of_work() as session:
        return await SecretStore.from_runtime(runtime).create(
            session,
            actor,
            SecretSpec(name=name, value=value, token_type=kw.pop("token_type", TokenType.GENERIC), **kw),
        )


async def _reveal(runtime: Runtime, actor: Actor, secret_id: str, **kw: Any) -> str:
    async with runtime.db.unit_of_work() as session:
        return (await SecretStore.from_runtime(runtime).reveal(session, actor, secret_id, **kw)).value


async def test_reveal_tracks_access_and_is_tenant_scoped(runtime: Runtime) -> None:
    a, b = await _make_tenant(runtime, "A"), await _make_tenant(runtime, "B")
    secret = await _create(runtime, system_actor(a), "db", "pässwörd ✓")
    assert await _reveal(runtime, system_actor(a), secret.id) == "pässwörd ✓"
    assert await _reveal(runtime, system_actor(a), secret.id) == "pässwörd ✓"
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(IntegrationSecret, secret.id)
    assert row is not None
    assert row.access_count == 2
    assert row.last_accessed_at is not None
    assert VALUE not in row.ciphertext and "pässwörd" not in row.ciphertext
    with pytest.raises(NotFound):
        await _reveal(runtime, system_actor(b), secret.id)


async def test_ciphertext_copied_to_another_row_or_tenant_fails(runtime: Runtime) -> None:
    a, b = await _make_tenant(runtime, "A"), await _make_tenant(runtime, "B")
    source = await _create(runtime, system_actor(a), "source", VALUE)
    same_tenant = await _create(runtime, system_actor(a), "target", "other value")
    other_tenant = await _create(runtime, system_actor(b), "target", "other value")
    other_owner = await _create(
        runtime, system_actor(a), "owned", "x", owner_type="connection", owner_id="c1"
    )
    async with runtime.db.unit_of_work() as session:
        stolen = await session.scalar(
            sa.select(IntegrationSecret.ciphertext).where(IntegrationSecret.id == source.id)
        )
        for target in (same_tenant, other_tenant, other_owner):
            await session.execute(
                sa.update(IntegrationSecret)
                .where(IntegrationSecret.id == target.id)
                .values(ciphertext=stolen)
            )
    for actor, target in (
        (system_actor(a), same_tenant),
        (system_actor(b), other_tenant),
        (system_actor(a), other_owner),
    ):
        with pytest.raises(SecretUnreadable):
            await _reveal(runtime, actor, target.id)
    # Moving the row itself to another owner breaks it too.
    async with runtime.db.unit_of_work() as session:
        await session.execute(
            sa.update(IntegrationSecret)
            .where(IntegrationSecret.id == source.id)
            .values(owner_id="someone-else")
        )
    with pytest.raises(SecretUnreadable):
        await _reveal(runtime, system_actor(a), source.id)


async def test_expired_secret_is_not_revealed_unless_asked(runtime: Runtime) -> None:
    a = await _make_tenant(runtime, "A")
    secret = await _create(
        runtime, system_actor(a), "short", VALUE, expires_at=clock.utcnow() + timedelta(hours=1)
    )
    clock.shift(timedelta(hours=2))
    with pytest.raises(SecretExpired):
        await _reveal(runtime, system_actor(a), secret.id)
    assert await _reveal(runtime, system_actor(a), secret.id, allow_expired=True) == VALUE


async def test_spec_repr_hides_the_value() -> None:
    spec = SecretSpec(name="n", value=VALUE, token_type=TokenType.BEARER)
    assert VALUE not in repr(spec)


async def test_risk_score_factors(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    fresh = await client.post(
        "/v1/secrets", json=_body(name="access", tokenType="OAUTH2_ACCESS"), headers=admin_headers
    )
    assert fresh.json()["riskScore"] == 0
    assert fresh.json()["riskFactors"] == []
    soon = (clock.utcnow() + timedelta(days=10)).isoformat()
    old = await client.post(
        "/v1/secrets",
        json=_body(name="refresh", tokenType="OAUTH2_REFRESH", expiresAt=soon),
        headers=admin_headers,
    )
    assert old.json()["riskScore"] == 10

    clock.shift(timedelta(days=100))  # 10 days past rotateBy (90 days), not yet stale
    shown = (await client.get(f"/v1/secrets/{old.json()['id']}", headers=admin_headers)).json()
    codes = {f["code"]: f["points"] for f in shown["riskFactors"]}
    assert codes == {"expired": 40, "rotationOverdue": 25, "neverRotated": 10, "tokenType": 10}
    assert shown["riskScore"] == 85

    clock.shift(timedelta(days=300))  # 400 days: everything at once, capped at 100
    shown = (await client.get(f"/v1/secrets/{old.json()['id']}", headers=admin_headers)).json()
    codes = {f["code"]: f["points"] for f in shown["riskFactors"]}
    assert codes["rotationLongOverdue"] == 15 and codes["stale"] == 20
    assert shown["riskScore"] == 100

    rotated = await client.post(
        f"/v1/secrets/{old.json()['id']}/rotate", json={"value": "fresh"}, headers=admin_headers
    )
    assert rotated.json()["riskScore"] == 10
    assert [f["code"] for f in rotated.json()["riskFactors"]] == ["tokenType"]


async def test_risk_flags_master_keys(runtime: Runtime) -> None:
    a = await _make_tenant(runtime, "A")
    secret = await _create(runtime, system_actor(a), "x", VALUE, token_type=TokenType.OAUTH2_ACCESS)
    test1 = runtime.settings.master_keys
    rotated_ring = Keyring.from_spec(f"{K2},{test1}")
    risk = assess_risk(secret, rotated_ring, 90)
    assert [(f.code, f.points) for f in risk.factors] == [("oldMasterKey", 15)]
    risk = assess_risk(secret, Keyring.from_spec(K2), 90)
    assert [(f.code, f.points) for f in risk.factors] == [("unknownMasterKey", 40)]


# -- master key rotation -------------------------------------------------------------------


def _runtime(db_url: str, data_dir: Path, master_keys: str) -> Runtime:
    return Runtime(make_settings(db_url, data_dir, master_keys=master_keys))


async def test_reencrypt_all_to_a_new_primary(db_url: str, tmp_path: Path) -> None:
    old = _runtime(db_url, tmp_path, K1)
    values: dict[str, tuple[str, str]] = {}
    try:
        tenants = [await _make_tenant(old, "A"), await _make_tenant(old, "B")]
        for i in range(5):
            tenant = tenants[i % 2]
            secret = await _create(old, system_actor(tenant), f"s{i}", f"{VALUE}-{i}")
            assert secret.key_id == "k1"
            values[secret.id] = (tenant, f"{VALUE}-{i}")
    finally:
        await old.stop()

    both = _runtime(db_url, tmp_path, f"{K2},{K1}")
    try:
        partial = await reencrypt_all(both, batch_size=2, max_batches=1)  # interrupted after one batch
        assert (partial.reencrypted, partial.remaining, partial.complete) == (2, 3, False)
        rest = await reencrypt_all(both, batch_size=2)
        assert (rest.reencrypted, rest.already_primary, rest.remaining, rest.failed) == (3, 2, 0, [])
        assert rest.batches == 2 and rest.complete
        again = await reencrypt_all(both, batch_size=2)
        assert (again.reencrypted, again.already_primary, again.batches) == (0, 5, 0)
        async with both.db.unit_of_work(write=False) as session:
            rows = (await session.scalars(sa.select(IntegrationSecret))).all()
            audits = (
                await session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "secret.reencrypted"))
            ).all()
        assert {r.key_id for r in rows} == {"k2"}
        assert all(r.ciphertext.startswith("v1.k2.") for r in rows)
        assert all(r.version == 1 for r in rows)
        assert len(audits) == 5
        assert {a.actor_type for a in audits} == {"system"}
        assert {a.tenant_id for a in audits} == set(tenants)
        assert all(a.changes == {"keyId": {"old": "k1", "new": "k2"}} for a in audits)
        for secret_id, (tenant, value) in values.items():
            assert await _reveal(both, system_actor(tenant), secret_id) == value
    finally:
        await both.stop()

    new_only = _runtime(db_url, tmp_path, K2)  # k1 removed from the configuration
    try:
        for secret_id, (tenant, value) in values.items():
            assert await _reveal(new_only, system_actor(tenant), secret_id) == value
    finally:
        await new_only.stop()


async def test_reencrypt_reports_unreadable_secrets_and_finishes_the_rest(
    db_url: str, tmp_path: Path
) -> None:
    old = _runtime(db_url, tmp_path, K1)
    try:
        tenant = await _make_tenant(old, "A")
        good = [await _create(old, system_actor(tenant), f"g{i}", f"v{i}") for i in range(3)]
        bad = await _create(old, system_actor(tenant), "bad", "v")
        async with old.db.unit_of_work() as session:
            await session.execute(
                sa.update(IntegrationSecret)
                .where(IntegrationSecret.id == bad.id)
                .values(ciphertext=good[0].ciphertext)  # bound to another row
            )
    finally:
        await old.stop()
    both = _runtime(db_url, tmp_path, f"{K2},{K1}")
    try:
        result = await reencrypt_all(both, batch_size=1)
        assert result.reencrypted == 3
        assert result.failed == [(bad.id, "k1")]
        assert result.remaining == 1 and not result.complete
        rerun = await reencrypt_all(both, batch_size=1)
        assert (rerun.reencrypted, rerun.failed) == (0, [(bad.id, "k1")])
        for i, secret in enumerate(good):
            assert await _reveal(both, system_actor(tenant), secret.id) == f"v{i}"
    finally:
        await both.stop()


async def test_reencrypt_never_overwrites_a_concurrent_rotation(db_url: str, tmp_path: Path) -> None:
    old = _runtime(db_url, tmp_path, K1)
    try:
        tenant = await _make_tenant(old, "A")
        secret = await _create(old, system_actor(tenant), "s", "before")
    finally:
        await old.stop()
    both = _runtime(db_url, tmp_path, f"{K2},{K1}")
    try:
        async with both.db.unit_of_work(write=False) as session:
            stale = (await session.scalars(sa.select(IntegrationSecret))).all()
        async with both.db.unit_of_work() as session:
            await SecretStore.from_runtime(both).rotate(session, system_actor(tenant), secret.id, "after")
        result = ReencryptResult(primary_key_id="k2")
        async with both.db.unit_of_work() as session:
            await _reencrypt_batch(session, both.keyring, stale, result)
        assert result.reencrypted == 0
        assert await _reveal(both, system_actor(tenant), secret.id) == "after"
    finally:
        await both.stop()


# -- CLI ------------------------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str], real: bool = False) -> subprocess.CompletedProcess[str]:
    return run_interlink(args, env=env, real=real)


async def _acli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``_cli`` in a thread: the command runs its own event loop."""
    return await asyncio.to_thread(_cli, *args, env=env)


def _clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env.update(values)
    return env


def test_generate_master_key_prints_a_usable_entry() -> None:
    done = _cli("secrets", "generate-master-key", "--kid", "prod2025", env=_clean_env())
    assert done.returncode == 0, done.stderr
    [(kid, key)] = parse_master_keys(done.stdout.strip())
    assert kid == "prod2025" and len(key) == 32
    bad = _cli("secrets", "generate-master-key", "--kid", "no spaces", env=_clean_env())
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


async def test_cli_rotate_master_key_with_local_file(sqlite_template: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "cli.db"
    shutil.copyfile(sqlite_template, db_path)
    db_url = f"sqlite+aiosqlite:///{db_path}"
    data_dir = tmp_path / "data"
    local = make_settings(db_url, data_dir, master_keys="", key_pepper=TEST_PEPPER)

    runtime = Runtime(local)  # generates <data_dir>/local-secrets.json
    try:
        assert runtime.local_secrets.master_keys_from_file
        first_kid = runtime.keyring.primary_kid
        tenant = await _make_tenant(runtime, "A")
        ids = [(await _create(runtime, system_actor(tenant), f"s{i}", f"{VALUE}{i}")).id for i in range(3)]
    finally:
        await runtime.stop()

    env = _clean_env(
        INTERLINK_DATABASE_URL=db_url, INTERLINK_DATA_DIR=str(data_dir), INTERLINK_KEY_PEPPER=TEST_PEPPER
    )
    done = await _acli("secrets", "rotate-master-key", "--batch-size", "2", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    stored = json.loads(local_secrets_path(data_dir).read_text())
    kids = [kid for kid, _ in parse_master_keys(stored["master_keys"])]
    assert len(kids) == 2 and kids[1] == first_kid
    new_kid = kids[0]
    assert f"generated master key {new_kid}" in done.stdout
    assert f"re-encrypted 3 secret(s) under master key {new_kid}" in done.stdout
    assert first_kid in done.stdout  # named as no longer used
    assert VALUE not in done.stdout + done.stderr
    assert stored["master_keys"].split(",")[0].split(":")[1] not in done.stdout + done.stderr

    status = await _acli("secrets", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert f"{new_kid}: 3 secret(s) (primary)" in status.stdout
    assert f"{first_kid}: 0 secret(s) (configured, not primary)" in status.stdout

    runtime = Runtime(local)
    try:
        assert runtime.keyring.primary_kid == new_kid
        async with runtime.db.unit_of_work(write=False) as session:
            rows = (await session.scalars(sa.select(IntegrationSecret))).all()
        assert {r.key_id for r in rows} == {new_kid}
        for i, secret_id in enumerate(ids):
            assert await _reveal(runtime, system_actor(tenant), secret_id) == f"{VALUE}{i}"
    finally:
        await runtime.stop()

    # Master keys from the environment: re-encrypt to the configured primary, name the unused ones.
    env_keys = f"{K2},{stored['master_keys']}"
    from_env = await _acli("secrets", "rotate-master-key", env={**env, "INTERLINK_MASTER_KEYS": env_keys})
    assert from_env.returncode == 0, from_env.stdout + from_env.stderr
    assert "re-encrypted 3 secret(s) under master key k2" in from_env.stdout
    assert "generated master key" not in from_env.stdout
    unused_line = next(li for li in from_env.stdout.splitlines() if "may be removed" in li)
    assert new_kid in unused_line and first_kid in unused_line and "INTERLINK_MASTER_KEYS" in unused_line
    assert json.loads(local_secrets_path(data_dir).read_text()) == stored  # file untouched

    # Without k2 configured, status reports the secrets as unreadable and fails.
    missing = await _acli("secrets", "status", env=env)
    assert missing.returncode == 1
    assert "k2: 3 secret(s) (NOT CONFIGURED" in missing.stdout


def test_cli_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    env = _clean_env(
        INTERLINK_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
        INTERLINK_DATA_DIR=str(tmp_path / "data"),
    )
    done = _cli("secrets", "status", env=env, real=True)
    assert done.returncode == 2
    assert "interlink migrate" in done.stderr
    assert "Traceback" not in done.stderr


async def test_reencrypt_covers_webhook_signing_secrets_and_slack_targets(
    db_url: str, tmp_path: Path
) -> None:
    """Nothing encrypted anywhere is left behind under the old master key: after rotation the
    old key can be removed and webhook secrets and Slack hook urls still decrypt."""
    from interlink.encrypted_columns import ENCRYPTED_COLUMNS
    from interlink.webhooks.endpoints import Endpoints, EndpointSpec, active_secrets, decrypt_target
    from interlink.webhooks.models import WebhookEndpoint

    hook = "https://hooks.slack.com/services/T0001/B0001/very-secret-token"
    old = _runtime(db_url, tmp_path, K1)
    try:
        tenant = await _make_tenant(old, "A")
        service = Endpoints(old.keyring, [ip_network("0.0.0.0/0")])
        service._vetted[hook] = float("inf")  # no DNS lookups from tests
        service._vetted["https://receiver.example/in"] = float("inf")
        async with old.db.unit_of_work() as session:
            slack = await service.create(
                session, system_actor(tenant), EndpointSpec(url=hook, channel=DeliveryChannel.SLACK)
            )
            plain = await service.create(
                session, system_actor(tenant), EndpointSpec(url="https://receiver.example/in")
            )
        async with old.db.unit_of_work(write=False) as session:
            before = {e: await active_secrets(session, old.keyring, e) for e in (slack.id, plain.id)}
            counts = await count_by_key_id(session, ENCRYPTED_COLUMNS)
        assert counts == {"k1": 3}  # two signing secrets and one hook url
    finally:
        await old.stop()

    both = _runtime(db_url, tmp_path, f"{K2},{K1}")
    try:
        result = await reencrypt_all(both, columns=ENCRYPTED_COLUMNS)
        assert (result.reencrypted, result.remaining, result.failed) == (3, 0, [])
        again = await reencrypt_all(both, columns=ENCRYPTED_COLUMNS)
        assert (again.reencrypted, again.already_primary) == (0, 3)
    finally:
        await both.stop()

    new_only = _runtime(db_url, tmp_path, K2)
    try:
        async with new_only.db.unit_of_work(write=False) as session:
            after = {e: await active_secrets(session, new_only.keyring, e) for e in (slack.id, plain.id)}
            row = await session.get(WebhookEndpoint, slack.id)
            assert row is not None and decrypt_target(new_only.keyring, row) == hook
            assert await count_by_key_id(session, ENCRYPTED_COLUMNS) == {"k2": 3}
            audits = (
                await session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "secret.reencrypted"))
            ).all()
        assert after == before
        assert sorted(a.resource_type for a in audits) == ["endpoint", "endpoint_secret", "endpoint_secret"]
    finally:
        await new_only.stop()


def test_every_ciphertext_column_is_listed_for_rotation() -> None:
    """A new encrypted column that master key rotation does not know about would be lost when the
    old key is removed."""
    import interlink.all_models  # noqa: F401
    from interlink.core.db import Base
    from interlink.encrypted_columns import ENCRYPTED_COLUMNS

    found = {
        (table.name, column.name)
        for table in Base.metadata.tables.values()
        for column in table.columns
        if "ciphertext" in column.name and table.name != "integration_secrets"
    }
    assert found == {(c.table.name, c.ciphertext_column) for c in ENCRYPTED_COLUMNS}
