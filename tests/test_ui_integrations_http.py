"""The dashboard's integration pages over plain HTTP, on SQLite and PostgreSQL.

Providers, connections, the outbound request log and inbound sources: every page renders, CSRF on
every form, the REST scopes on every page, other tenants' ids answering 404, service validation
errors shown next to the field (never a 500), credentials never shown, OAuth2 connect and refresh
against oauth2-mock-server, and request log rows made by real calls to a receiver on 127.0.0.1.
Inbound sources are created, edited and deleted through forms; a form shown for one tenant is
refused once a platform key has switched to another.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiohttp import web

from interlink.bootstrap import BootstrapResult
from interlink.core.settings import Settings
from interlink.outbound.config import ApiClientConfig, RetryPolicy
from interlink.runtime import Runtime
from tests.conftest import auth, free_port, make_settings
from tests.external import OAuth2MockServer, oauth2_server_fixture
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)
from tests.test_ui_http import create_key, csrf_from, sign_in

__all__ = ["oauth2_server_fixture"]

CONNECTION_SCOPES = ["connections:read", "connections:write"]
CONNECTION_ID_RE = re.compile(r"/ui/connections/(conn_[A-Za-z0-9]+)\?notice=created")
API_KEY = "sk_live_UI-SECRET-VALUE"
CLIENT_ID = "interlink-ui"


def _provider_file(directory: Path, server_url: str, health_port: int, closed_port: int) -> Path:
    path = directory / "providers.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            providers:
              - key: ui-oauth
                name: UI OAuth
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
              - key: ui-local
                name: UI local
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: http://127.0.0.1:{health_port}
              - key: ui-closed
                name: UI closed
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: http://127.0.0.1:{closed_port}
              - key: ui-off
                name: UI off
                category: CRM
                status: DISABLED
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: http://127.0.0.1:{closed_port}
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
def health_port() -> int:
    """Where the ``ui-local`` provider's API answers (see :func:`health_api`)."""
    return free_port()


@pytest.fixture
def closed_port() -> int:
    """Where the ``ui-closed`` provider's API would be: nothing listens there."""
    return free_port()


