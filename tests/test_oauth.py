"""OAuth2 for connections against oauth2-mock-server (npm, ``tests/external.py``): client
credentials, authorization code with PKCE and signed state, refresh, single-flight refresh across
tasks and OS processes, failures moving the connection to EXPIRED/ERROR with operational events,
and the ``connections.refresh`` job."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from interlink.client import ConflictError, InterlinkClient
from interlink.connections import oauth
from interlink.connections.models import IntegrationConnection
from interlink.connections.oauth import ConnectionUnavailable, Tokens
from interlink.core import clock
from interlink.core.actor import system_actor
from interlink.core.models import AuditEvent, IntegrationSecret
from interlink.core.secrets import SecretStore
from interlink.core.settings import Settings
from interlink.jobs import schedules
from interlink.jobs.models import Job
from interlink.jobs.registry import BUILTIN_SCHEDULES, CONNECTIONS_REFRESH, ensure_builtin_schedules
from interlink.runtime import Runtime
from interlink.webhooks.models import WebhookEvent
from tests.api_helpers import assert_problem
from tests.cli_runner import run_interlink
from tests.conftest import TEST_MASTER_KEYS, TEST_PEPPER, LiveServer, make_settings
from tests.external import OAuth2MockServer, oauth2_server_fixture

__all__ = ["oauth2_server_fixture"]

CLIENT_ID = "interlink-test"
CLIENT_SECRET = "cs-plaintext-secret"


def _provider_file(directory: Path, server_url: str) -> Path:
    path = directory / "providers.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            providers:
              - key: mock-oauth
                name: Mock OAuth
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [OAUTH2_AUTHORIZATION_CODE, OAUTH2_CLIENT_CREDENTIALS]
                base_urls:
                  PRODUCTION: {server_url}/api
                oauth2:
                  authorize_url: {server_url}/authorize
                  token_url: {server_url}/token
                  default_scopes: [openid, offline_access]
                  client_credentials_scopes: [api]
                  pkce: true
            """
        )
    )
    return path


@pytest.fixture
def oauth_server(oauth2_server: OAuth2MockServer) -> Iterator[OAuth2MockServer]:
    oauth2_server.reset()
    yield oauth2_server
    oauth2_server.reset()


@pytest.fixture
def settings(db_url: str, tmp_path: Path, oauth_server: OAuth2MockServer) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        providers_file=_provider_file(tmp_path, oauth_server.url),
        allowed_target_networks=["127.0.0.0/8"],
        public_url="http://interlink.test",
    )


