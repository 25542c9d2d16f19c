"""Calls through connections: ``POST /v1/connections/{id}/proxy`` and the connection client.

Against real servers on 127.0.0.1: a provider API stand-in (``tests/echo_api.py``) and, for
OAuth2, oauth2-mock-server (npm). Covers credential injection per auth type, the answer envelope,
failures without an answer (502/504), refusals (422/409/404), the request log, and refresh on
401: a burst of 401s across concurrent calls makes one token request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from interlink.cli.main import app as cli_app
from interlink.client import AsyncInterlinkClient, ForwardedResponse, InterlinkClient
from interlink.client.errors import ServiceUnavailableError, ValidationError
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem, make_tenant
from tests.conftest import LiveServer, free_port, make_settings
from tests.echo_api import EchoApi, echo_api_fixture  # noqa: F401  (fixture)
from tests.external import OAuth2MockServer, oauth2_server_fixture

__all__ = ["oauth2_server_fixture"]

API_KEY = "ak-secret-value-123"


@pytest.fixture(autouse=True)
def _fresh_token_rules(echo_api: EchoApi) -> None:
    """Each test starts with no revoked tokens: the mock signs identical claims into an identical
    token, so a token revoked by the previous test could be issued again."""
    echo_api.revoked.clear()
    echo_api.reject_all = False


def _providers(directory: Path, api: EchoApi, token_url: str) -> Path:
    closed = f"http://127.0.0.1:{free_port()}"
    path = directory / "providers.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            providers:
              - key: echo-header
                name: Echo (key in a header)
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [API_KEY, BASIC, BEARER, NONE]
                base_urls:
                  PRODUCTION: {api.base_url}
                default_headers:
                  X-Provider: echo
                api_key:
                  location: header
                  name: X-Api-Key
                  prefix: ""
              - key: echo-query
                name: Echo (key in the query)
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [API_KEY]
                base_urls:
                  PRODUCTION: {api.base_url}
                api_key:
                  location: query
                  name: api_key
              - key: closed
                name: Nothing listens here
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: {closed}/api
              - key: echo-oauth
                name: Echo with OAuth2
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [OAUTH2_CLIENT_CREDENTIALS]
                base_urls:
                  PRODUCTION: {api.base_url}
                oauth2:
                  token_url: {token_url}
                  default_scopes: [api]
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
def settings(db_url: str, tmp_path: Path, echo_api: EchoApi, oauth_server: OAuth2MockServer) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        providers_file=_providers(tmp_path, echo_api, f"{oauth_server.url}/token"),
        allowed_target_networks=["127.0.0.0/8"],
    )


async def _connect(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    provider: str,
    auth_type: str,
    credentials: dict[str, str] | None = None,
    name: str | None = None,
) -> str:
    body: dict[str, Any] = {
        "providerKey": provider,
        "name": name or f"{provider}-{auth_type}",
        "authType": auth_type,
    }
    if credentials is not None:
        body["credentials"] = credentials
    response = await client.post("/v1/connections", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _proxy(
    client: httpx.AsyncClient, api_headers: dict[str, str], connection_id: str, **call: Any
) -> httpx.Response:
    """``call`` is the proxy request body (camelCase names)."""
    return await client.post(f"/v1/connections/{connection_id}/proxy", json=call, headers=api_headers)


# -- credentials and the envelope ------------------------------------------------------------------


async def test_api_key_header_is_injected_and_the_answer_is_an_envelope(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "API_KEY", {"apiKey": API_KEY})
    response = await _proxy(
        client,
        admin_headers,
        conn,
        method="POST",
        path="/echo/customers",
        query={"expand": ["a", "b"], "limit": 5},
        headers={"X-Api-Key": "caller-tries-its-own", "X-Trace": "t-1"},
        body={"name": "Ada", "n": 1},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == 200 and answer["ok"] is True and answer["attempts"] == 1
    seen = answer["data"]
    assert seen["method"] == "POST" and seen["path"] == "/api/echo/customers"
    assert seen["query"] == {"expand": ["a", "b"], "limit": ["5"]}
    assert seen["headers"]["x-api-key"] == API_KEY  # the connection's credential wins
    assert seen["headers"]["x-provider"] == "echo" and seen["headers"]["x-trace"] == "t-1"
    assert json.loads(seen["body"]) == {"name": "Ada", "n": 1}
    assert "set-cookie" not in answer["headers"]
    assert answer["headers"]["content-type"].startswith("application/json")
    assert answer["rateLimit"] == {"limit": 100, "remaining": 99, "resetSeconds": None}
    assert answer["timing"]["totalMs"] > 0
    milliseconds = [v for k, v in answer["timing"].items() if k != "reused"] + [answer["durationMs"]]
    assert all(round(v, 3) == v for v in milliseconds), milliseconds  # to the microsecond

    # The call is in the request log (written in batches: flushed here), without the key.
    assert runtime.outbound.log is not None
    await runtime.outbound.log.flush()
    logged = await client.get(f"/v1/api-requests/{answer['requestId']}", headers=admin_headers)
    assert logged.status_code == 200, logged.text
    assert logged.json()["connectionId"] == conn
    assert API_KEY not in logged.text


async def test_query_basic_and_bearer_credentials(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    query_conn = await _connect(client, admin_headers, "echo-query", "API_KEY", {"apiKey": API_KEY})
    seen = (await _proxy(client, admin_headers, query_conn, path="/echo/q")).json()["data"]
    assert seen["query"]["api_key"] == [API_KEY]

    basic = await _connect(
        client, admin_headers, "echo-header", "BASIC", {"username": "u", "password": "p:w"}
    )
    seen = (await _proxy(client, admin_headers, basic, path="/echo/b")).json()["data"]
    assert seen["headers"]["authorization"] == "Basic " + base64.b64encode(b"u:p:w").decode()

    bearer = await _connect(client, admin_headers, "echo-header", "BEARER", {"token": "tok-1"})
    seen = (await _proxy(client, admin_headers, bearer, path="/echo/t")).json()["data"]
    assert seen["headers"]["authorization"] == "Bearer tok-1"

    # New credentials apply to the next call (the process's cached plan is keyed on the change).
    changed = await client.patch(
        f"/v1/connections/{bearer}", json={"credentials": {"token": "tok-2"}}, headers=admin_headers
    )
    assert changed.status_code == 200, changed.text
    seen = (await _proxy(client, admin_headers, bearer, path="/echo/t")).json()["data"]
    assert seen["headers"]["authorization"] == "Bearer tok-2"


async def test_provider_errors_form_and_binary_bodies(
    client: httpx.AsyncClient, admin_headers: dict[str, str], echo_api: EchoApi
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    before = echo_api.requests
    answer = (await _proxy(client, admin_headers, conn, path="/status/503", maxAttempts=2)).json()
    assert answer["status"] == 503 and answer["ok"] is False and answer["errorClass"] == "http_5xx"
    assert answer["attempts"] == 2 and echo_api.requests - before == 2
    answer = (await _proxy(client, admin_headers, conn, path="/status/404")).json()
    assert (answer["status"], answer["attempts"], answer["data"]) == (404, 1, {"status": 404})

    # POST without an idempotency key is not retried; with one it is (a fresh connection: the
    # failures above count toward the first one's circuit breaker).
    conn = await _connect(client, admin_headers, "echo-header", "NONE", name="posts")
    before = echo_api.requests
    answer = (await _proxy(client, admin_headers, conn, method="POST", path="/status/502")).json()
    assert answer["attempts"] == 1 and echo_api.requests - before == 1
    answer = (
        await _proxy(client, admin_headers, conn, method="POST", path="/status/502", idempotencyKey="k-1")
    ).json()
    assert answer["attempts"] == 3

    seen = (await _proxy(client, admin_headers, conn, method="PUT", path="/echo/f", form={"a": "1 2"})).json()
    assert seen["data"]["body"] == "a=1%202"
    assert seen["data"]["headers"]["content-type"] == "application/x-www-form-urlencoded"

    binary = (await _proxy(client, admin_headers, conn, path="/binary")).json()
    assert binary["data"] is None and base64.b64decode(binary["bodyBase64"]) == bytes(range(256))


async def test_connection_metrics_count_the_calls_made_through_it(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    for path in ("/echo/a", "/echo/b", "/status/404"):
        await _proxy(client, admin_headers, conn, path=path)
    await _proxy(client, admin_headers, conn, path="/status/500", maxAttempts=2)
    assert runtime.outbound.log is not None
    await runtime.outbound.log.flush()
    response = await client.get(f"/v1/connections/{conn}/metrics", headers=admin_headers)
    assert response.status_code == 200, response.text
    metrics = response.json()
    assert metrics["connectionId"] == conn
    assert (metrics["count"], metrics["succeeded"], metrics["failed"]) == (4, 2, 2)
    assert metrics["errorsByClass"] == {"http_4xx": 1, "http_5xx": 1}
    assert metrics["attempts"] == 5 and metrics["retries"] == 1
    assert metrics["p50Ms"] is not None and metrics["circuitState"] == "CLOSED"
    assert_problem(await client.get("/v1/connections/conn_nope/metrics", headers=admin_headers), 404)
    backwards = {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    bad = await client.get(f"/v1/connections/{conn}/metrics", params=backwards, headers=admin_headers)
    assert_problem(bad, 422)
    year_one = {"until": "0001-01-01T12:00:00Z"}
    edge = await client.get(f"/v1/connections/{conn}/metrics", params=year_one, headers=admin_headers)
    assert edge.status_code == 200 and edge.json()["count"] == 0, edge.text


async def test_circuit_state_is_shown_only_to_the_connections_tenant(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    assert (await _proxy(client, admin_headers, conn, path="/echo/a")).status_code == 200
    own = await client.get("/v1/api-requests/metrics", params={"connectionId": conn}, headers=admin_headers)
    assert own.status_code == 200 and own.json()["circuitState"] == "CLOSED"
    other = await make_tenant(client, admin_headers, "Other Co")
    created = await client.post(
        "/v1/keys",
        json={"name": "reader", "scopes": ["connections:read"]},
        headers={**admin_headers, "X-Tenant-Id": other},
    )
    stranger = {"Authorization": f"Bearer {created.json()['key']}"}
    seen = await client.get("/v1/api-requests/metrics", params={"connectionId": conn}, headers=stranger)
    assert seen.status_code == 200, seen.text
    assert seen.json()["circuitState"] is None and seen.json()["count"] == 0


async def test_a_call_held_back_says_when_to_come_back(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """A provider's 429 blocks the connection; calls refused meanwhile are 503s whose Retry-After
    is the time left of the block (JSON and passthrough forms)."""
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    limited = await _proxy(
        client, admin_headers, conn, path="/status/429", query={"retryAfter": "300"}, maxAttempts=1
    )
    assert limited.status_code == 200 and limited.json()["status"] == 429
    held = await _proxy(client, admin_headers, conn, path="/echo/a", maxAttempts=1)
    assert assert_problem(held, 503)["errorClass"] == "rate_limited"
    assert 299 <= int(held.headers["retry-after"]) <= 300
    passthrough = await client.get(f"/v1/connections/{conn}/proxy/echo/a", headers=admin_headers)
    assert assert_problem(passthrough, 503)["errorClass"] == "rate_limited"
    assert 299 <= int(passthrough.headers["retry-after"]) <= 300


async def test_an_odd_retry_after_of_the_provider_is_not_an_error(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    for value in ("9" * 400, "\u00b2"):
        answer = await _proxy(
            client, admin_headers, conn, path="/status/503", query={"retryAfter": value}, maxAttempts=1
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == 503


async def test_json_the_envelope_cannot_hold_as_it_is_comes_back_all_the_same(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """The provider's JSON nested too deeply comes as its text; a lone surrogate escape comes as
    that escape (the body is sent as text and comes back as application/json)."""
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    for nesting in (300, 5000):
        deep = "[" * nesting + "]" * nesting
        answer = await _proxy(client, admin_headers, conn, method="PUT", path="/answer", body=deep)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"] == deep
    answer = await _proxy(client, admin_headers, conn, method="PUT", path="/answer", body='{"a": "\\ud800"}')
    assert answer.status_code == 200, answer.text
    assert b'"data":{"a":"\\ud800"}' in answer.content


async def test_no_answer_is_502_or_504(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    closed = await _connect(client, admin_headers, "closed", "NONE")
    response = await _proxy(client, admin_headers, closed, path="/x", maxAttempts=1)
    body = assert_problem(response, 502)
    assert body["errorClass"] == "connect" and body["attempts"] == 1

    slow = await _connect(client, admin_headers, "echo-header", "NONE")
    response = await _proxy(client, admin_headers, slow, path="/slow", maxAttempts=1, timeoutSeconds=0.3)
    body = assert_problem(response, 504)
    assert body["errorClass"] == "timeout"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"path": "echo"}, "path"),
        ({"path": "/echo/../admin"}, "path"),
        ({"path": "/echo/%2e%2E/admin"}, "path"),
        ({"path": "/echo", "headers": {"Host": "evil"}}, "headers.Host"),
        ({"path": "/echo", "headers": {"Transfer-Encoding": "chunked"}}, "headers.Transfer-Encoding"),
        ({"path": "/echo", "headers": {"X-Bad": "a\r\nb"}}, "headers.X-Bad"),
        ({"path": "/echo", "headers": {"X-Bad": "a\x01b"}}, "headers.X-Bad"),
        ({"path": "/echo", "headers": {"X-Bad": "\ud800"}}, "headers.X-Bad"),
        ({"path": "/echo", "query": {"q": "\ud800"}}, "query"),
        ({"method": "POST", "path": "/echo", "form": {"f": "\ud800"}}, "form"),
        ({"method": "POST", "path": "/echo", "body": "\ud800"}, "body"),
        ({"path": "/echo", "body": {"a": 1}, "form": {"a": "1"}}, "form"),
        ({"path": "/echo", "maxAttempts": 9}, "maxAttempts"),
        ({"path": "/echo", "timeoutSeconds": 500}, "timeoutSeconds"),
        ({"path": "/echo", "method": "TRACE"}, "method"),
        ({"path": "/echo", "query": {"a": {"b": 1}}}, "query.a"),
    ],
)
async def test_bad_calls_are_422_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], call: dict[str, Any], field: str
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    sent = await client.post(  # ASCII JSON: a lone surrogate goes as its escape
        f"/v1/connections/{conn}/proxy",
        content=json.dumps({"method": "GET", **call}),
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    body = assert_problem(sent, 422)
    fields = [e.get("field", "") for e in body.get("errors", [])]
    assert any(f == field or f.startswith(field) for f in fields), body


async def test_disabled_unknown_and_other_tenants_connections(
    client: httpx.AsyncClient, admin_headers: dict[str, str], echo_api: EchoApi
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    disabled = await client.patch(
        f"/v1/connections/{conn}", json={"status": "DISABLED"}, headers=admin_headers
    )
    assert disabled.status_code == 200
    before = echo_api.requests
    refused = assert_problem(await _proxy(client, admin_headers, conn, path="/echo"), 409)
    assert refused["connectionStatus"] == "DISABLED"
    assert echo_api.requests == before
    assert_problem(await _proxy(client, admin_headers, "conn_missing", path="/echo"), 404)

    other = await make_tenant(client, admin_headers, "other")
    assert_problem(await _proxy(client, {**admin_headers, "X-Tenant-Id": other}, conn, path="/echo"), 404)


# -- OAuth2: refresh on 401 ------------------------------------------------------------------------


async def test_401_refreshes_once_for_a_burst_and_retries(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    echo_api: EchoApi,
    oauth_server: OAuth2MockServer,
) -> None:
    conn = await _connect(
        client,
        admin_headers,
        "echo-oauth",
        "OAUTH2_CLIENT_CREDENTIALS",
        {"clientId": "c", "clientSecret": "s"},
    )
    seen_before = len(echo_api.tokens)  # the API outlives each test: look at this test's tokens
    first = (await _proxy(client, admin_headers, conn, path="/protected/a")).json()
    assert first["status"] == 200, first
    assert oauth_server.state()["tokenRequests"] == 1
    token = echo_api.tokens[-1]

    # The provider stops accepting the token before it expires: every call meets a 401.
    echo_api.revoked.add(token)
    # (another lifetime: the mock signs identical claims into an identical token within a second)
    oauth_server.configure(delay_ms=200, expires_in=7200)
    answers = await asyncio.gather(
        *(_proxy(client, admin_headers, conn, path=f"/protected/{i}") for i in range(12))
    )
    assert [a.json()["status"] for a in answers] == [200] * 12
    assert oauth_server.state()["tokenRequests"] == 2  # one refresh for the whole burst
    fresh = {t for t in echo_api.tokens[seen_before:] if t != token}
    assert len(fresh) == 1

    info = (await client.get(f"/v1/connections/{conn}", headers=admin_headers)).json()
    assert info["tokenVersion"] == 2 and info["status"] == "ACTIVE"

    # A provider that refuses every token: one refresh, one retry, then the 401 is returned.
    oauth_server.configure(delay_ms=0, expires_in=5400)
    echo_api.reject_all = True
    try:
        answer = (await _proxy(client, admin_headers, conn, path="/protected/z")).json()
    finally:
        echo_api.reject_all = False
    assert answer["status"] == 401 and answer["errorClass"] == "http_4xx"
    assert oauth_server.state()["tokenRequests"] == 3


# -- SDK and CLI -----------------------------------------------------------------------------------


@pytest.fixture
def live_server_settings_overrides(
    tmp_path: Path, echo_api: EchoApi, oauth_server: OAuth2MockServer
) -> dict[str, object]:
    return {
        "providers_file": _providers(tmp_path, echo_api, f"{oauth_server.url}/token"),
        "allowed_target_networks": ["127.0.0.0/8"],
    }


def test_sdk_and_cli_proxy(live_server: LiveServer) -> None:
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        conn = sdk.connections.create(
            provider_key="echo-header", name="echo", auth_type="API_KEY", credentials={"apiKey": API_KEY}
        )
        answer = sdk.connections.proxy(conn.id, "get", "/echo/items", query={"page": 2})
        assert answer.status == 200 and answer.data["query"] == {"page": ["2"]}
        assert answer.data["headers"]["x-api-key"] == API_KEY
        failed = sdk.connections.proxy(conn.id, "GET", "/status/418")
        assert failed.status == 418 and not failed.ok
        with pytest.raises(ValidationError) as raised:
            sdk.connections.proxy(conn.id, "GET", "no-slash")
        assert raised.value.status == 422

    async def run_async() -> None:
        async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as sdk:
            answer = await sdk.connections.proxy(conn.id, "POST", "/echo/x", json={"a": [1]})
            assert answer.status == 200 and json.loads(answer.data["body"]) == {"a": [1]}

    asyncio.run(run_async())

    runner = CliRunner()
    base = ["--url", live_server.url, "--api-key", live_server.admin_key]
    result = runner.invoke(
        cli_app,
        [
            "connections",
            "proxy",
            conn.id,
            "GET",
            "/echo/cli",
            "-q",
            "a=1",
            "-q",
            "a=2",
            "-H",
            "X-T: v",
            *base,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("HTTP 200")
    printed = json.loads(result.output.split("\n", 1)[1])
    assert printed["query"] == {"a": ["1", "2"]} and printed["headers"]["x-t"] == "v"

    result = runner.invoke(
        cli_app,
        ["connections", "proxy", conn.id, "POST", "/echo/cli", "--body", '{"k": true}', "--json", *base],
    )
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.output)
    assert envelope["status"] == 200 and json.loads(envelope["data"]["body"]) == {"k": True}

    result = runner.invoke(
        cli_app, ["connections", "proxy", conn.id, "GET", "/status/500", "--max-attempts", "1", *base]
    )
    assert result.exit_code == 1 and result.output.startswith("HTTP 500")
    result = runner.invoke(
        cli_app, ["connections", "proxy", conn.id, "POST", "/echo", "--body", "{nope", *base]
    )
    assert result.exit_code == 2 and "not JSON" in result.output


def test_sdk_and_cli_forward(live_server: LiveServer) -> None:
    """The passthrough form (``/v1/connections/{id}/proxy/{path}``) through the SDK's ``forward``
    and ``interlink connections forward``: the provider's answer as it came."""
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        conn = sdk.connections.create(
            provider_key="echo-header", name="echo", auth_type="API_KEY", credentials={"apiKey": API_KEY}
        )
        answer = sdk.connections.forward(
            conn.id, "get", "/echo/items", query={"tag": ["a", "b"], "page": 2}, headers={"X-Trace": "t-1"}
        )
        assert isinstance(answer, ForwardedResponse)
        assert answer.status == 200 and answer.ok
        echoed = answer.json()
        assert echoed["method"] == "GET" and echoed["path"] == "/api/echo/items"
        assert echoed["query"] == {"tag": ["a", "b"], "page": ["2"]}
        assert echoed["headers"]["x-trace"] == "t-1"
        assert echoed["headers"]["x-api-key"] == API_KEY
        assert live_server.admin_key not in json.dumps(echoed["headers"])
        assert "authorization" not in echoed["headers"]
        assert answer.request_id is not None and answer.request_id.startswith("apr_")
        assert answer.attempts == 1 and answer.duration_ms is not None and answer.duration_ms >= 0
        assert answer.headers["Content-Type"].startswith("application/json")  # case-insensitive
        assert answer.headers["interlink-request-id"] == answer.request_id
        assert answer.headers["x-ratelimit-limit"] == "100"  # the provider's own header
        assert "x-correlation-id" in answer.headers

        posted = sdk.connections.forward(conn.id, "POST", "/echo/new", json={"a": [1], "é": True})
        echoed = posted.json()
        assert posted.ok and echoed["method"] == "POST" and echoed["path"] == "/api/echo/new"
        assert json.loads(echoed["body"]) == {"a": [1], "é": True}
        assert echoed["headers"]["content-type"] == "application/json"

        teapot = sdk.connections.forward(conn.id, "GET", "/status/418")
        assert teapot.status == 418 and not teapot.ok and teapot.json() == {"status": 418}

        binary = sdk.connections.forward(conn.id, "GET", "/binary")
        assert binary.status == 200 and binary.content == bytes(range(256))
        assert binary.headers["content-type"] == "application/octet-stream"
        head = sdk.connections.forward(conn.id, "HEAD", "/binary")
        assert head.status == 200 and head.content == b"" and head.headers["content-length"] == "256"
        assert head.request_id is not None and head.request_id != binary.request_id

        with pytest.raises(ValidationError) as raised:
            sdk.connections.forward(conn.id, "GET", "/echo/x", max_attempts=9)
        assert raised.value.status == 422

    async def run_async() -> None:
        async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as sdk:
            answer = await sdk.connections.forward(conn.id, "PUT", "/echo/a", content="plain text")
            echoed = answer.json()
            assert answer.status == 200 and echoed["method"] == "PUT" and echoed["body"] == "plain text"
            assert answer.request_id is not None and answer.request_id.startswith("apr_")

    asyncio.run(run_async())

    runner = CliRunner()
    base = ["--url", live_server.url, "--api-key", live_server.admin_key]
    result = runner.invoke(
        cli_app,
        [
            "connections",
            "forward",
            conn.id,
            "GET",
            "/echo/cli",
            "-q",
            "a=1",
            "-q",
            "a=2",
            "-H",
            "X-T: v",
            *base,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("HTTP 200")
    printed = json.loads(result.output.split("\n", 1)[1])
    assert printed["query"] == {"a": ["1", "2"]} and printed["headers"]["x-t"] == "v"

    result = runner.invoke(
        cli_app, ["connections", "forward", conn.id, "GET", "/status/500", "--max-attempts", "1", *base]
    )
    assert result.exit_code == 1 and result.output.startswith("HTTP 500")

    result = runner.invoke(cli_app, ["connections", "forward", conn.id, "GET", "/binary", "-i", *base])
    assert result.exit_code == 0, result.output
    status, *lines = result.output.splitlines()
    assert status.startswith("HTTP 200") and "content-type: application/octet-stream" in lines
    assert any(line.startswith("interlink-request-id: apr_") for line in lines)
    assert lines[-2:] == ["", "<256 bytes of binary content>"]
    result = runner.invoke(cli_app, ["connections", "forward", conn.id, "HEAD", "/binary", "-i", *base])
    assert result.exit_code == 0, result.output
    status, *lines = result.output.splitlines()
    assert status.startswith("HTTP 200") and "content-length: 256" in lines and lines[-1] == ""
    result = runner.invoke(cli_app, ["connections", "forward", conn.id, "GET", "no-slash", *base])
    assert result.exit_code == 2 and "must start with '/'" in result.output


def test_forward_request_on_the_wire_and_whose_answer_raises() -> None:
    """Offline (``httpx.MockTransport``): what ``forward`` sends, and that only a problem of
    Interlink's own raises (and is retried): a provider's answer, an ``application/problem+json``
    one included (it carries ``Interlink-Attempts``), is returned whatever its status."""
    seen: list[httpx.Request] = []
    problem = {"content-type": "application/problem+json"}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        tail = request.url.path.rsplit("/", 1)[-1]
        if tail == "theirs":
            headers = {**problem, "interlink-attempts": "2", "interlink-request-id": "apr_1"}
            return httpx.Response(422, headers=headers, content=b'{"title": "the provider\'s"}')
        if tail == "busy":
            return httpx.Response(503, headers={"interlink-attempts": "1"}, content=b"busy")
        if tail == "held":
            body = (
                b'{"type": "urn:interlink:problem:upstream-unavailable", "title": "Held back", "status": 503}'
            )
            return httpx.Response(503, headers={**problem, "retry-after": "0"}, content=body)
        if tail == "blocked":  # held back for longer than a retry would wait
            body = b'{"type": "urn:interlink:problem:upstream-failed", "title": "Held back", "status": 503}'
            return httpx.Response(503, headers={**problem, "retry-after": "300"}, content=body)
        return httpx.Response(200, headers={"interlink-attempts": "1", "interlink-duration-ms": "1.5"})

    with InterlinkClient(
        "http://interlink.test", "il_test_key", transport=httpx.MockTransport(answer)
    ) as sdk:
        forwarded = sdk.connections.forward(
            "conn_1",
            "post",
            "/a b/{x}/100%/%2F/../ok",
            query={"tag": ["a", "b"], "flag": True, "skip": None},
            headers={"X-Trace": "t", "accept-language": "fr", "Content-Type": "text/csv"},
            content="a,b",
            idempotency_key="k-1",
            max_attempts=2,
            timeout_seconds=7.5,
            tenant_id="ten_1",
        )
        assert forwarded.ok and forwarded.attempts == 1 and forwarded.duration_ms == 1.5
        assert forwarded.request_id is None and forwarded.content == b"" and forwarded.text == ""
        sent = seen[-1]
        assert sent.method == "POST"
        assert sent.url.raw_path == (
            b"/v1/connections/conn_1/proxy/a%20b/%7Bx%7D/100%25/%2F/%2E%2E/ok?tag=a&tag=b&flag=true"
        )
        assert sent.headers["interlink-proxy-x-trace"] == "t" and "x-trace" not in sent.headers
        assert sent.headers["accept-language"] == "fr" and sent.headers["content-type"] == "text/csv"
        assert sent.headers["accept"] == "*/*" and sent.headers["idempotency-key"] == "k-1"
        assert sent.headers["interlink-max-attempts"] == "2"
        assert sent.headers["interlink-timeout-seconds"] == "7.5"
        assert sent.headers["x-tenant-id"] == "ten_1" and sent.content == b"a,b"

        with pytest.raises(ValueError, match="start with '/'"):
            sdk.connections.forward("conn_1", "GET", "no-slash")
        with pytest.raises(ValueError, match="not both"):
            sdk.connections.forward("conn_1", "POST", "/x", content=b"1", json=1)

        seen.clear()
        theirs = sdk.connections.forward("conn_1", "GET", "/theirs")
        assert theirs.status == 422 and theirs.json() == {"title": "the provider's"} and len(seen) == 1
        busy = sdk.connections.forward("conn_1", "GET", "/busy")
        assert busy.status == 503 and busy.text == "busy" and len(seen) == 2  # the provider's: not retried

    quick = InterlinkClient(
        "http://interlink.test", "il_test_key", transport=httpx.MockTransport(answer), max_retries=1
    )
    with quick:
        seen.clear()
        with pytest.raises(ServiceUnavailableError):
            quick.connections.forward("conn_1", "GET", "/held")
        assert len(seen) == 2  # Interlink's 503 for an idempotent call: retried once
        seen.clear()
        with pytest.raises(ServiceUnavailableError):
            quick.connections.forward("conn_1", "POST", "/held")
        assert len(seen) == 1  # a POST without an idempotency key: not retried
        seen.clear()
        with pytest.raises(ServiceUnavailableError) as blocked:
            quick.connections.forward("conn_1", "GET", "/blocked")
        assert len(seen) == 1  # Retry-After longer than the SDK waits: not retried, raised at once
        assert blocked.value.headers["retry-after"] == "300"