@pytest.fixture
async def health_api(health_port: int) -> AsyncIterator[list[str]]:
    """A server on 127.0.0.1 answering every request with 200 JSON; yields the paths requested."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", health_port).start()
    yield seen
    await runner.cleanup()


@pytest.fixture
def settings(
    db_url: str, tmp_path: Path, oauth_server: OAuth2MockServer, health_port: int, closed_port: int
) -> Settings:
    """Loopback targets allowed (the receiver, the OAuth2 server and the health targets live on
    127.0.0.1)."""
    return make_settings(
        db_url,
        tmp_path / "data",
        providers_file=_provider_file(tmp_path, oauth_server.url, health_port, closed_port),
        allowed_target_networks=["127.0.0.0/8"],
        public_url="http://interlink.test",
    )


def stripe_form(token: str, **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf_token": token,
        "provider_key": "stripe",
        "environment": "PRODUCTION",
        "name": "Billing",
        "auth_type": "API_KEY",
        "credentials.API_KEY.apiKey": API_KEY,
    }
    form.update(fields)
    return form


async def create_via_ui(client: httpx.AsyncClient, token: str, **fields: Any) -> str:
    made = await client.post("/ui/connections", data=stripe_form(token, **fields))
    assert made.status_code == 303, made.text
    match = CONNECTION_ID_RE.fullmatch(made.headers["location"])
    assert match, made.headers["location"]
    return match.group(1)


async def api_connection(client: httpx.AsyncClient, key: str, connection_id: str) -> httpx.Response:
    return await client.get(f"/v1/connections/{connection_id}", headers=auth(key))


def field_error(page: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{re.escape(field)}-error">([^<]*)</p>', page)
    assert match, f"no error shown for {field}"
    return html.unescape(match.group(1))


async def outbound_calls(runtime: Runtime, receiver: Receiver, tenant_id: str, connection_id: str) -> None:
    """Two real calls of the connection through ``runtime.outbound`` (a 200 and a 404), logged."""
    receiver.script("/v1/balance", Answer(200, {"Content-Type": "application/json"}, '{"available": []}'))
    receiver.script("/v1/missing", Answer(404, body="no such thing"))
    api = runtime.outbound.client(
        ApiClientConfig(
            tenant_id=tenant_id,
            base_url=receiver.url,
            connection_id=connection_id,
            provider_key="stripe",
            retry=RetryPolicy(max_attempts=1),
        )
    )
    await api.call("GET", "/v1/balance", query={"api_key": "Q-SECRET"})
    await api.call("GET", "/v1/missing")
    assert runtime.outbound.log is not None
    await runtime.outbound.log.flush()


# -- sessions, scopes and CSRF ---------------------------------------------------------------------


async def test_pages_need_a_session(client: httpx.AsyncClient) -> None:
    for path in (
        "/ui/providers",
        "/ui/providers/stripe",
        "/ui/connections",
        "/ui/connections/new",
        "/ui/api-requests",
        "/ui/inbound-sources",
    ):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/ui/login?reason=missing"


async def test_every_page_renders(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime, receiver: Receiver
) -> None:
    token = await sign_in(client, admin.key)
    overview = await client.get("/ui")
    for link in ("/ui/providers", "/ui/connections", "/ui/api-requests", "/ui/inbound-sources"):
        assert f'href="{link}"' in overview.text
    connection_id = await create_via_ui(
        client, token, **{"config.account_id": "acct_123", "metadata": '{"team": "billing"}'}
    )
    await outbound_calls(runtime, receiver, admin.tenant_id, connection_id)
    source = await client.post(
        "/v1/inbound-sources", json={"name": "stripe-in", "scheme": "stripe"}, headers=auth(admin.key)
    )
    assert source.status_code == 201, source.text
    source_id = source.json()["id"]
    listed = await client.get("/v1/api-requests", headers=auth(admin.key))
    calls = listed.json()["data"]
    assert len(calls) == 2
    pages = [
        "/ui/providers",
        "/ui/providers?category=PAYMENTS&status=ACTIVE",
        "/ui/providers?q=zendesk",
        "/ui/providers/stripe",
        "/ui/providers/zendesk",
        "/ui/providers/ui-oauth",
        "/ui/providers/ui-off",
        "/ui/connections",
        "/ui/connections?provider=stripe&status=ACTIVE&environment=PRODUCTION",
        "/ui/connections/new",
        "/ui/connections/new?provider=zendesk",
        f"/ui/connections/{connection_id}",
        f"/ui/connections/{connection_id}/edit",
        "/ui/api-requests",
        f"/ui/api-requests?connectionId={connection_id}&errorClass=http_4xx",
        "/ui/api-requests?status=200&since=2020-01-01T00:00&until=2099-01-01T00:00",
        f"/ui/api-requests/{calls[0]['id']}",
        f"/ui/api-requests/{calls[1]['id']}",
        "/ui/inbound-sources",
        f"/ui/inbound-sources/{source_id}",
    ]
    shown: dict[str, str] = {}
    for path in pages:
        response = await client.get(path)
        assert response.status_code == 200, (path, response.text[:2000])
        assert API_KEY not in response.text and "Q-SECRET" not in response.text, path
        shown[path] = response.text
    assert "Zendesk" in shown["/ui/providers?q=zendesk"]
    assert "Stripe" not in shown["/ui/providers?q=zendesk"]
    stripe = shown["/ui/providers/stripe"]
    for fact in (
        "https://api.stripe.com",
        "PCI DSS Level 1",
        "<code>stripe</code>",
        "account_id",
        "100 requests",
    ):
        assert fact in stripe, fact
    # The connector serving a provider, with its resources; none for a provider without one.
    connector = stripe.split('id="provider-connector"', 1)[1].split("</table>", 1)[0]
    assert "<code>customers</code>" in connector and "list, get, create, update, delete" in connector
    assert "<code>created</code>" in connector  # the incremental filter
    assert "<code>users</code>" in shown["/ui/providers/zendesk"]
    assert "No connector serves this provider" in shown["/ui/providers/ui-oauth"]
    # A DISABLED provider takes no new connections: no "Create connection" button.
    assert "/ui/connections/new?provider=stripe" in stripe
    assert "/ui/connections/new?provider=ui-off" not in shown["/ui/providers/ui-off"]
    assert 'value="ui-local"' in shown["/ui/connections/new"]
    assert 'value="ui-off"' not in shown["/ui/connections/new"]
    off = await client.get("/ui/connections/new?provider=ui-off")
    assert off.status_code == 422 and "disabled in the catalogue" in html.unescape(off.text)
    assert 'name="config.subdomain"' in shown["/ui/connections/new?provider=zendesk"]
    detail = shown[f"/ui/connections/{connection_id}"]
    assert "<code>credentials</code>: stored" in detail
    assert 'id="connection-health-slot"' in detail  # the reserved Health panel
    assert re.search(r'id="metric-count">2 ', detail)
    assert "connection.created" in detail  # the audit trail
    for name in ("pending", "expired", "error", "disabled", "revoked"):
        assert f">{name}</code>" in detail
    log_page = shown["/ui/api-requests"]
    assert "api_key=[redacted]" in log_page and connection_id in log_page
    only_4xx = shown[f"/ui/api-requests?connectionId={connection_id}&errorClass=http_4xx"]
    assert calls[0]["id"] in only_4xx and calls[1]["id"] not in only_4xx
    one = shown[f"/ui/api-requests/{calls[0]['id']}"]
    assert "no such thing" in one and 'id="request-timing"' in one and calls[0]["correlationId"] in one
    assert "/v1/inbound/" in shown[f"/ui/inbound-sources/{source_id}"]


async def test_bad_filters_are_pages_not_500s(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    await sign_in(client, admin.key)
    for path, field in [
        ("/ui/providers?category=NOPE", "category"),
        ("/ui/providers?status=NOPE", "status"),
        ("/ui/connections?status=NOPE", "status"),
        ("/ui/connections?environment=MARS", "environment"),
        ("/ui/api-requests?errorClass=bogus", "errorClass"),
        ("/ui/api-requests?status=abc", "status"),
        ("/ui/api-requests?status=1000", "status"),
        ("/ui/api-requests?since=yesterday", "since"),
        ("/ui/api-requests?connectionId=conn%00x", "connectionId"),
        ("/ui/connections?provider=a%00b", "provider"),
    ]:
        response = await client.get(path)
        assert response.status_code == 422, (path, response.text[:500])
        assert field in response.text, path
    assert (await client.get("/ui/providers/nope")).status_code == 404
    assert (await client.get("/ui/api-requests?status=799")).status_code == 200  # as GET /v1/api-requests
    assert (await client.get("/ui/api-requests/apr_nope")).status_code == 404
    assert (await client.get("/ui/connections/new?provider=nope")).status_code == 422


async def test_forms_without_a_valid_csrf_token_change_nothing(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    token = await sign_in(client, admin.key)
    connection_id = await create_via_ui(client, token)
    other = httpx.AsyncClient(transport=client._transport, base_url="http://interlink.test")
    async with other:
        foreign = csrf_from((await other.get("/ui/login")).text)
    posts = {
        "/ui/connections": stripe_form("", name="Sneaky"),
        f"/ui/connections/{connection_id}/edit": {"name": "Sneaky"},
        f"/ui/connections/{connection_id}/disable": {},
        f"/ui/connections/{connection_id}/delete": {"confirm": "yes"},
        f"/ui/connections/{connection_id}/connect": {},
        f"/ui/connections/{connection_id}/refresh": {},
    }
    for path, body in posts.items():
        body = {k: v for k, v in body.items() if k != "csrf_token"}
        for bad in ({}, {"csrf_token": "0" * 64}, {"csrf_token": foreign}):
            response = await client.post(path, data={**body, **bad})
            assert response.status_code == 403, (path, bad)
            assert "expired or did not come from this dashboard" in response.text
    shown = (await api_connection(client, admin.key, connection_id)).json()
    assert shown["name"] == "Billing" and shown["status"] == "ACTIVE"
    listed = await client.get("/v1/connections", headers=auth(admin.key))
    assert len(listed.json()["data"]) == 1


async def test_read_scope_reads_but_cannot_change(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    made = await client.post(
        "/v1/connections",
        json={"providerKey": "stripe", "name": "Billing", "credentials": {"apiKey": API_KEY}},
        headers=auth(admin.key),
    )
    connection_id = made.json()["id"]
    reader = await create_key(client, admin.key, ["connections:read", "tenants:read"])
    token = await sign_in(client, reader["key"])
    page = await client.get(f"/ui/connections/{connection_id}")
    assert page.status_code == 200
    assert "Disable connection" not in page.text and "Delete connection" not in page.text
    assert "needs the <code>audit:read</code> scope" in page.text
    assert "Create connection" not in (await client.get("/ui/connections")).text
    assert (await client.get("/ui/connections/new")).status_code == 403
    assert (await client.get("/ui/inbound-sources")).status_code == 403  # webhooks:read
    for action in ("disable", "delete", "edit"):
        response = await client.post(
            f"/ui/connections/{connection_id}/{action}", data={"csrf_token": token, "confirm": "yes"}
        )
        assert response.status_code == 403, action
        assert "connections:write" in response.text
    assert (await api_connection(client, admin.key, connection_id)).json()["status"] == "ACTIVE"
    nothing = await create_key(client, admin.key, ["tenants:read"])
    await sign_in(client, nothing["key"])
    assert (await client.get("/ui/providers/stripe")).status_code == 200  # any key, as the API
    assert (await client.get("/ui/connections")).status_code == 403
    assert (await client.get("/ui/api-requests")).status_code == 403
    assert 'href="/ui/connections"' not in (await client.get("/ui")).text


# -- connections -----------------------------------------------------------------------------------


async def test_create_form_shows_errors_next_to_fields(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    key = await create_key(client, admin.key, CONNECTION_SCOPES)
    token = await sign_in(client, key["key"])
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"name": ""}, 422, "name", "Enter a name"),
        ({"name": " padded "}, 422, "name", "without surrounding spaces"),
        ({"config.account_id": "not-an-account"}, 422, "config.account_id", "does not match"),
        ({"config_json": '{"account_id": '}, 422, "config", "config must be a JSON object"),
        ({"config_json": '{"other": 1}'}, 422, "config", "Additional properties"),
        ({"credentials.API_KEY.apiKey": ""}, 422, "credentials.apiKey", "credentials.apiKey is required"),
        ({"metadata": "[1, 2]"}, 422, "metadata", "metadata must be a JSON object"),
        ({"environment": "STAGING"}, 422, "environment", "has no STAGING environment"),
        ({"environment": "MARS"}, 422, "environment", "Choose an environment"),
        ({"auth_type": "BASIC"}, 422, "authType", "does not accept BASIC"),
        ({"name": "a\x00b"}, 422, "name", "NUL"),
        ({"scopes": "read"}, 422, "scopes", "only used with OAUTH2"),
    ]
    for fields, status, field, message in cases:
        response = await client.post("/ui/connections", data=stripe_form(token, **fields))
        assert response.status_code == status, (fields, response.text[:1000])
        if field == "config" and "Additional" in message:
            assert message in html.unescape(response.text), fields
        else:
            assert message in field_error(response.text, field), (fields, field_error(response.text, field))
        assert API_KEY not in response.text  # a secret is never sent back in the form
    kept = await client.post("/ui/connections", data=stripe_form(token, name=""))
    assert 'value="PRODUCTION" selected' in kept.text
    unknown = await client.post("/ui/connections", data=stripe_form(token, provider_key="nope"))
    assert unknown.status_code == 422 and "Choose a provider" in field_error(unknown.text, "providerKey")
    await create_via_ui(client, token)
    taken = await client.post("/ui/connections", data=stripe_form(token))
    assert taken.status_code == 409 and "exists already" in field_error(taken.text, "name")
    zendesk = await client.post(
        "/ui/connections",
        data=stripe_form(
            token,
            provider_key="zendesk",
            name="Support",
            auth_type="BASIC",
            **{"credentials.BASIC.username": "agent@example.com", "credentials.BASIC.password": "pw"},
        ),
    )
    assert zendesk.status_code == 422
    assert "config.subdomain" in field_error(zendesk.text, "config.subdomain")
    assert 'value="agent@example.com"' in zendesk.text and 'value="pw"' not in zendesk.text
    listed = await client.get("/v1/connections", headers=auth(admin.key))
    assert [c["name"] for c in listed.json()["data"]] == ["Billing"]


async def test_connection_lifecycle_through_forms(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    token = await sign_in(client, admin.key)
    connection_id = await create_via_ui(client, token, **{"config.account_id": "acct_1"})
    created = (await api_connection(client, admin.key, connection_id)).json()
    assert created["config"] == {"account_id": "acct_1"} and created["credentialRoles"] == ["credentials"]
    assert created["status"] == "ACTIVE" and created["authType"] == "API_KEY"
    edit = await client.get(f"/ui/connections/{connection_id}/edit")
    assert 'value="acct_1"' in edit.text and API_KEY not in edit.text
    saved = await client.post(
        f"/ui/connections/{connection_id}/edit",
        data={
            "csrf_token": token,
            "name": "Billing EU",
            "config.account_id": "",
            "metadata": '{"region": "eu"}',
            "credentials.API_KEY.apiKey": "sk_live_REPLACED",
        },
    )
    assert saved.status_code == 303, saved.text
    shown = (await api_connection(client, admin.key, connection_id)).json()
    assert shown["name"] == "Billing EU" and shown["config"] == {} and shown["metadata"] == {"region": "eu"}
    bad = await client.post(
        f"/ui/connections/{connection_id}/edit",
        data={"csrf_token": token, "name": "Billing EU", "config.account_id": "nope"},
    )
    assert bad.status_code == 422 and "does not match" in field_error(bad.text, "config.account_id")
    page = await client.get(f"/ui/connections/{connection_id}")
    assert "sk_live_REPLACED" not in page.text and "credentialFields" in html.unescape(page.text)

    disabled = await client.post(f"/ui/connections/{connection_id}/disable", data={"csrf_token": token})
    assert disabled.status_code == 303
    assert (await api_connection(client, admin.key, connection_id)).json()["status"] == "DISABLED"
    page = await client.get(disabled.headers["location"])
    assert 'id="connection-status">disabled<' in page.text and "Enable connection" in page.text
    enabled = await client.post(f"/ui/connections/{connection_id}/enable", data={"csrf_token": token})
    assert enabled.status_code == 303
    assert (await api_connection(client, admin.key, connection_id)).json()["status"] == "ACTIVE"
    refused = await client.post(f"/ui/connections/{connection_id}/refresh", data={"csrf_token": token})
    assert refused.status_code == 409 and "not OAuth2" in refused.text
    no_link = await client.post(f"/ui/connections/{connection_id}/connect", data={"csrf_token": token})
    assert no_link.status_code == 409 and "only OAUTH2_AUTHORIZATION_CODE" in no_link.text

    unconfirmed = await client.post(f"/ui/connections/{connection_id}/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 422 and "Tick the box" in field_error(unconfirmed.text, "confirm")
    deleted = await client.post(
        f"/ui/connections/{connection_id}/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/ui/connections?notice=deleted"
    assert (await api_connection(client, admin.key, connection_id)).status_code == 404
    assert (await client.get(f"/ui/connections/{connection_id}")).status_code == 404
    trail = await client.get(
        "/v1/audit-events", params={"resourceId": connection_id}, headers=auth(admin.key)
    )
    actions = [e["action"] for e in trail.json()["data"]]
    assert actions.count("connection.updated") == 3 and "connection.deleted" in actions
    assert "sk_live_" not in trail.text


async def test_oauth_connect_and_refresh_now(
    client: httpx.AsyncClient, admin: BootstrapResult, oauth_server: OAuth2MockServer
) -> None:
    token = await sign_in(client, admin.key)
    connection_id = await create_via_ui(
        client,
        token,
        provider_key="ui-oauth",
        name="CRM",
        auth_type="OAUTH2_AUTHORIZATION_CODE",
        **{"credentials.OAUTH2_AUTHORIZATION_CODE.clientId": CLIENT_ID},
    )
    page = await client.get(f"/ui/connections/{connection_id}")
    assert 'id="connection-status">pending<' in page.text
    assert ">Connect</button>" in page.text and "Refresh token now" in page.text
    connect = await client.post(f"/ui/connections/{connection_id}/connect", data={"csrf_token": token})
    assert connect.status_code == 200, connect.text
    match = re.search(r'id="authorize-link" href="([^"]+)"', connect.text)
    assert match
    url = html.unescape(match.group(1))
    assert url.startswith(oauth_server.authorize_url)
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [CLIENT_ID] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://interlink.test/v1/oauth/callback"]
    async with httpx.AsyncClient(trust_env=False) as outside:
        redirect = await outside.get(url, follow_redirects=False)
    assert redirect.status_code in (302, 303), redirect.text
    callback = urlsplit(redirect.headers["location"])
    done = await client.get(f"/v1/oauth/callback?{callback.query}")
    # Started from the dashboard: the callback sends the user back to the connection's page.
    assert done.status_code == 303, done.text
    back = done.headers["location"]
    assert back == f"/ui/connections/{connection_id}?oauth=connected&connectionId={connection_id}"
    landed = await client.get(back)
    assert "Access granted at the provider" in landed.text
    before = (await api_connection(client, admin.key, connection_id)).json()
    assert before["status"] == "ACTIVE" and before["tokenVersion"] == 1

    refreshed = await client.post(f"/ui/connections/{connection_id}/refresh", data={"csrf_token": token})
    assert refreshed.status_code == 303, refreshed.text
    assert refreshed.headers["location"].endswith("?notice=refreshed")
    after = (await api_connection(client, admin.key, connection_id)).json()
    assert after["tokenVersion"] == 2 and after["lastRefreshedAt"] is not None
    assert oauth_server.state()["grants"] == {"authorization_code": 1, "refresh_token": 1}
    page = await client.get(refreshed.headers["location"])
    assert "A new access token was obtained" in page.text
    assert (
        "<code>accessToken</code>: stored" in page.text and "<code>refreshToken</code>: stored" in page.text
    )
    assert "connection.authorized" in page.text and "connection.token_refreshed" in page.text

    machine = await create_via_ui(
        client,
        token,
        provider_key="ui-oauth",
        name="CRM machine",
        auth_type="OAUTH2_CLIENT_CREDENTIALS",
        **{
            "credentials.OAUTH2_CLIENT_CREDENTIALS.clientId": CLIENT_ID,
            "credentials.OAUTH2_CLIENT_CREDENTIALS.clientSecret": "cs-secret",
        },
    )
    obtained = await client.post(f"/ui/connections/{machine}/refresh", data={"csrf_token": token})
    assert obtained.status_code == 303, obtained.text
    assert (await api_connection(client, admin.key, machine)).json()["status"] == "ACTIVE"
    await client.post(f"/ui/connections/{machine}/disable", data={"csrf_token": token})
    refused = await client.post(f"/ui/connections/{machine}/refresh", data={"csrf_token": token})
    assert refused.status_code == 409 and "DISABLED" in refused.text


async def test_other_tenants_ids_are_not_found(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime, receiver: Receiver
) -> None:
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    other_id = other.json()["id"]
    as_other = auth(admin.key, other_id)
    theirs = (
        await client.post(
            "/v1/connections",
            json={"providerKey": "stripe", "name": "Theirs", "credentials": {"apiKey": API_KEY}},
            headers=as_other,
        )
    ).json()["id"]
    await outbound_calls(runtime, receiver, other_id, theirs)
    their_call = (await client.get("/v1/api-requests", headers=as_other)).json()["data"][0]["id"]
    their_source = (
        await client.post("/v1/inbound-sources", json={"name": "in", "scheme": "github"}, headers=as_other)
    ).json()["id"]
    mine = await create_key(client, admin.key, [*CONNECTION_SCOPES, "webhooks:read", "webhooks:write"])
    token = await sign_in(client, mine["key"])
    for path in (
        f"/ui/connections/{theirs}",
        f"/ui/connections/{theirs}/edit",
        f"/ui/api-requests/{their_call}",
        f"/ui/inbound-sources/{their_source}",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.text
    for path in (
        f"/ui/connections/{theirs}/edit",
        f"/ui/connections/{theirs}/enable",
        f"/ui/connections/{theirs}/disable",
        f"/ui/connections/{theirs}/delete",
        f"/ui/connections/{theirs}/connect",
        f"/ui/connections/{theirs}/refresh",
        f"/ui/inbound-sources/{their_source}/secret/rotate",
    ):
        response = await client.post(path, data={"csrf_token": token, "confirm": "yes", "name": "Mine now"})
        assert response.status_code == 404, path
    for path in ("/ui/connections", "/ui/api-requests", "/ui/inbound-sources"):
        page = await client.get(path)
        assert page.status_code == 200
        for their in (theirs, their_call, their_source):
            assert their not in page.text, (path, their)
    filtered = await client.get("/ui/api-requests", params={"connectionId": theirs})
    assert filtered.status_code == 200 and their_call not in filtered.text  # the filter is echoed only
    shown = (await client.get(f"/v1/connections/{theirs}", headers=as_other)).json()
    assert shown["name"] == "Theirs" and shown["status"] == "ACTIVE"


async def test_inbound_source_secret_rotation(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    made = await client.post(
        "/v1/inbound-sources", json={"name": "github-in", "scheme": "github"}, headers=auth(admin.key)
    )
    source_id = made.json()["id"]
    token = await sign_in(client, admin.key)
    page = await client.get(f"/ui/inbound-sources/{source_id}")
    assert 'id="source-secret-count">1 active' in page.text and "source-secret" in page.text
    assert 'id="source-secret"' not in page.text
    rotated = await client.post(
        f"/ui/inbound-sources/{source_id}/secret/rotate",
        data={"csrf_token": token, "secret": "provider-given-secret-value"},
    )
    assert rotated.status_code == 201, rotated.text
    assert 'value="provider-given-secret-value"' in rotated.text
    assert 'id="source-secret-count">2 active' in rotated.text
    bad = await client.post(
        f"/ui/inbound-sources/{source_id}/secret/rotate", data={"csrf_token": token, "overlap_seconds": "x"}
    )
    assert bad.status_code == 422 and "whole number" in field_error(bad.text, "overlapSeconds")
    assert 'name="overlap_seconds" type="text" inputmode="numeric" maxlength="10" value="x"' in bad.text
    refused = await client.post(f"/ui/inbound-sources/{source_id}/secret/rotate", data={})
    assert refused.status_code == 403
    trail = await client.get("/v1/audit-events", params={"resourceId": source_id}, headers=auth(admin.key))
    assert [e["action"] for e in trail.json()["data"]].count("inbound_source.secret_rotated") == 1
    assert "provider-given-secret-value" not in trail.text


# -- connection health -----------------------------------------------------------------------------


def health_status_of(page: str) -> str:
    match = re.search(r'<dd id="health-status">(.*?)</dd>', page, re.S)
    assert match, "no health status shown"
    return match.group(1)


def check_rows(page: str) -> dict[str, str]:
    """The latest check's results on the Health panel: check name → status class."""
    table = re.search(r'<table [^>]*id="health-latest-checks">(.*?)</table>', page, re.S)
    assert table, "no latest check shown"
    return dict(
        re.findall(r'<tr data-check="(\w+)">.*?<span class="badge status-(\w+)">', table.group(1), re.S)
    )