async def _connection(
    client: httpx.AsyncClient, headers: dict[str, str], auth_type: str, name: str = "mock", **extra: Any
) -> dict[str, Any]:
    credentials: dict[str, str] = {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}
    body = {
        "providerKey": "mock-oauth",
        "name": name,
        "authType": auth_type,
        "credentials": credentials,
        **extra,
    }
    response = await client.post("/v1/connections", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    assert created["status"] == "PENDING"
    return created


async def _row(runtime: Runtime, connection_id: str) -> IntegrationConnection:
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(IntegrationConnection, connection_id)
        assert row is not None
        return row


async def _expire(runtime: Runtime, connection_id: str) -> None:
    async with runtime.db.unit_of_work() as session:
        await session.execute(
            sa.update(IntegrationConnection)
            .where(IntegrationConnection.id == connection_id)
            .values(token_expires_at=clock.utcnow() - timedelta(minutes=1))
        )


async def _subscribe(client: httpx.AsyncClient, headers: dict[str, str], *types: str) -> str:
    body = {"channel": "EMAIL", "channelConfig": {"to": ["ops@example.com"]}, "eventTypes": list(types)}
    response = await client.post("/v1/endpoints", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _events(runtime: Runtime, event_type: str) -> list[WebhookEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(sa.select(WebhookEvent).where(WebhookEvent.event_type == event_type))
        return list(rows.all())


async def _no_token_values_in_audit(runtime: Runtime, *values: str) -> None:
    async with runtime.db.unit_of_work(write=False) as session:
        audits = (await session.scalars(sa.select(AuditEvent))).all()
        conns = (await session.scalars(sa.select(IntegrationConnection))).all()
    text = json.dumps([[a.action, a.changes] for a in audits] + [[c.config, c.last_error] for c in conns])
    for value in (CLIENT_SECRET, *values):
        assert value not in text


# -- client credentials ----------------------------------------------------------------------------


async def test_client_credentials_token_is_obtained_stored_and_reused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    oauth_server.configure(clients={CLIENT_ID: CLIENT_SECRET}, expires_in=3600)
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    assert created["scopes"] == ["api"]
    tokens = Tokens.from_runtime(runtime)
    actor = system_actor(created["tenantId"])

    first = await tokens.get_access_token(actor, created["id"])
    again = await tokens.get_access_token(actor, created["id"])
    assert first.value == again.value and first.version == again.version == 1
    state = oauth_server.state()
    assert state["tokenRequests"] == 1 and state["grants"] == {"client_credentials": 1}
    assert state["last"]["clientId"] == CLIENT_ID and state["last"]["scope"] == "api"

    shown = (await client.get(f"/v1/connections/{created['id']}", headers=admin_headers)).json()
    assert shown["status"] == "ACTIVE" and shown["tokenVersion"] == 1
    assert shown["credentialRoles"] == ["accessToken", "credentials"] and shown["tokenExpiresAt"]
    row = await _row(runtime, created["id"])
    async with runtime.db.unit_of_work(write=False) as session:
        secret = await session.get(IntegrationSecret, row.secret_ids["accessToken"])
    assert secret is not None and secret.token_type.value == "OAUTH2_ACCESS" and secret.expires_at is not None
    assert first.value not in secret.ciphertext

    # Refresh on demand (after a 401): the version the caller saw is stale → one new token.
    fresh = await tokens.get_access_token(actor, created["id"], stale_version=first.version)
    assert fresh.version == 2 and oauth_server.state()["tokenRequests"] == 2
    # A second caller holding the same old version gets the new token without another request.
    same = await tokens.get_access_token(actor, created["id"], stale_version=first.version)
    assert same.value == fresh.value and oauth_server.state()["tokenRequests"] == 2
    await _no_token_values_in_audit(runtime, first.value, fresh.value)


async def test_refused_client_is_error_with_event_and_5xx_is_retried(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    oauth_server.configure(clients={CLIENT_ID: "another-secret"})
    endpoint_id = await _subscribe(client, admin_headers, "connection.error", "connection.expired")
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    tokens = Tokens.from_runtime(runtime)
    actor = system_actor(created["tenantId"])
    with pytest.raises(ConnectionUnavailable) as refused:
        await tokens.get_access_token(actor, created["id"])
    assert "invalid_client" in refused.value.detail and refused.value.status == 409
    assert oauth_server.state()["tokenRequests"] == 1  # a refusal is not retried
    row = await _row(runtime, created["id"])
    assert row.status.value == "ERROR" and row.last_error and "invalid_client" in row.last_error
    [event] = await _events(runtime, "connection.error")
    assert event.payload["connectionId"] == created["id"] and event.payload["status"] == "ERROR"

    # New credentials make it usable again; 5xx answers are retried, then ERROR again.
    oauth_server.configure(clients=None, failures=[{"status": 503, "body": {}}] * 3)
    patched = await client.patch(
        f"/v1/connections/{created['id']}",
        json={"credentials": {"clientId": CLIENT_ID, "clientSecret": "rotated"}},
        headers=admin_headers,
    )
    assert patched.json()["status"] == "PENDING"
    before = oauth_server.state()["tokenRequests"]
    with pytest.raises(ConnectionUnavailable):
        await tokens.get_access_token(actor, created["id"])
    assert oauth_server.state()["tokenRequests"] - before == oauth.ATTEMPTS
    assert len(await _events(runtime, "connection.error")) == 2

    # Two failures then a success: retried within one call.
    oauth_server.configure(failures=[{"status": 500, "body": {}}, {"status": 502, "body": {}}])
    token = await tokens.get_access_token(actor, created["id"])
    assert token.value and (await _row(runtime, created["id"])).status.value == "ACTIVE"
    assert endpoint_id


async def test_disabled_and_static_connections_have_no_token(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    await client.patch(f"/v1/connections/{created['id']}", json={"status": "DISABLED"}, headers=admin_headers)
    tokens = Tokens.from_runtime(runtime)
    with pytest.raises(ConnectionUnavailable, match="DISABLED"):
        await tokens.get_access_token(system_actor(created["tenantId"]), created["id"])


# -- authorization code with PKCE ------------------------------------------------------------------


async def _authorize(
    client: httpx.AsyncClient, headers: dict[str, str], connection_id: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """Ask for the authorize URL, follow it at the mock (which redirects with a code) and return
    the URL answer and the callback's query parameters."""
    response = await client.get(f"/v1/connections/{connection_id}/oauth/authorize-url", headers=headers)
    assert response.status_code == 200, response.text
    link: dict[str, Any] = response.json()
    async with httpx.AsyncClient(trust_env=False) as outside:
        redirect = await outside.get(link["url"], follow_redirects=False)
    assert redirect.status_code in (302, 303), redirect.text
    location = urlsplit(redirect.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == link["redirectUri"]
    return link, {k: v[0] for k, v in parse_qs(location.query).items()}


async def test_authorization_code_with_pkce_then_refresh(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    created = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", credentials={"clientId": CLIENT_ID}
    )
    tokens = Tokens.from_runtime(runtime)
    actor = system_actor(created["tenantId"])
    with pytest.raises(ConnectionUnavailable, match="not authorized yet"):
        await tokens.get_access_token(actor, created["id"])
    assert (await _row(runtime, created["id"])).status.value == "PENDING"
    link, params = await _authorize(client, admin_headers, created["id"])
    query = parse_qs(urlsplit(link["url"]).query)
    assert link["redirectUri"] == "http://interlink.test/v1/oauth/callback"
    assert query["code_challenge_method"] == ["S256"] and query["scope"] == ["openid offline_access"]
    assert "code_verifier" not in link["url"] and query["client_id"] == [CLIENT_ID]

    done = await client.get("/v1/oauth/callback", params=params)  # public: no key
    assert done.status_code == 200, done.text
    assert done.json()["connectionId"] == created["id"] and done.json()["status"] == "ACTIVE"
    assert oauth_server.state()["grants"] == {"authorization_code": 1}
    row = await _row(runtime, created["id"])
    assert set(row.secret_ids) == {"credentials", "accessToken", "refreshToken"} and row.token_version == 1

    first = await tokens.get_access_token(actor, created["id"])
    await _expire(runtime, created["id"])
    refreshed = await tokens.get_access_token(actor, created["id"])
    assert refreshed.version == 2
    assert oauth_server.state()["grants"] == {"authorization_code": 1, "refresh_token": 1}
    actions = [a for a in await _actions(runtime, created["id"])]
    assert "connection.authorization_started" in actions and "connection.authorized" in actions
    await _no_token_values_in_audit(runtime, first.value, refreshed.value)


@pytest.mark.parametrize(
    "return_to",
    ["//evil.example/x", "https://evil.example/", "/ui\\..\\x", "ui/connections", "/a b", "/a#frag"],
)
async def test_return_to_must_stay_on_this_server(
    client: httpx.AsyncClient, admin_headers: dict[str, str], return_to: str
) -> None:
    created = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", credentials={"clientId": CLIENT_ID}
    )
    response = await client.get(
        f"/v1/connections/{created['id']}/oauth/authorize-url",
        params={"returnTo": return_to},
        headers=admin_headers,
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "returnTo"


async def test_callback_redirects_to_return_to_with_the_outcome(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", credentials={"clientId": CLIENT_ID}
    )
    url = f"/v1/connections/{created['id']}/oauth/authorize-url"
    link = (await client.get(url, params={"returnTo": "/app/done?tab=crm"}, headers=admin_headers)).json()
    state = parse_qs(urlsplit(link["url"]).query)["state"][0]
    # The user refuses at the provider: back to the path with the error, recorded on the connection.
    refused = await client.get(
        "/v1/oauth/callback", params={"state": state, "error": "access_denied", "error_description": "no"}
    )
    assert refused.status_code == 303
    back = urlsplit(refused.headers["location"])
    assert back.path == "/app/done"
    assert parse_qs(back.query) == {
        "tab": ["crm"],
        "oauth": ["error"],
        "error": ["oauth-authorization-failed"],
        "message": ["the provider refused the authorization: access_denied: no"],
    }
    assert "access_denied" in ((await _row(runtime, created["id"])).last_error or "")
    # A state that does not verify is never a redirect.
    forged = await client.get("/v1/oauth/callback", params={"state": state[:-2] + "xx", "code": "c"})
    assert_problem(forged, 400)


async def _actions(runtime: Runtime, connection_id: str) -> list[str]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(AuditEvent.action)
            .where(AuditEvent.resource_id == connection_id)
            .order_by(AuditEvent.id)
        )
        return list(rows.all())


async def test_callback_errors_are_clear_4xx(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    created = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", credentials={"clientId": CLIENT_ID}
    )
    _link, params = await _authorize(client, admin_headers, created["id"])
    body, mac = params["state"].split(".")

    forged = await client.get("/v1/oauth/callback", params={**params, "state": f"{body}.{mac[:-2]}AA"})
    assert assert_problem(forged, 400, "forged")["type"].endswith("invalid-oauth-state")
    altered = await client.get("/v1/oauth/callback", params={**params, "state": f"{body[:-2]}xx.{mac}"})
    assert_problem(altered, 400, "forged")
    for junk in ("", "nodot", "a.b.c", "é.é"):
        assert_problem(await client.get("/v1/oauth/callback", params={**params, "state": junk}), 400)
    assert_problem(await client.get("/v1/oauth/callback", params={"code": "x"}), 400)

    denied = await client.get(
        "/v1/oauth/callback",
        params={"state": params["state"], "error": "access_denied", "error_description": "The user said no"},
    )
    problem = assert_problem(denied, 400)
    assert problem["error"] == "access_denied" and "The user said no" in problem["detail"]
    assert (await _row(runtime, created["id"])).last_error == (
        "the provider refused the authorization: access_denied: The user said no"
    )

    oauth_server.configure(
        failures=[{"status": 400, "body": {"error": "invalid_grant", "error_description": "bad code"}}]
    )
    refused = await client.get("/v1/oauth/callback", params=params)
    problem = assert_problem(refused, 400)
    assert problem["error"] == "invalid_grant" and "bad code" in problem["detail"]
    assert (await _row(runtime, created["id"])).status.value == "PENDING"

    clock.shift(timedelta(minutes=11))
    expired = await client.get("/v1/oauth/callback", params=params)
    assert_problem(expired, 400, "expired")
    assert oauth_server.state()["tokenRequests"] == 1  # only the refused exchange reached the provider

    static = await client.post(
        "/v1/connections",
        json={"providerKey": "sendgrid", "name": "mail", "credentials": {"apiKey": "k"}},
        headers=admin_headers,
    )
    url = f"/v1/connections/{static.json()['id']}/oauth/authorize-url"
    assert_problem(await client.get(url, headers=admin_headers), 409)


async def test_invalid_grant_on_refresh_expires_the_connection(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    await _subscribe(client, admin_headers, "connection.expired")
    created = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", credentials={"clientId": CLIENT_ID}
    )
    _link, params = await _authorize(client, admin_headers, created["id"])
    assert (await client.get("/v1/oauth/callback", params=params)).status_code == 200
    await _expire(runtime, created["id"])
    oauth_server.configure(failures=[{"status": 400, "body": {"error": "invalid_grant"}}])
    tokens = Tokens.from_runtime(runtime)
    with pytest.raises(ConnectionUnavailable, match="EXPIRED"):
        await tokens.get_access_token(system_actor(created["tenantId"]), created["id"])
    row = await _row(runtime, created["id"])
    assert row.status.value == "EXPIRED"
    [event] = await _events(runtime, "connection.expired")
    assert event.payload["connectionId"] == created["id"] and "invalid_grant" in event.payload["reason"]
    assert await _events(runtime, "connection.error") == []
    # Authorizing again makes it ACTIVE.
    _link, params = await _authorize(client, admin_headers, created["id"])
    assert (await client.get("/v1/oauth/callback", params=params)).json()["status"] == "ACTIVE"


async def test_refresh_endpoint_obtains_a_token_now(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    oauth_server.configure(clients={CLIENT_ID: CLIENT_SECRET}, expires_in=3600)
    await _subscribe(client, admin_headers, "connection.error")
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    url = f"/v1/connections/{created['id']}/oauth/refresh"
    first = await client.post(url, headers=admin_headers)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "ACTIVE" and first.json()["tokenVersion"] == 1
    assert first.json()["credentialRoles"] == ["accessToken", "credentials"]
    again = await client.post(url, headers=admin_headers)  # forced: a token still valid is renewed
    assert again.json()["tokenVersion"] == 2 and oauth_server.state()["tokenRequests"] == 2
    assert CLIENT_SECRET not in again.text
    oauth_server.configure(delay_ms=300)  # concurrent requests: one token request
    burst = await asyncio.gather(*(client.post(url, headers=admin_headers) for _ in range(5)))
    assert {r.status_code for r in burst} == {200} and {r.json()["tokenVersion"] for r in burst} == {3}
    assert oauth_server.state()["tokenRequests"] == 3
    oauth_server.configure(delay_ms=0)

    # A refusal is a 409 naming the new status; the event marks the change, once.
    oauth_server.configure(clients={CLIENT_ID: "another-secret"})
    for _ in range(2):
        problem = assert_problem(await client.post(url, headers=admin_headers), 409)
        assert problem["connectionStatus"] == "ERROR" and "invalid_client" in problem["detail"]
    assert len(await _events(runtime, "connection.error")) == 1
    row = await _row(runtime, created["id"])
    assert row.status.value == "ERROR" and "invalid_client" in (row.last_error or "")
    oauth_server.configure(clients=None)
    recovered = await client.post(url, headers=admin_headers)
    assert recovered.status_code == 200 and recovered.json()["status"] == "ACTIVE"
    assert recovered.json()["lastError"] is None

    # Connections that cannot have a token.
    code = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", name="code", credentials={"clientId": CLIENT_ID}
    )
    pending = await client.post(f"/v1/connections/{code['id']}/oauth/refresh", headers=admin_headers)
    assert "not authorized yet" in assert_problem(pending, 409)["detail"]
    static = await client.post(
        "/v1/connections",
        json={"providerKey": "sendgrid", "name": "mail", "credentials": {"apiKey": "k"}},
        headers=admin_headers,
    )
    refused = await client.post(f"/v1/connections/{static.json()['id']}/oauth/refresh", headers=admin_headers)
    assert "not OAuth2" in assert_problem(refused, 409)["detail"]
    assert_problem(await client.post("/v1/connections/conn_nope/oauth/refresh", headers=admin_headers), 404)
    assert_problem(await client.post(url), 401)


@pytest.mark.parametrize(
    "answer",
    [
        {"access_token": ""},
        {"access_token": {"nested": 1}},
        {"access_token": "a\r\nX-Injected: 1"},
        {"access_token": "t" * 70_000},
        {"access_token": "ok", "refresh_token": "r\u0000"},
    ],
)
async def test_an_unusable_token_answer_is_a_clear_failure(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    oauth_server: OAuth2MockServer,
    answer: dict[str, Any],
) -> None:
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    oauth_server.configure(failures=[{"status": 200, "body": answer}])
    refused = await client.post(f"/v1/connections/{created['id']}/oauth/refresh", headers=admin_headers)
    problem = assert_problem(refused, 409)
    assert problem["error"] == "invalid_response" and problem["connectionStatus"] == "ERROR"
    assert "usable" in problem["detail"]
    row = await _row(runtime, created["id"])
    assert row.status.value == "ERROR" and "accessToken" not in row.secret_ids

    code = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", name="code", credentials={"clientId": CLIENT_ID}
    )
    _link, params = await _authorize(client, admin_headers, code["id"])
    oauth_server.configure(failures=[{"status": 200, "body": answer}])
    exchange = assert_problem(await client.get("/v1/oauth/callback", params=params), 400)
    assert exchange["error"] == "invalid_response"
    assert (await _row(runtime, code["id"])).status.value == "PENDING"


async def test_control_characters_of_a_token_refusal_are_not_stored(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    body = {"error": "invalid\u0000client", "error_description": "bad\u0000\nsecret"}
    oauth_server.configure(failures=[{"status": 401, "body": body}])
    refused = await client.post(f"/v1/connections/{created['id']}/oauth/refresh", headers=admin_headers)
    problem = assert_problem(refused, 409)
    assert problem["error"] == "invalid?client" and problem["connectionStatus"] == "ERROR"
    row = await _row(runtime, created["id"])
    assert row.last_error == "token endpoint answered 401 invalid?client: bad??secret"


async def test_unreadable_stored_credentials_are_a_409_not_a_500(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    secret_id = (await _row(runtime, created["id"])).secret_ids["credentials"]
    store = SecretStore.from_runtime(runtime)
    actor = system_actor(created["tenantId"])
    url = f"/v1/connections/{created['id']}/oauth/refresh"
    for tampered in ("not json", '["a"]', '{"clientId": 5}'):
        async with runtime.db.unit_of_work() as session:
            await store.rotate(session, actor, secret_id, tampered)
        problem = assert_problem(await client.post(url, headers=admin_headers), 409)
        assert "cannot be read" in problem["detail"] and tampered not in problem["detail"]
    async with runtime.db.unit_of_work() as session:
        await store.delete(session, actor, secret_id)
    assert "cannot be read" in assert_problem(await client.post(url, headers=admin_headers), 409)["detail"]
    # New credentials repair it.
    patched = await client.patch(
        f"/v1/connections/{created['id']}",
        json={"credentials": {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET}},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.text
    assert (await client.post(url, headers=admin_headers)).json()["status"] == "ACTIVE"


# -- single flight ---------------------------------------------------------------------------------


async def _active_client_credentials(
    client: httpx.AsyncClient, headers: dict[str, str], runtime: Runtime
) -> tuple[str, str]:
    created = await _connection(client, headers, "OAUTH2_CLIENT_CREDENTIALS")
    await Tokens.from_runtime(runtime).get_access_token(system_actor(created["tenantId"]), created["id"])
    await _expire(runtime, created["id"])
    return created["id"], created["tenantId"]


async def test_concurrent_callers_in_one_process_refresh_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    connection_id, tenant_id = await _active_client_credentials(client, admin_headers, runtime)
    oauth_server.configure(delay_ms=300)
    before = oauth_server.state()["tokenRequests"]
    tokens = Tokens.from_runtime(runtime)
    got = await asyncio.gather(
        *(tokens.get_access_token(system_actor(tenant_id), connection_id) for _ in range(20))
    )
    assert oauth_server.state()["tokenRequests"] - before == 1
    assert len({t.value for t in got}) == 1 and {t.version for t in got} == {2}


async def test_a_short_lived_token_is_used_for_half_its_life_not_refreshed_at_every_call(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    """A provider whose tokens live less than the minimum validity a call wants (60 s) still gets
    one token request per token, from callers in this process and through the proxy."""
    oauth_server.configure(expires_in=30)
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    actor = system_actor(created["tenantId"])
    tokens = Tokens.from_runtime(runtime)
    first = await tokens.get_access_token(actor, created["id"])
    assert oauth_server.state()["tokenRequests"] == 1
    got = await asyncio.gather(*(tokens.get_access_token(actor, created["id"]) for _ in range(20)))
    assert {t.version for t in got} == {first.version}
    proxy = f"/v1/connections/{created['id']}/proxy"
    for _ in range(5):
        response = await client.post(proxy, json={"method": "GET", "path": "/me"}, headers=admin_headers)
        assert response.status_code == 200, response.text
    assert oauth_server.state()["tokenRequests"] == 1

    clock.shift(timedelta(seconds=16))  # past half of its life: one refresh for the burst
    got = await asyncio.gather(*(tokens.get_access_token(actor, created["id"]) for _ in range(20)))
    assert {t.version for t in got} == {first.version + 1}
    for _ in range(3):
        response = await client.post(proxy, json={"method": "GET", "path": "/me"}, headers=admin_headers)
        assert response.status_code == 200, response.text
    assert oauth_server.state()["tokenRequests"] == 2


WORKER_SCRIPT = """
import asyncio, json, sys
from interlink.connections.oauth import Tokens
from interlink.core.actor import system_actor
from interlink.core.settings import Settings
from interlink.runtime import Runtime

async def main() -> None:
    runtime = Runtime(Settings())
    tokens = Tokens.from_runtime(runtime)
    print("ready", flush=True)
    sys.stdin.readline()
    actor = system_actor(sys.argv[1])
    got = await asyncio.gather(*(tokens.get_access_token(actor, sys.argv[2]) for _ in range(10)))
    print(json.dumps([[t.value, t.version] for t in got]), flush=True)
    await runtime.stop()

asyncio.run(main())
"""


async def test_two_processes_twenty_callers_one_token_request(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    settings: Settings,
    oauth_server: OAuth2MockServer,
    tmp_path: Path,
) -> None:
    connection_id, tenant_id = await _active_client_credentials(client, admin_headers, runtime)
    oauth_server.configure(delay_ms=300)
    before = oauth_server.state()["tokenRequests"]
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env.update(
        {
            "INTERLINK_DATABASE_URL": settings.effective_database_url,
            "INTERLINK_DATA_DIR": str(settings.data_dir),
            "INTERLINK_MASTER_KEYS": TEST_MASTER_KEYS,
            "INTERLINK_KEY_PEPPER": TEST_PEPPER,
            "INTERLINK_PROVIDERS_FILE": str(settings.providers_file),
            "INTERLINK_ALLOWED_TARGET_NETWORKS": '["127.0.0.0/8"]',
            "INTERLINK_LOG_LEVEL": "WARNING",
        }
    )
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), tenant_id, connection_id],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""
        for proc in procs:  # both start their 10 callers at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [await asyncio.to_thread(proc.communicate, timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    results: list[list[Any]] = []
    for (out, err), proc in zip(outputs, procs, strict=True):
        assert proc.returncode == 0, err
        results.extend(json.loads(out.strip().splitlines()[-1]))
    assert len(results) == 20
    assert oauth_server.state()["tokenRequests"] - before == 1
    assert len({value for value, _ in results}) == 1 and {version for _, version in results} == {2}


async def test_refresh_job_renews_tokens_that_expire_soon(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    oauth_server.configure(expires_in=300)  # 5 minutes: inside the 10-minute window
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    later = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS", name="later")
    tokens = Tokens.from_runtime(runtime)
    await tokens.get_access_token(system_actor(created["tenantId"]), created["id"])
    oauth_server.configure(expires_in=3600)
    await tokens.get_access_token(system_actor(later["tenantId"]), later["id"])
    # A token living shorter than twice the window is due once less than half its life is left.
    assert (await oauth.refresh_expiring(runtime, timedelta(minutes=10)))["due"] == 0
    clock.shift(timedelta(minutes=3))
    result = await oauth.refresh_expiring(runtime, timedelta(minutes=10))
    assert result == {"due": 1, "refreshed": 1, "failed": 0}
    assert (await _row(runtime, created["id"])).token_version == 2
    assert (await _row(runtime, later["id"])).token_version == 1
    assert (await oauth.refresh_expiring(runtime, timedelta(minutes=10)))["due"] == 0


async def test_the_refresh_schedule_runs_the_job(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    assert BUILTIN_SCHEDULES["connections.refresh"] == (CONNECTIONS_REFRESH, "*/5 * * * *")
    await ensure_builtin_schedules(runtime.db)
    oauth_server.configure(expires_in=600)
    created = await _connection(client, admin_headers, "OAUTH2_CLIENT_CREDENTIALS")
    await Tokens.from_runtime(runtime).get_access_token(system_actor(created["tenantId"]), created["id"])
    clock.shift(timedelta(minutes=6))  # the token now expires within the 10-minute window
    assert await schedules.fire_due(runtime.db) >= 1
    await runtime.make_worker().drain()
    async with runtime.db.unit_of_work(write=False) as session:
        jobs = (await session.scalars(sa.select(Job).where(Job.kind == CONNECTIONS_REFRESH))).all()
    assert [j.status for j in jobs] == ["succeeded"]
    assert (await _row(runtime, created["id"])).token_version == 2
    assert oauth_server.state()["tokenRequests"] == 2


# -- SDK -------------------------------------------------------------------------------------------


@pytest.fixture
def live_server_settings_overrides(tmp_path: Path, oauth_server: OAuth2MockServer) -> dict[str, object]:
    return {
        "providers_file": _provider_file(tmp_path, oauth_server.url),
        "allowed_target_networks": ["127.0.0.0/8"],
    }


def test_sdk_authorize_url_and_callback(live_server: LiveServer, oauth_server: OAuth2MockServer) -> None:
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        created = sdk.connections.create(
            provider_key="mock-oauth", name="crm", auth_type="OAUTH2_AUTHORIZATION_CODE",
            credentials={"clientId": CLIENT_ID},
        )  # fmt: skip
        link = sdk.connections.authorize_url(created.id)
        assert link.redirect_uri.endswith("/v1/oauth/callback")
        redirect = httpx.get(link.url, follow_redirects=False, trust_env=False)
        location = redirect.headers["location"]
        callback = httpx.get(
            f"{live_server.url}/v1/oauth/callback?{urlsplit(location).query}", trust_env=False
        )
        assert callback.status_code == 200, callback.text
        assert sdk.connections.get(created.id).status.value == "ACTIVE"


async def test_a_replayed_callback_is_refused_without_asking_the_provider(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, oauth_server: OAuth2MockServer
) -> None:
    created = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", credentials={"clientId": CLIENT_ID}
    )
    _link, params = await _authorize(client, admin_headers, created["id"])
    _other, second = await _authorize(client, admin_headers, created["id"])  # opened in another tab
    head = await client.head("/v1/oauth/callback", params=params)  # a link checker: nothing happens
    assert head.status_code == 405 and head.headers["allow"] == "GET" and not head.content
    assert oauth_server.state()["tokenRequests"] == 0
    assert (await client.get("/v1/oauth/callback", params=params)).status_code == 200
    requests = oauth_server.state()["tokenRequests"]

    for replay in (
        params,
        second,  # superseded: the connection got its token after this state was issued
        {"state": params["state"], "error": "access_denied", "error_description": "late"},
    ):
        problem = assert_problem(await client.get("/v1/oauth/callback", params=replay), 400, "replayed")
        assert problem["type"].endswith("invalid-oauth-state") and "already" in problem["detail"]
    assert oauth_server.state()["tokenRequests"] == requests  # nothing sent to the provider
    row = await _row(runtime, created["id"])
    assert row.status.value == "ACTIVE" and row.last_error is None and row.token_version == 1

    # A fresh authorization of the connected connection still works (re-consent).
    _link, again = await _authorize(client, admin_headers, created["id"])
    assert (await client.get("/v1/oauth/callback", params=again)).json()["status"] == "ACTIVE"


async def test_control_characters_of_the_provider_error_are_not_stored(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await _connection(
        client, admin_headers, "OAUTH2_AUTHORIZATION_CODE", credentials={"clientId": CLIENT_ID}
    )
    _link, params = await _authorize(client, admin_headers, created["id"])
    denied = await client.get(
        "/v1/oauth/callback",
        params={"state": params["state"], "error": "access\x00denied", "error_description": "no\x00\x01pe\n"},
    )
    problem = assert_problem(denied, 400)
    assert problem["error"] == "access?denied" and problem["errorDescription"] == "no??pe?"
    last_error = (await _row(runtime, created["id"])).last_error or ""
    assert last_error == "the provider refused the authorization: access?denied: no??pe?"
    assert "authorization_failed" in " ".join(await _actions(runtime, created["id"]))


def test_sdk_and_cli_refresh_and_authorize_url(
    live_server: LiveServer, oauth_server: OAuth2MockServer
) -> None:
    oauth_server.configure(expires_in=3600)
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        machine = sdk.connections.create(
            provider_key="mock-oauth", name="machine", auth_type="OAUTH2_CLIENT_CREDENTIALS",
            credentials={"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET},
        )  # fmt: skip
        refreshed = sdk.connections.refresh(machine.id)
        assert refreshed.status.value == "ACTIVE" and refreshed.token_version == 1
        crm = sdk.connections.create(
            provider_key="mock-oauth", name="crm", auth_type="OAUTH2_AUTHORIZATION_CODE",
            credentials={"clientId": CLIENT_ID},
        )  # fmt: skip
        link = sdk.connections.authorize_url(crm.id, return_to="/ui/connections/" + crm.id)
        redirect = httpx.get(link.url, follow_redirects=False, trust_env=False)
        callback = httpx.get(
            f"{live_server.url}/v1/oauth/callback?{urlsplit(redirect.headers['location']).query}",
            follow_redirects=False,
            trust_env=False,
        )
        assert callback.status_code == 303
        assert (
            callback.headers["location"] == f"/ui/connections/{crm.id}?oauth=connected&connectionId={crm.id}"
        )
        with pytest.raises(ConflictError):
            sdk.connections.refresh(
                sdk.connections.create(provider_key="sendgrid", name="mail", credentials={"apiKey": "k"}).id
            )

    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env.update({"INTERLINK_API_URL": live_server.url, "INTERLINK_API_KEY": live_server.admin_key})
    cli = run_interlink(["connections", "refresh", machine.id, "--json"], env=env)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["tokenVersion"] == 2 and CLIENT_SECRET not in cli.stdout
    shown = run_interlink(["connections", "authorize-url", crm.id, "--return-to", "/ui/x"], env=env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(oauth_server.authorize_url + "?") and "code_challenge=" in shown.stdout
    as_json = run_interlink(["connections", "authorize-url", crm.id, "--json"], env=env)
    assert json.loads(as_json.stdout)["redirectUri"].endswith("/v1/oauth/callback")
    not_oauth = run_interlink(["connections", "authorize-url", "conn_nope"], env=env)
    assert not_oauth.returncode == 1 and "404" in not_oauth.stderr
    bad = run_interlink(["connections", "authorize-url", crm.id, "--return-to", "//evil.example"], env=env)
    assert bad.returncode == 1 and "returnTo" in bad.stderr
