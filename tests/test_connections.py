"""Connections (``/v1/connections``): create, validate, list, get, patch, delete; credentials only in
IntegrationSecret; documented status transitions; audit rows; SDK and CLI against a live server."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.client import (
    AsyncInterlinkClient,
    ConflictError,
    InterlinkClient,
    NotFoundError,
    ValidationError,
)
from interlink.connections.models import IntegrationConnection
from interlink.connections.service import TRANSITIONS
from interlink.core.enums import IntegrationConnectionStatus
from interlink.core.models import AuditEvent, IntegrationSecret
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem, make_key
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer

ZENDESK = {
    "providerKey": "zendesk",
    "name": "support desk",
    "authType": "BASIC",
    "config": {"subdomain": "acme"},
    "credentials": {"username": "agent@acme.example", "password": "zd-plaintext-password"},
    "metadata": {"team": "support"},
}
PLAINTEXTS = ("zd-plaintext-password", "sg-plaintext-key", "replaced-plaintext-password")


def _fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body.get("errors", [])]


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/connections", json={**ZENDESK, **overrides}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _audit(runtime: Runtime, connection_id: str) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(AuditEvent).where(AuditEvent.resource_id == connection_id).order_by(AuditEvent.id)
        )
        return list(rows.all())


async def _no_plaintext_anywhere(runtime: Runtime) -> None:
    """No credential value in the connection table or the audit trail (only ciphertext in secrets)."""
    async with runtime.db.unit_of_work(write=False) as session:
        conns = (await session.scalars(sa.select(IntegrationConnection))).all()
        audits = (await session.scalars(sa.select(AuditEvent))).all()
        secrets = (await session.scalars(sa.select(IntegrationSecret))).all()
    text = json.dumps(
        [[c.config, c.meta, c.secret_ids, c.last_error] for c in conns]
        + [[a.action, a.changes] for a in audits]
        + [[s.name, s.meta, s.ciphertext] for s in secrets],
        default=str,
    )
    for plaintext in PLAINTEXTS:
        assert plaintext not in text


async def test_create_get_list_and_credentials_stay_secret(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _create(client, admin_headers)
    assert created["id"].startswith("conn_")
    assert created["status"] == "ACTIVE"
    assert created["providerKey"] == "zendesk" and created["environment"] == "PRODUCTION"
    assert created["config"] == {"subdomain": "acme"} and created["metadata"] == {"team": "support"}
    assert created["credentialRoles"] == ["credentials"]
    assert "credentials" not in created and "zd-plaintext-password" not in json.dumps(created)

    # The secret is an IntegrationSecret owned by the connection, readable inside the server only.
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(IntegrationConnection, created["id"])
        assert row is not None
        secret = await session.get(IntegrationSecret, row.secret_ids["credentials"])
        assert secret is not None
        assert (secret.owner_type, secret.owner_id, secret.token_type.value) == (
            "connection",
            row.id,
            "BASIC",
        )
        from interlink.core.secrets import SecretStore

        value = json.loads(SecretStore.from_runtime(runtime).decrypt(secret))
    assert value == {"username": "agent@acme.example", "password": "zd-plaintext-password"}

    got = await client.get(f"/v1/connections/{created['id']}", headers=admin_headers)
    assert got.status_code == 200 and got.json() == created

    second = await _create(
        client, admin_headers, providerKey="sendgrid", name="mail", authType="API_KEY", config={},
        credentials={"apiKey": "sg-plaintext-key"},
    )  # fmt: skip
    listed = (await client.get("/v1/connections", headers=admin_headers)).json()
    assert [c["id"] for c in listed["data"]] == [second["id"], created["id"]]  # newest first
    only = (await client.get("/v1/connections?providerKey=zendesk", headers=admin_headers)).json()
    assert [c["id"] for c in only["data"]] == [created["id"]]
    by_type = (
        await client.get("/v1/connections?authType=API_KEY&status=ACTIVE", headers=admin_headers)
    ).json()
    assert [c["id"] for c in by_type["data"]] == [second["id"]]
    paged = (await client.get("/v1/connections?limit=1", headers=admin_headers)).json()
    assert paged["hasMore"] and paged["nextCursor"] == second["id"]
    rest = (await client.get(f"/v1/connections?limit=1&after={second['id']}", headers=admin_headers)).json()
    assert [c["id"] for c in rest["data"]] == [created["id"]] and not rest["hasMore"]

    [audit_row] = await _audit(runtime, created["id"])
    assert audit_row.action == "connection.created"
    assert audit_row.changes["credentialFields"]["new"] == ["password", "username"]
    await _no_plaintext_anywhere(runtime)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"providerKey": "nope"}, "providerKey"),
        ({"providerKey": "Not A Key"}, "providerKey"),
        ({"config": {}}, "config.subdomain"),
        ({"config": {"subdomain": "bad/host"}}, "config.subdomain"),
        ({"config": {"subdomain": "acme", "extra": 1}}, "config.extra"),
        ({"authType": "API_KEY"}, "authType"),
        ({"authType": "SOMETHING"}, "authType"),
        ({"environment": "SANDBOX"}, "environment"),
        ({"credentials": {"username": "x"}}, "credentials.password"),
        ({"credentials": {"username": "x", "password": ""}}, "credentials.password"),
        ({"credentials": {"username": "x", "password": "y", "token": "z"}}, "credentials.token"),
        ({"credentials": {"username": "x", "password": 5}}, "credentials.password"),
        ({"name": ""}, "name"),
        ({"name": " padded "}, "name"),
        ({"scopes": ["read"]}, "scopes"),
        ({"unknown": 1}, "unknown"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], overrides: dict[str, Any], field: str
) -> None:
    for path in ("/v1/connections", "/v1/connections/validate"):
        response = await client.post(path, json={**ZENDESK, **overrides}, headers=admin_headers)
        body = assert_problem(response, 422)
        assert field in _fields(body), (path, body)
    listed = (await client.get("/v1/connections", headers=admin_headers)).json()
    assert listed["data"] == []


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def test_deeply_nested_json_is_refused_and_lists_keep_working(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for overrides, field in (({"metadata": _nested(300)}, "metadata"), ({"config": _nested(300)}, "config")):
        for path in ("/v1/connections", "/v1/connections/validate"):
            body = {**ZENDESK, **overrides}
            problem = assert_problem(await client.post(path, json=body, headers=admin_headers), 422)
            assert field in _fields(problem) and "levels" in problem["detail"], problem
    created = await client.post(
        "/v1/connections", json={**ZENDESK, "metadata": _nested(32)}, headers=admin_headers
    )
    assert created.status_code == 201, created.text
    patch = await client.patch(
        f"/v1/connections/{created.json()['id']}", json={"metadata": _nested(300)}, headers=admin_headers
    )
    assert "metadata" in _fields(assert_problem(patch, 422))
    listed = await client.get("/v1/connections", headers=admin_headers)
    assert listed.status_code == 200 and len(listed.json()["data"]) == 1


async def test_validate_does_not_save(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post("/v1/connections/validate", json=ZENDESK, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "valid": True,
        "providerKey": "zendesk",
        "environment": "PRODUCTION",
        "authType": "BASIC",
        "baseUrl": "https://acme.zendesk.com/api/v2",
        "scopes": [],
        "status": "ACTIVE",
    }
    oauth = {
        "providerKey": "salesforce",
        "name": "crm",
        "environment": "SANDBOX",
        "config": {"my_domain": "acme"},
        "authType": "OAUTH2_CLIENT_CREDENTIALS",
        "credentials": {"clientId": "id", "clientSecret": "secret"},
    }
    checked = (await client.post("/v1/connections/validate", json=oauth, headers=admin_headers)).json()
    assert checked["status"] == "PENDING" and checked["environment"] == "SANDBOX"
    assert (await client.get("/v1/connections", headers=admin_headers)).json()["data"] == []


async def test_names_are_unique_per_tenant(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    first = await _create(client, admin_headers)
    again = await client.post("/v1/connections", json=ZENDESK, headers=admin_headers)
    assert_problem(again, 409)
    other = await _create(client, admin_headers, name="other desk")
    renamed = await client.patch(
        f"/v1/connections/{other['id']}", json={"name": first["name"]}, headers=admin_headers
    )
    assert_problem(renamed, 409)


async def test_patch_credentials_config_and_status_transitions(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _create(client, admin_headers)
    url = f"/v1/connections/{created['id']}"
    old_secret = None
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(IntegrationConnection, created["id"])
        assert row is not None
        old_secret = row.secret_ids["credentials"]

    patched = await client.patch(
        url,
        json={
            "config": {"subdomain": "acme2"},
            "credentials": {"username": "u", "password": "replaced-plaintext-password"},
        },
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"] == {"subdomain": "acme2"}
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(IntegrationConnection, created["id"])
        assert row is not None and row.secret_ids["credentials"] != old_secret
        assert await session.get(IntegrationSecret, old_secret) is None

    bad = await client.patch(url, json={"credentials": {"apiKey": "x"}}, headers=admin_headers)
    assert "credentials.apiKey" in _fields(assert_problem(bad, 422))
    bad_config = await client.patch(url, json={"config": {"subdomain": "a b"}}, headers=admin_headers)
    assert "config.subdomain" in _fields(assert_problem(bad_config, 422))

    for wanted in ("EXPIRED", "ERROR", "PENDING"):  # set by Interlink only
        assert_problem(await client.patch(url, json={"status": wanted}, headers=admin_headers), 409)
    disabled = await client.patch(url, json={"status": "DISABLED"}, headers=admin_headers)
    assert disabled.json()["status"] == "DISABLED"
    enabled = await client.patch(url, json={"status": "ACTIVE"}, headers=admin_headers)
    assert enabled.json()["status"] == "ACTIVE"
    revoked = await client.patch(url, json={"status": "REVOKED"}, headers=admin_headers)
    assert revoked.json()["status"] == "REVOKED"
    for change in ({"status": "ACTIVE"}, {"status": "DISABLED"}, {"name": "x"}):
        assert_problem(await client.patch(url, json=change, headers=admin_headers), 409)
    meta = await client.patch(url, json={"metadata": {"note": "gone"}}, headers=admin_headers)
    assert meta.status_code == 200 and meta.json()["metadata"] == {"note": "gone"}

    actions = [a.action for a in await _audit(runtime, created["id"])]
    assert actions[0] == "connection.created" and actions.count("connection.updated") == 5
    await _no_plaintext_anywhere(runtime)


def test_documented_transitions_are_closed() -> None:
    S = IntegrationConnectionStatus
    assert set(TRANSITIONS) == set(S)
    assert TRANSITIONS[S.REVOKED] == frozenset()
    for source, targets in TRANSITIONS.items():
        assert source not in targets


async def test_delete_removes_connection_and_its_secrets(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _create(client, admin_headers)
    response = await client.delete(f"/v1/connections/{created['id']}", headers=admin_headers)
    assert response.status_code == 204
    assert_problem(await client.get(f"/v1/connections/{created['id']}", headers=admin_headers), 404)
    assert_problem(await client.delete(f"/v1/connections/{created['id']}", headers=admin_headers), 404)
    async with runtime.db.unit_of_work(write=False) as session:
        left = await session.scalar(
            sa.select(sa.func.count())
            .select_from(IntegrationSecret)
            .where(IntegrationSecret.owner_id == created["id"])
        )
    assert left == 0
    actions = [a.action for a in await _audit(runtime, created["id"])]
    assert actions == ["connection.created", "connection.deleted"]


async def test_scopes_are_enforced(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    created = await _create(client, admin_headers)
    reader = await make_key(client, admin_headers, scopes=["connections:read"])
    headers = {"Authorization": f"Bearer {reader['key']}"}
    assert (await client.get(f"/v1/connections/{created['id']}", headers=headers)).status_code == 200
    assert_problem(await client.post("/v1/connections", json={**ZENDESK, "name": "n2"}, headers=headers), 403)
    assert_problem(await client.delete(f"/v1/connections/{created['id']}", headers=headers), 403)
    other = await make_key(client, admin_headers, scopes=["keys:read"])
    assert_problem(
        await client.get("/v1/connections", headers={"Authorization": f"Bearer {other['key']}"}), 403
    )


# -- SDK and CLI -----------------------------------------------------------------------------------


def test_sdk_connections(live_server: LiveServer) -> None:
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        checked = sdk.connections.validate(
            provider_key="zendesk", name="desk", config={"subdomain": "acme"}, auth_type="BASIC",
            credentials={"username": "u", "password": "p"},
        )  # fmt: skip
        assert checked.base_url == "https://acme.zendesk.com/api/v2"
        created = sdk.connections.create(
            provider_key="zendesk", name="desk", config={"subdomain": "acme"}, auth_type="BASIC",
            credentials={"username": "u", "password": "p"}, metadata={"a": 1},
        )  # fmt: skip
        assert created.status is IntegrationConnectionStatus.ACTIVE
        assert sdk.connections.get(created.id) == created
        assert [c.id for c in sdk.connections.list(provider_key="zendesk")] == [created.id]
        assert [c.id for c in sdk.connections.iter_all(page_size=1)] == [created.id]
        updated = sdk.connections.update(created.id, status="DISABLED", name="desk 2")
        assert updated.status is IntegrationConnectionStatus.DISABLED and updated.name == "desk 2"
        with pytest.raises(ConflictError):
            sdk.connections.update(created.id, status="EXPIRED")
        with pytest.raises(ValidationError) as bad:
            sdk.connections.create(provider_key="zendesk", name="x", config={}, auth_type="BASIC")
        assert "config.subdomain" in [e.field for e in bad.value.errors]
        sdk.connections.delete(created.id)
        with pytest.raises(NotFoundError):
            sdk.connections.get(created.id)


async def test_async_sdk_connections(live_server: LiveServer) -> None:
    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as sdk:
        created = await sdk.connections.create(
            provider_key="sendgrid", name="mail", auth_type="API_KEY", credentials={"apiKey": "k"}
        )
        assert (await sdk.connections.get(created.id)).credential_roles == ["credentials"]
        with pytest.raises(ConflictError, match="not OAuth2"):
            await sdk.connections.refresh(created.id)
        with pytest.raises(ConflictError, match="OAUTH2_AUTHORIZATION_CODE"):
            await sdk.connections.authorize_url(created.id, return_to="/ui/x")
        assert [c.id async for c in sdk.connections.iter_all(status="ACTIVE")] == [created.id]
        assert (
            await sdk.connections.validate(provider_key="sendgrid", name="m2", credentials={"apiKey": "k"})
        ).valid
        await sdk.connections.delete(created.id)
        assert (await sdk.connections.list()).data == []


def _cli(
    server: LiveServer, *args: str, stdin: str | None = None, real: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env.update({"INTERLINK_API_URL": server.url, "INTERLINK_API_KEY": server.admin_key, "COLUMNS": "250"})
    result = run_interlink(args, env=env, input=stdin, real=real)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_cli_connections(live_server: LiveServer) -> None:
    args = [
        "--provider",
        "zendesk",
        "--name",
        "desk",
        "--config",
        '{"subdomain": "acme"}',
        "--auth-type",
        "BASIC",
    ]
    creds = ["--credentials", '{"username": "u", "password": "cli-plaintext"}']
    checked = _cli(live_server, "connections", "validate", *args, *creds, "--json", real=True)
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["baseUrl"] == "https://acme.zendesk.com/api/v2"

    created = _cli(live_server, "connections", "create", *args, *creds, "--json")
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["status"] == "ACTIVE" and "cli-plaintext" not in created.stdout

    listed = _cli(live_server, "connections", "list")
    assert listed.returncode == 0 and body["id"] in listed.stdout and "zendesk" in listed.stdout
    shown = _cli(live_server, "connections", "show", body["id"])
    assert shown.returncode == 0 and "desk" in shown.stdout and "cli-plaintext" not in shown.stdout

    bad = _cli(
        live_server, "connections", "create", "--provider", "zendesk", "--name", "x", "--auth-type", "BASIC"
    )
    assert bad.returncode == 1 and "config.subdomain" in bad.stderr
    not_json = _cli(live_server, "connections", "create", *args, "--credentials", "{nope")
    assert not_json.returncode == 2

    piped = _cli(
        live_server, "connections", "create", "--provider", "sendgrid", "--name", "mail",
        "--credentials-file", "-", "--json", stdin='{"apiKey": "cli-plaintext"}',
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["credentialRoles"] == ["credentials"]
    assert "cli-plaintext" not in piped.stdout

    deleted = _cli(live_server, "connections", "delete", body["id"])
    assert deleted.returncode == 0, deleted.stderr
    missing = _cli(live_server, "connections", "show", body["id"])
    assert missing.returncode == 1 and "404" in missing.stderr


def test_cli_connections_update(live_server: LiveServer) -> None:
    created = _cli(
        live_server, "connections", "create", "--provider", "sendgrid", "--name", "mail",
        "--credentials", '{"apiKey": "cli-plaintext"}', "--json",
    )  # fmt: skip
    conn_id = json.loads(created.stdout)["id"]

    renamed = _cli(
        live_server, "connections", "update", conn_id, "--name", "mail 2", "--metadata", '{"team": "ops"}',
        "--credentials-file", "-", "--json", stdin='{"apiKey": "cli-rotated"}',
    )  # fmt: skip
    assert renamed.returncode == 0, renamed.stderr
    body = json.loads(renamed.stdout)
    assert body["name"] == "mail 2" and body["metadata"] == {"team": "ops"}
    assert "cli-rotated" not in renamed.stdout
    disabled = _cli(live_server, "connections", "update", conn_id, "--status", "DISABLED", "--json")
    assert json.loads(disabled.stdout)["status"] == "DISABLED"
    enabled = _cli(live_server, "connections", "update", conn_id, "--status", "ACTIVE")
    assert enabled.returncode == 0 and "ACTIVE" in enabled.stdout

    refused = _cli(live_server, "connections", "update", conn_id, "--status", "EXPIRED")
    assert refused.returncode == 1 and "409" in refused.stderr
    wrong_shape = _cli(live_server, "connections", "update", conn_id, "--credentials", '{"token": "t"}')
    assert wrong_shape.returncode == 1 and "credentials.token" in wrong_shape.stderr
    scopes = _cli(live_server, "connections", "update", conn_id, "--scope", "a")
    assert scopes.returncode == 1 and "scopes" in scopes.stderr
    assert _cli(live_server, "connections", "update", conn_id).returncode == 2  # nothing to change
    both = _cli(live_server, "connections", "update", conn_id, "--scope", "a", "--default-scopes")
    assert both.returncode == 2
    other = _cli(live_server, "connections", "update", "conn_nope", "--name", "x")
    assert other.returncode == 1 and "404" in other.stderr
    not_oauth = _cli(live_server, "connections", "refresh", conn_id)
    assert not_oauth.returncode == 1 and "409" in not_oauth.stderr
    revoked = _cli(live_server, "connections", "update", conn_id, "--status", "REVOKED", "--json")
    assert json.loads(revoked.stdout)["status"] == "REVOKED"


async def test_a_connection_secret_changes_only_through_the_connection(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    created = (await client.post("/v1/connections", json=ZENDESK, headers=admin_headers)).json()
    owned = await client.get(
        "/v1/secrets", params={"ownerType": "connection", "ownerId": created["id"]}, headers=admin_headers
    )
    [secret] = owned.json()["data"]
    rotate = await client.post(
        f"/v1/secrets/{secret['id']}/rotate", json={"value": "not json"}, headers=admin_headers
    )
    problem = assert_problem(rotate, 409)
    assert problem["connectionId"] == created["id"] and "PATCH /v1/connections/" in problem["detail"]
    assert_problem(await client.delete(f"/v1/secrets/{secret['id']}", headers=admin_headers), 409)
    shown = (await client.get(f"/v1/connections/{created['id']}", headers=admin_headers)).json()
    assert shown["credentialRoles"] == ["credentials"]

    # A secret that only names a connection as owner (made through /v1/secrets) stays free.
    loose = await client.post(
        "/v1/secrets",
        json={"name": "loose", "value": "v", "tokenType": "GENERIC", "ownerType": "connection",
              "ownerId": created["id"]},
        headers=admin_headers,
    )  # fmt: skip
    assert loose.status_code == 201, loose.text
    rotated = await client.post(
        f"/v1/secrets/{loose.json()['id']}/rotate", json={"value": "w"}, headers=admin_headers
    )
    assert rotated.status_code == 200, rotated.text
    deleted = await client.delete(f"/v1/secrets/{loose.json()['id']}", headers=admin_headers)
    assert deleted.status_code == 204