async def local_connection(client: httpx.AsyncClient, key: str, provider: str, name: str) -> str:
    made = await client.post(
        "/v1/connections", json={"providerKey": provider, "name": name}, headers=auth(key)
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def test_health_panel_runs_checks_against_real_servers(
    client: httpx.AsyncClient, admin: BootstrapResult, health_api: list[str], closed_port: int
) -> None:
    token = await sign_in(client, admin.key)
    up = await local_connection(client, admin.key, "ui-local", "Local")
    down = await local_connection(client, admin.key, "ui-closed", "Closed")
    page = await client.get(f"/ui/connections/{up}")
    assert page.status_code == 200, page.text
    panel = page.text.split('id="connection-health-slot"')[1]
    assert 'id="connection-health"' in panel and "not checked yet" in health_status_of(page.text)
    assert "No health checks yet." in panel and 'id="health-latest-checks"' not in panel
    assert "Run health check now" in panel
    assert re.search(r'id="health-availability">24 h: — · 7 d: — · 30 d: —', page.text)
    listed = await client.get("/ui/connections")
    assert listed.text.count("not checked yet") == 2

    ran = await client.post(f"/ui/connections/{up}/health-checks", data={"csrf_token": token})
    assert ran.status_code == 303, ran.text
    assert ran.headers["location"] == f"/ui/connections/{up}?notice=health-checked"
    assert health_api == ["/"]  # a provider without a verification call: a GET of the base URL
    page = await client.get(ran.headers["location"])
    assert "Health check finished" in page.text
    assert 'class="badge status-healthy">healthy<' in health_status_of(page.text)
    assert re.search(r'id="health-score">100 ', page.text)
    assert re.search(r'id="health-availability">24 h: 100.0 % · 7 d: 100.0 % · 30 d: 100.0 %', page.text)
    assert check_rows(page.text) == {"dns": "pass", "tcp": "pass", "tls": "skip", "http": "pass"}
    assert "answered 200" in page.text
    [check] = (await client.get(f"/v1/connections/{up}/health-checks", headers=auth(admin.key))).json()[
        "data"
    ]
    history = page.text.split('id="health-history"')[1]
    assert f'<tr data-health-check-id="{check["id"]}">' in history and ">manual<" in history
    assert f'href="/ui/connections/{up}/health-checks/{check["id"]}"' in history

    detail = await client.get(f"/ui/connections/{up}/health-checks/{check['id']}")
    assert detail.status_code == 200, detail.text
    assert 'id="check-status">healthy<' in detail.text and 'id="check-trigger">manual<' in detail.text
    assert "127.0.0.1" in detail.text.split('id="check-connectivity"')[1]
    assert "(status 200)" in detail.text and 'data-check="http"' in detail.text
    assert (await client.get(f"/ui/connections/{up}/health-checks/hc_nope")).status_code == 404
    assert (await client.get(f"/ui/connections/{down}/health-checks/{check['id']}")).status_code == 404

    failed = await client.post(f"/ui/connections/{down}/health-checks", data={"csrf_token": token})
    assert failed.status_code == 303, failed.text
    page = await client.get(f"/ui/connections/{down}")
    assert 'class="badge status-unhealthy">unhealthy<' in health_status_of(page.text)
    assert check_rows(page.text) == {"dns": "pass", "tcp": "fail", "tls": "skip", "http": "skip"}
    assert re.search(r'id="health-score">15 ', page.text)
    assert f"127.0.0.1:{closed_port}" in page.text
    listed = await client.get("/ui/connections")
    row_up = listed.text.split(f'data-connection-id="{up}"')[1].split("</tr>")[0]
    row_down = listed.text.split(f'data-connection-id="{down}"')[1].split("</tr>")[0]
    assert "status-healthy" in row_up and ">100<" in row_up
    assert "status-unhealthy" in row_down and ">15<" in row_down

    # A connection that cannot be called: the reason on the page (409), nothing probed.
    await client.post(f"/ui/connections/{up}/disable", data={"csrf_token": token})
    refused = await client.post(f"/ui/connections/{up}/health-checks", data={"csrf_token": token})
    assert refused.status_code == 409, refused.text
    assert "is DISABLED" in refused.text and 'role="alert"' in refused.text
    assert health_api == ["/"]
    trail = await client.get("/v1/audit-events", params={"resourceId": up}, headers=auth(admin.key))
    assert [e["action"] for e in trail.json()["data"]].count("connection.health_checked") == 1


async def test_health_check_needs_write_scope_csrf_and_own_tenant(
    client: httpx.AsyncClient, admin: BootstrapResult, health_api: list[str]
) -> None:
    mine = await local_connection(client, admin.key, "ui-local", "Local")
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    as_other = auth(admin.key, other.json()["id"])
    made = await client.post(
        "/v1/connections", json={"providerKey": "ui-local", "name": "Theirs"}, headers=as_other
    )
    theirs = made.json()["id"]
    their_check = await client.post(f"/v1/connections/{theirs}/health-checks", headers=as_other)
    assert their_check.status_code == 201, their_check.text
    assert health_api == ["/"]

    reader = await create_key(client, admin.key, ["connections:read", "tenants:read"])
    token = await sign_in(client, reader["key"])
    page = await client.get(f"/ui/connections/{mine}")
    assert page.status_code == 200 and 'id="connection-health"' in page.text
    assert "Run health check now" not in page.text
    refused = await client.post(f"/ui/connections/{mine}/health-checks", data={"csrf_token": token})
    assert refused.status_code == 403 and "connections:write" in refused.text

    writer = await create_key(client, admin.key, CONNECTION_SCOPES)
    token = await sign_in(client, writer["key"])
    for bad in ({}, {"csrf_token": "0" * 64}):
        response = await client.post(f"/ui/connections/{mine}/health-checks", data=bad)
        assert response.status_code == 403, bad
        assert "expired or did not come from this dashboard" in response.text
    # Another tenant's connection and check are not found, and nothing is probed for them.
    their_id = their_check.json()["id"]
    for path in (
        f"/ui/connections/{theirs}/health-checks/{their_id}",
        f"/ui/connections/{mine}/health-checks/{their_id}",
    ):
        assert (await client.get(path)).status_code == 404, path
    posted = await client.post(f"/ui/connections/{theirs}/health-checks", data={"csrf_token": token})
    assert posted.status_code == 404
    assert health_api == ["/"]
    history = await client.get(f"/v1/connections/{mine}/health-checks", headers=auth(admin.key))
    assert history.json()["data"] == []


# -- inbound sources: create, edit, delete ---------------------------------------------------------


def source_form(token: str, **fields: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "csrf_token": token,
        "name": "Shop hooks",
        "scheme": "hmac",
        "scheme_options": '{"header": "X-Signature"}',
        "secret": "provider-issued-secret",
        "ip_allowlist": "10.0.0.0/8\n192.0.2.0/24",
        "tolerance_seconds": "120",
        "enabled": "yes",
    }
    form.update(fields)
    return form


async def test_inbound_sources_are_created_edited_and_deleted_through_forms(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    connection = await client.post(
        "/v1/connections",
        json={"providerKey": "stripe", "name": "Billing", "credentials": {"apiKey": API_KEY}},
        headers=auth(admin.key),
    )
    connection_id = connection.json()["id"]
    writer = await create_key(client, admin.key, ["webhooks:read", "webhooks:write", "connections:read"])
    token = await sign_in(client, writer["key"])
    listing = await client.get("/ui/inbound-sources")
    assert 'href="/ui/inbound-sources/new"' in listing.text
    blank = await client.get(f"/ui/inbound-sources/new?connectionId={connection_id}")
    assert blank.status_code == 200
    assert f'<option value="{connection_id}" selected>Billing ({connection_id})</option>' in blank.text

    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"name": ""}, "name", "Enter a name"),
        ({"name": "a\x00b"}, "name", "NUL"),
        ({"scheme": "nope"}, "scheme", "scheme must be one of"),
        ({"scheme_options": ""}, "schemeOptions", "signature header is required"),
        ({"scheme_options": "[1]"}, "schemeOptions", "must be a JSON object"),
        ({"scheme_options": '{"header": "X-Sig", "algorithm": "md5"}'}, "schemeOptions", "algorithm: one of"),
        ({"ip_allowlist": "10.0.0.0/8 not-an-ip"}, "ipAllowlist", "not an IP address"),
        ({"tolerance_seconds": "abc"}, "toleranceSeconds", "whole number"),
        ({"tolerance_seconds": "999999999999999"}, "toleranceSeconds", "between 1 and 86400"),
        ({"max_body_bytes": "1"}, "maxBodyBytes", "between 64 and"),
        ({"event_from": "body", "event_field": ""}, "eventType", "field must be"),
        ({"dedupe_from": "header", "dedupe_field": "bad header!"}, "dedupe", "field must be"),
        ({"connection_id": "conn_nope"}, "connectionId", "no connection"),
        ({"secret": "tab\there"}, "secret", "printable characters"),
    ]
    for fields, field, message in cases:
        response = await client.post("/ui/inbound-sources", data=source_form(token, **fields))
        assert response.status_code == 422, (fields, response.text[:1000])
        assert message in field_error(response.text, field), (fields, field_error(response.text, field))
        assert "provider-issued-secret" not in response.text  # a secret is never sent back
    kept = await client.post("/ui/inbound-sources", data=source_form(token, tolerance_seconds="abc"))
    assert 'value="Shop hooks"' in kept.text and '<option value="hmac" selected>' in kept.text
    assert "10.0.0.0/8\n192.0.2.0/24</textarea>" in kept.text
    assert (await client.get("/v1/inbound-sources", headers=auth(admin.key))).json()["data"] == []

    made = await client.post("/ui/inbound-sources", data=source_form(token, connection_id=connection_id))
    assert made.status_code == 201, made.text
    assert "Inbound source created." in made.text
    assert 'id="source-secret" type="text" readonly value="provider-issued-secret"' in made.text
    [source] = (await client.get("/v1/inbound-sources", headers=auth(admin.key))).json()["data"]
    assert source["scheme"] == "hmac" and source["connectionId"] == connection_id
    assert source["schemeOptions"]["header"] == "X-Signature" and source["toleranceSeconds"] == 120
    assert source["ipAllowlist"] == ["10.0.0.0/8", "192.0.2.0/24"] and source["dedupe"] is None
    source_id = source["id"]
    page = await client.get(f"/ui/inbound-sources/{source_id}")
    assert "provider-issued-secret" not in page.text
    assert f'<a href="/ui/connections/{connection_id}">Billing</a>' in page.text
    assert f'href="/ui/inbound-sources/{source_id}/edit"' in page.text

    edit = await client.get(f"/ui/inbound-sources/{source_id}/edit")
    assert edit.status_code == 200 and 'value="120"' in edit.text and "X-Signature" in edit.text
    bad = await client.post(
        f"/ui/inbound-sources/{source_id}/edit",
        data=source_form(token, name="Renamed", tolerance_seconds="0", connection_id=connection_id),
    )
    assert bad.status_code == 422 and "between 1 and 86400" in field_error(bad.text, "toleranceSeconds")
    assert 'value="Renamed"' in bad.text
    saved = await client.post(
        f"/ui/inbound-sources/{source_id}/edit",
        data={
            **source_form(token, name="Renamed", tolerance_seconds="", ip_allowlist=""),
            "dedupe_from": "header",
            "dedupe_field": "X-Event-Id",
            "enabled": "",
        },
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/ui/inbound-sources/{source_id}?notice=updated"
    shown = (await client.get(f"/v1/inbound-sources/{source_id}", headers=auth(admin.key))).json()
    assert shown["name"] == "Renamed" and shown["enabled"] is False and shown["connectionId"] is None
    assert shown["toleranceSeconds"] == 300 and shown["ipAllowlist"] == []  # blank: the defaults
    assert shown["dedupe"] == {"from": "header", "field": "X-Event-Id"}
    assert "Inbound source saved." in (await client.get(saved.headers["location"])).text

    for path, body in {
        "/ui/inbound-sources": source_form(""),
        f"/ui/inbound-sources/{source_id}/edit": source_form("", name="Sneaky"),
        f"/ui/inbound-sources/{source_id}/delete": {"confirm": "yes"},
    }.items():
        body = {k: v for k, v in body.items() if k != "csrf_token"}
        response = await client.post(path, data=body)
        assert response.status_code == 403, path
    unconfirmed = await client.post(f"/ui/inbound-sources/{source_id}/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 422 and "Tick the box" in field_error(unconfirmed.text, "confirm")
    deleted = await client.post(
        f"/ui/inbound-sources/{source_id}/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert deleted.status_code == 303 and deleted.headers["location"] == "/ui/inbound-sources?notice=deleted"
    assert (await client.get(f"/v1/inbound-sources/{source_id}", headers=auth(admin.key))).status_code == 404
    assert (await client.get(f"/ui/inbound-sources/{source_id}/edit")).status_code == 404
    trail = await client.get("/v1/audit-events", params={"resourceId": source_id}, headers=auth(admin.key))
    actions = [e["action"] for e in trail.json()["data"]]
    assert sorted(actions) == ["inbound_source.created", "inbound_source.deleted", "inbound_source.updated"]
    assert "provider-issued-secret" not in trail.text


async def test_inbound_source_forms_need_write_scope_and_own_tenant(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    as_other = auth(admin.key, other.json()["id"])
    theirs = (
        await client.post("/v1/inbound-sources", json={"name": "in", "scheme": "github"}, headers=as_other)
    ).json()["id"]
    their_connection = (
        await client.post(
            "/v1/connections",
            json={"providerKey": "stripe", "name": "Theirs", "credentials": {"apiKey": API_KEY}},
            headers=as_other,
        )
    ).json()["id"]
    mine = (
        await client.post(
            "/v1/inbound-sources", json={"name": "mine", "scheme": "github"}, headers=auth(admin.key)
        )
    ).json()["id"]
    reader = await create_key(client, admin.key, ["webhooks:read", "tenants:read"])
    token = await sign_in(client, reader["key"])
    assert 'href="/ui/inbound-sources/new"' not in (await client.get("/ui/inbound-sources")).text
    page = await client.get(f"/ui/inbound-sources/{mine}")
    assert "Delete inbound source" not in page.text and "/edit" not in page.text
    assert (await client.get("/ui/inbound-sources/new")).status_code == 403
    for path in (
        "/ui/inbound-sources",
        f"/ui/inbound-sources/{mine}/edit",
        f"/ui/inbound-sources/{mine}/delete",
    ):
        response = await client.post(path, data=source_form(token, confirm="yes"))
        assert response.status_code == 403 and "webhooks:write" in response.text, path

    writer = await create_key(client, admin.key, ["webhooks:read", "webhooks:write"])
    token = await sign_in(client, writer["key"])
    for path in (f"/ui/inbound-sources/{theirs}/edit", f"/ui/inbound-sources/{theirs}/delete"):
        response = await client.post(path, data=source_form(token, confirm="yes", name="Mine now"))
        assert response.status_code == 404, path
    assert (await client.get(f"/ui/inbound-sources/{theirs}/edit")).status_code == 404
    # Another tenant's connection cannot be named (no connections:read: a text input).
    form = await client.get("/ui/inbound-sources/new")
    assert 'name="connection_id" type="text"' in form.text
    refused = await client.post(
        "/ui/inbound-sources", data=source_form(token, connection_id=their_connection)
    )
    assert refused.status_code == 422 and "no connection" in field_error(refused.text, "connectionId")
    shown = (await client.get(f"/v1/inbound-sources/{theirs}", headers=as_other)).json()
    assert shown["name"] == "in" and shown["enabled"] is True
    assert [
        s["id"] for s in (await client.get("/v1/inbound-sources", headers=auth(admin.key))).json()["data"]
    ] == [mine]


# -- links between pages, revoke, health check history ---------------------------------------------


async def test_connection_page_lists_its_inbound_sources_and_revokes(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    token = await sign_in(client, admin.key)
    connection_id = await create_via_ui(client, token)
    other_id = await create_via_ui(client, token, name="Other")
    source = await client.post(
        "/v1/inbound-sources",
        json={"name": "stripe-in", "scheme": "stripe", "connectionId": connection_id},
        headers=auth(admin.key),
    )
    source_id = source.json()["id"]
    page = await client.get(f"/ui/connections/{connection_id}")
    sources = page.text.split('id="connection-sources"')[1].split("</table>")[0]
    assert f'<a href="/ui/inbound-sources/{source_id}">stripe-in</a>' in sources
    assert f'href="/ui/inbound-sources/new?connectionId={connection_id}"' in page.text
    assert source_id not in (await client.get(f"/ui/connections/{other_id}")).text
    listed = await client.get("/ui/inbound-sources")
    row = listed.text.split(f'data-source-id="{source_id}"')[1].split("</tr>")[0]
    assert f'<a href="/ui/connections/{connection_id}">Billing</a>' in row

    unconfirmed = await client.post(f"/ui/connections/{connection_id}/revoke", data={"csrf_token": token})
    assert unconfirmed.status_code == 422
    assert "Tick the box" in field_error(unconfirmed.text, "revokeConfirm")
    assert (await api_connection(client, admin.key, connection_id)).json()["status"] == "ACTIVE"
    refused = await client.post(f"/ui/connections/{connection_id}/revoke", data={"confirm": "yes"})
    assert refused.status_code == 403
    revoked = await client.post(
        f"/ui/connections/{connection_id}/revoke", data={"csrf_token": token, "confirm": "yes"}
    )
    assert revoked.status_code == 303, revoked.text
    assert revoked.headers["location"] == f"/ui/connections/{connection_id}?notice=revoked"
    assert (await api_connection(client, admin.key, connection_id)).json()["status"] == "REVOKED"
    page = await client.get(revoked.headers["location"])
    assert "Connection revoked" in page.text and "Revoke connection" not in page.text
    again = await client.post(
        f"/ui/connections/{connection_id}/revoke", data={"csrf_token": token, "confirm": "yes"}
    )
    assert again.status_code == 409 and "REVOKED" in again.text
    # A revoked connection keeps only its metadata editable.
    assert f'href="/ui/connections/{connection_id}/edit">Edit metadata<' in page.text
    edit = await client.get(f"/ui/connections/{connection_id}/edit")
    assert edit.status_code == 200 and 'id="revoked-note"' in edit.text
    renamed = await client.post(
        f"/ui/connections/{connection_id}/edit", data={"csrf_token": token, "name": "Renamed"}
    )
    assert renamed.status_code == 409 and "only its metadata can change" in renamed.text
    noted = await client.post(
        f"/ui/connections/{connection_id}/edit",
        data={"csrf_token": token, "name": "Billing", "metadata": '{"note": "closed"}'},
    )
    assert noted.status_code == 303, noted.text
    shown = (await api_connection(client, admin.key, connection_id)).json()
    assert shown["metadata"] == {"note": "closed"} and shown["status"] == "REVOKED"


async def test_health_check_history_page(
    client: httpx.AsyncClient, admin: BootstrapResult, health_api: list[str]
) -> None:
    up = await local_connection(client, admin.key, "ui-local", "Local")
    ids = []
    for _ in range(12):
        made = await client.post(f"/v1/connections/{up}/health-checks", headers=auth(admin.key))
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    await sign_in(client, admin.key)
    detail = await client.get(f"/ui/connections/{up}")
    assert f'href="/ui/connections/{up}/health-checks">All health checks' in detail.text
    first = await client.get(f"/ui/connections/{up}/health-checks?limit=5")
    assert first.status_code == 200, first.text
    shown = re.findall(r'<tr data-health-check-id="(hc_\w+)">', first.text)
    assert shown == ids[::-1][:5]
    next_url = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert next_url
    second = await client.get(html.unescape(next_url.group(1)))
    assert re.findall(r'<tr data-health-check-id="(hc_\w+)">', second.text) == ids[::-1][5:10]
    assert f'href="/ui/connections/{up}/health-checks/{ids[0]}"' not in first.text
    one = await client.get(f"/ui/connections/{up}/health-checks/{ids[0]}")
    assert f'<a href="/ui/connections/{up}/health-checks">Health checks</a>' in one.text
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    theirs = await client.post(
        "/v1/connections",
        json={"providerKey": "ui-local", "name": "Theirs"},
        headers=auth(admin.key, other.json()["id"]),
    )
    assert theirs.status_code == 201, theirs.text
    assert (await client.get(f"/ui/connections/{theirs.json()['id']}/health-checks")).status_code == 404
    assert (await client.get("/ui/connections/conn_nope/health-checks")).status_code == 404
    assert (await client.get(f"/ui/connections/{up}/health-checks?limit=0")).status_code == 422


# -- platform keys switching tenants ---------------------------------------------------------------


async def test_a_form_shown_for_one_tenant_is_refused_after_switching_tenants(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    """A platform key with two windows: a form shown for the home tenant, sent after the other window
    switched to another tenant, changes nothing in either tenant."""
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    other_id = other.json()["id"]
    await sign_in(client, admin.key)
    form = await client.get("/ui/connections/new?provider=stripe")
    token = csrf_from(form.text)
    assert f'name="ui_tenant" value="{admin.tenant_id}"' in form.text
    switched = await client.post(
        "/ui/tenant", data={"tenant_id": other_id, "next": "/ui/connections", "csrf_token": token}
    )
    assert switched.status_code == 303
    stale = await client.post("/ui/connections", data={**stripe_form(token), "ui_tenant": admin.tenant_id})
    assert stale.status_code == 409, stale.text
    assert "switched in another window" in stale.text and "Other Co" in stale.text
    for tenant in (None, other_id):
        listed = await client.get("/v1/connections", headers=auth(admin.key, tenant))
        assert listed.json()["data"] == [], tenant
    source = await client.post(
        "/ui/inbound-sources", data={**source_form(token), "ui_tenant": admin.tenant_id}
    )
    assert source.status_code == 409
    # The form as shown for the tenant now selected goes through, into that tenant.
    fresh = await client.get("/ui/connections/new?provider=stripe")
    assert f'name="ui_tenant" value="{other_id}"' in fresh.text
    made = await client.post("/ui/connections", data={**stripe_form(token), "ui_tenant": other_id})
    assert made.status_code == 303, made.text
    assert len((await client.get("/v1/connections", headers=auth(admin.key, other_id))).json()["data"]) == 1
    assert (await client.get("/v1/connections", headers=auth(admin.key))).json()["data"] == []


async def test_request_log_filters_by_provider_and_shows_metrics(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime, receiver: Receiver
) -> None:
    token = await sign_in(client, admin.key)
    connection_id = await create_via_ui(client, token)
    await outbound_calls(runtime, receiver, admin.tenant_id, connection_id)
    provider = await client.get("/ui/providers/stripe")
    links = provider.text.split('id="provider-links"')[1].split("</dd>")[0]
    assert 'href="/ui/connections?provider=stripe"' in links
    assert 'href="/ui/api-requests?providerKey=stripe"' in links
    page = await client.get("/ui/api-requests?providerKey=stripe")
    assert page.status_code == 200, page.text
    assert '<option value="stripe" selected>Stripe</option>' in page.text
    assert re.search(
        r'id="request-metric-count">2 <span class="muted small">\(1 succeeded, 1 failed\)', page.text
    )
    assert "<code>http_4xx</code> 1" in page.text.split('id="request-metric-errors"')[1]
    assert len(re.findall(r"<tr data-request-id=", page.text)) == 2
    other = await client.get("/ui/api-requests?providerKey=zendesk")
    assert re.search(r'id="request-metric-count">0 ', other.text)
    assert "No API requests match." in other.text
    # The list still answers for a window the metrics refuse, with the reason.
    wide = await client.get("/ui/api-requests?since=2020-01-01T00:00&until=2099-01-01T00:00")
    assert wide.status_code == 200 and len(re.findall(r"<tr data-request-id=", wide.text)) == 2
    assert "at most 90 days" in wide.text.split('id="request-metrics-error"')[1]
    bad = await client.get("/ui/api-requests?providerKey=a%00b")
    assert bad.status_code == 422 and "providerKey" in bad.text
    api = await client.get(
        "/v1/api-requests/metrics", params={"providerKey": "stripe"}, headers=auth(admin.key)
    )
    assert api.json()["count"] == 2


async def test_a_bad_scope_is_shown_next_to_the_scopes_field(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    token = await sign_in(client, admin.key)
    fields = {"credentials.OAUTH2_AUTHORIZATION_CODE.clientId": CLIENT_ID}
    oauth = dict(provider_key="ui-oauth", name="CRM", auth_type="OAUTH2_AUTHORIZATION_CODE", **fields)
    created = await client.post("/ui/connections", data=stripe_form(token, **oauth, scopes="read wr\x01te"))
    assert created.status_code == 422
    assert "a scope is 1–200 printable characters" in field_error(created.text, "scopes")
    connection_id = await create_via_ui(client, token, **oauth)
    edited = await client.post(
        f"/ui/connections/{connection_id}/edit", data={"csrf_token": token, "name": "CRM", "scopes": "a\x01b"}
    )
    assert edited.status_code == 422
    assert "a scope is 1–200 printable characters" in field_error(edited.text, "scopes")


async def test_check_without_saving(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    token = await sign_in(client, admin.key)
    form = await client.get("/ui/connections/new?provider=stripe")
    assert 'name="action" value="check"' in form.text
    checked = await client.post(
        "/ui/connections", data=stripe_form(token, action="check", **{"config.account_id": "acct_9"})
    )
    assert checked.status_code == 200, checked.text
    notice = html.unescape(checked.text.split('<p class="notice" role="status">')[1].split("</p>")[0])
    assert "Valid: this connection would call https://api.stripe.com" in notice and "ACTIVE" in notice
    assert 'value="Billing"' in checked.text and 'value="acct_9"' in checked.text
    assert API_KEY not in checked.text
    oauth = await client.post(
        "/ui/connections",
        data=stripe_form(
            token,
            action="check",
            provider_key="ui-oauth",
            auth_type="OAUTH2_AUTHORIZATION_CODE",
            **{"credentials.OAUTH2_AUTHORIZATION_CODE.clientId": CLIENT_ID},
        ),
    )
    assert oauth.status_code == 200 and "start PENDING with the scopes openid offline_access" in oauth.text
    bad = await client.post("/ui/connections", data=stripe_form(token, action="check", auth_type="BASIC"))
    assert bad.status_code == 422 and "does not accept BASIC" in field_error(bad.text, "authType")
    refused = await client.post("/ui/connections", data={**stripe_form("", action="check")})
    assert refused.status_code == 403
    assert (await client.get("/v1/connections", headers=auth(admin.key))).json()["data"] == []
