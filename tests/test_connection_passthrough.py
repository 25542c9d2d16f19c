"""The proxy's passthrough form: ``/v1/connections/{id}/proxy/{path}``.

Against a real provider stand-in on 127.0.0.1 (``tests/echo_api.py``), through the app in process
(the direct route inside the ASGI app, and the framework route for what it declines) and through a
real server (Interlink's HTTP protocol serving the direct route from the parsed request). What is
passed on and what is not, the provider's answer as it came with Interlink's headers, and
Interlink's own answers as problems.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from interlink.core.errors import ValidationFailed
from interlink.core.settings import Settings
from interlink.http.proxy_path import passthrough_call, passthrough_target
from interlink.outbound.request import ApiEndpointConfig, ApiRequestBuilder
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem, make_key
from tests.conftest import LiveServer, make_settings
from tests.echo_api import EchoApi, echo_api_fixture  # noqa: F401  (fixture)
from tests.test_connection_proxy import API_KEY, _connect, _providers

MEGABYTE = 1024 * 1024


@pytest.fixture
def settings(db_url: str, tmp_path: Path, echo_api: EchoApi) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        providers_file=_providers(tmp_path, echo_api, "http://127.0.0.1:9/token"),
        allowed_target_networks=["127.0.0.0/8"],
    )


def _url(connection_id: str, path: str) -> str:
    return f"/v1/connections/{connection_id}/proxy{path}"


def test_only_passthrough_paths_are_taken() -> None:
    assert passthrough_target("/v1/connections/conn_1/proxy/items/1") == ("conn_1", "/items/1")
    assert passthrough_target("/v1/connections/conn_1/proxy/") == ("conn_1", "/")
    assert passthrough_target("/v1/connections/c/proxy/a/proxy/b") == ("c", "/a/proxy/b")
    for path in (
        "/v1/connections/conn_1/proxy",  # the JSON form
        "/v1/connections//proxy/x",
        "/v1/connections/a/b/proxy/x",
        "/v1/connections/conn_1/metrics",
        "/v1/connections/" + "x" * 65 + "/proxy/x",
        "/v1/keys/verify",
    ):
        assert passthrough_target(path) is None, path


async def test_the_call_is_passed_on_and_the_answer_comes_back_as_it_came(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "API_KEY", {"apiKey": API_KEY})
    headers = {
        **admin_headers,
        "Accept": "application/json",
        "Interlink-Proxy-X-Trace": "t-1",
        "Interlink-Proxy-X-Api-Key": "caller-tries-its-own",
        "X-Not-Passed": "no",
        "X-Correlation-Id": "corr-passthrough-1",
    }
    response = await client.get(
        _url(conn, "/echo/customers"),
        params=[("expand", "a"), ("expand", "b"), ("q", "x y")],
        headers=headers,
    )
    assert response.status_code == 200, response.text
    seen = response.json()  # the provider's own body, not an envelope
    assert seen["method"] == "GET" and seen["path"] == "/api/echo/customers"
    assert seen["query"] == {"expand": ["a", "b"], "q": ["x y"]}
    passed = seen["headers"]
    assert passed["x-api-key"] == API_KEY  # the connection's credential wins
    assert passed["x-trace"] == "t-1" and passed["accept"] == "application/json"
    assert passed["x-provider"] == "echo"
    assert "x-not-passed" not in passed and "interlink-proxy-x-trace" not in passed
    assert admin_headers["Authorization"].split()[1] not in json.dumps(passed)  # the Interlink key
    # The provider's headers, less Set-Cookie; Interlink's own added.
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-ratelimit-limit"] == "100"
    assert "set-cookie" not in response.headers
    assert response.headers["interlink-attempts"] == "1"
    assert float(response.headers["interlink-duration-ms"]) > 0
    assert response.headers["x-correlation-id"] == "corr-passthrough-1"
    request_id = response.headers["interlink-request-id"]
    assert request_id.startswith("apr_")

    assert runtime.outbound.log is not None
    await runtime.outbound.log.flush()
    logged = await client.get(f"/v1/api-requests/{request_id}", headers=admin_headers)
    assert logged.status_code == 200, logged.text
    row = logged.json()
    assert row["connectionId"] == conn and row["method"] == "GET" and row["status"] == 200
    assert row["correlationId"] == "corr-passthrough-1"
    assert API_KEY not in logged.text


async def test_a_header_sent_on_several_lines_goes_on_as_one(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """Repeated lines of a passed-on header are joined in order (RFC 9110, 5.3), through the
    direct route and through the framework route (an escaped path) alike."""
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    lines = [
        *admin_headers.items(),
        ("Interlink-Proxy-X-Tag", "a"),
        ("Accept", "application/json"),
        ("Interlink-Proxy-X-Tag", "b, c"),
        ("Accept", "text/plain"),
        ("Idempotency-Key", "first"),
        ("Idempotency-Key", "second"),
    ]
    for path in ("/echo/lines", "/echo/escaped%20lines"):
        response = await client.post(_url(conn, path), headers=lines, content=b"{}")
        assert response.status_code == 200, response.text
        passed = response.json()["headers"]
        assert passed["x-tag"] == "a, b, c", path
        assert passed["accept"] == "application/json, text/plain", path
        assert passed["idempotency-key"] == "first", path


async def test_bodies_methods_and_the_providers_statuses(
    client: httpx.AsyncClient, admin_headers: dict[str, str], echo_api: EchoApi
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    csv = b"id,name\n1,Zo\xc3\xab\n"
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = await client.request(
            method,
            _url(conn, "/echo/upload"),
            content=csv,
            headers={**admin_headers, "Content-Type": "text/csv"},
        )
        assert response.status_code == 200, response.text
        seen = response.json()
        assert seen["method"] == method and seen["body"].encode() == csv
        assert seen["headers"]["content-type"] == "text/csv"

    # Binary answers byte for byte, with their content type.
    binary = await client.get(_url(conn, "/binary"), headers=admin_headers)
    assert binary.status_code == 200 and binary.content == bytes(range(256))
    assert binary.headers["content-type"] == "application/octet-stream"

    # The provider's errors are its answers: status and body as they came, no problem.
    missing = await client.get(_url(conn, "/status/404"), headers=admin_headers)
    assert missing.status_code == 404 and missing.json() == {"status": 404}
    assert missing.headers["content-type"].startswith("application/json")
    before = echo_api.requests
    failing = await client.get(
        _url(conn, "/status/503"), headers={**admin_headers, "Interlink-Max-Attempts": "2"}
    )
    assert failing.status_code == 503 and failing.json() == {"status": 503}
    assert failing.headers["interlink-attempts"] == "2" and echo_api.requests - before == 2

    # POST is retried only with an Idempotency-Key, which is passed on.
    posts = await _connect(client, admin_headers, "echo-header", "NONE", name="posts")
    before = echo_api.requests
    once = await client.post(_url(posts, "/status/502"), headers=admin_headers)
    assert once.status_code == 502 and once.headers["interlink-attempts"] == "1"
    assert echo_api.requests - before == 1
    keyed = {**admin_headers, "Idempotency-Key": "k-1"}
    retried = await client.post(_url(posts, "/status/502"), headers=keyed)
    assert retried.status_code == 502 and retried.headers["interlink-attempts"] == "3"
    seen = (await client.post(_url(posts, "/echo/k"), headers=keyed)).json()
    assert seen["headers"]["idempotency-key"] == "k-1"

    # An empty answer stays empty.
    empty = await client.delete(_url(conn, "/empty"), headers=admin_headers)
    assert empty.status_code == 204 and empty.content == b""


async def test_head_and_options_are_passed_on(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    """HEAD answers carry the provider's Content-Length and no body, through the direct route and
    the framework route (an escaped path) alike; a compressed answer's length is not passed on
    (the GET through the proxy comes decoded); OPTIONS reaches the provider as it is."""
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    for path in ("/bytes/1234", "/bytes/1234/escaped%20tail"):
        head = await client.head(_url(conn, path), headers=admin_headers)
        assert head.status_code == 200, (path, head.text)
        assert head.content == b"", path
        assert head.headers.get_list("content-length") == ["1234"], path
        assert head.headers["content-type"] == "application/octet-stream", path
        assert head.headers["interlink-attempts"] == "1", path
        request_id = head.headers["interlink-request-id"]
        got = await client.get(_url(conn, path), headers=admin_headers)
        assert len(got.content) == 1234, path

    compressed = await client.head(_url(conn, "/gzip"), headers=admin_headers)
    assert compressed.status_code == 200 and compressed.content == b""
    assert "content-length" not in compressed.headers and "content-encoding" not in compressed.headers
    decoded = await client.get(_url(conn, "/gzip"), headers=admin_headers)
    assert decoded.json() == {"compressed": True}

    options = await client.options(_url(conn, "/echo/options"), headers=admin_headers)
    assert options.status_code == 200, options.text
    assert options.json()["method"] == "OPTIONS"
    assert options.json()["path"] == "/api/echo/options"

    # Interlink's own answer to HEAD has no body either.
    refused = await client.head(_url(conn, "/bytes/10"), headers={"Authorization": "Bearer il_live_nope"})
    assert refused.status_code == 401 and refused.content == b""

    assert runtime.outbound.log is not None
    await runtime.outbound.log.flush()
    logged = await client.get(f"/v1/api-requests/{request_id}", headers=admin_headers)
    assert logged.status_code == 200, logged.text
    assert logged.json()["method"] == "HEAD" and logged.json()["status"] == 200


async def test_a_header_value_that_is_not_latin_1_is_passed_on_as_it_came(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    response = await client.get(_url(conn, "/utf8-header"), headers=admin_headers)
    assert response.status_code == 200, response.text
    raw = dict(response.headers.raw)
    assert raw[b"content-disposition"] == 'attachment; filename="résumé ☕.pdf"'.encode()
    assert response.json() == {"ok": True}


async def test_escapes_in_the_path_are_kept(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    """A percent escape sends the request the framework's way, which passes the path on as it came
    (``%2F`` stays one segment)."""
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    response = await client.get(_url(conn, "/echo/a%2Fb/c%20d"), headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["rawPath"] == "/api/echo/a%2Fb/c%20d"
    assert response.headers["interlink-request-id"].startswith("apr_")
    braces = await client.get(_url(conn, "/echo/{id}"), headers=admin_headers)
    assert braces.status_code == 200, braces.text
    assert braces.json()["rawPath"] == "/api/echo/%7Bid%7D"


async def test_the_query_string_goes_as_it_came_and_credentials_replace_the_callers(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    raw = "b=2&a=1+2&a=%2B&flag&e=&z=%7E"  # order, repeats, '+' and escapes as they are
    response = await client.get(_url(conn, "/echo/q") + "?" + raw, headers=admin_headers)
    assert response.status_code == 200, response.text
    assert response.json()["rawPath"] == "/api/echo/q?" + raw

    # A provider whose key goes in the query: the connection's key replaces the caller's.
    keyed = await _connect(client, admin_headers, "echo-query", "API_KEY", {"apiKey": API_KEY})
    response = await client.get(
        _url(keyed, "/echo/q") + "?api_key=callers-own&x=1&api%5Fkey=again", headers=admin_headers
    )
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["query"] == {"x": ["1"], "api_key": [API_KEY]}


async def test_both_ways_of_serving_count_under_the_routes_template(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """The direct route and the framework route (an escaped path) label their requests alike."""
    route = "/v1/connections/{connection_id}/proxy/{path:path}"

    async def counted() -> float:
        text = (await client.get("/metrics")).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "interlink_http_requests_total"
            and sample.labels == {"method": "GET", "route": route, "status": "200"}
        )

    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    before = await counted()
    for path in ("/echo/direct", "/echo/escaped%20path"):
        assert (await client.get(_url(conn, path), headers=admin_headers)).status_code == 200
    assert await counted() - before == 2


def test_a_query_string_that_is_not_percent_encoded_is_refused_not_re_encoded() -> None:
    """HTTP servers refuse raw non-ASCII in a request target; other ASGI servers may not."""
    with pytest.raises(ValidationFailed) as raised:
        passthrough_call("GET", "/x", b"q=caf\xc3\xa9", {}, b"")
    assert raised.value.extra["errors"][0]["field"] == "query"
    for raw in ("a=1#frag", "a=\r\nInjected: 1", "a=\x00"):
        builder = ApiRequestBuilder(ApiEndpointConfig(path="/x"), raw_query=raw)
        with pytest.raises(ValidationFailed):
            builder.build("http://127.0.0.1:9")
    built = ApiRequestBuilder(ApiEndpointConfig(path="/x"), raw_query="a=1&k=mine&b=2", query={"k": "key"})
    assert built.build("http://127.0.0.1:9").url == "http://127.0.0.1:9/x?a=1&b=2&k=key"


async def test_the_keys_rate_limit_is_reported_under_interlinks_own_names(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    limited = await make_key(
        client, admin_headers, scopes=["connections:write"], rateLimit={"limit": 50, "periodSeconds": 60}
    )
    response = await client.get(_url(conn, "/echo/r"), headers={"Authorization": f"Bearer {limited['key']}"})
    assert response.status_code == 200, response.text
    assert response.headers["interlink-ratelimit-limit"] == "50"
    assert int(response.headers["interlink-ratelimit-remaining"]) == 49
    assert "ratelimit-limit" not in response.headers  # those names are the provider's

    reader = await make_key(client, admin_headers, scopes=["connections:read"])
    refused = await client.get(_url(conn, "/echo/r"), headers={"Authorization": f"Bearer {reader['key']}"})
    assert_problem(refused, 403, "insufficient_scope")


@pytest.mark.parametrize(
    ("path", "headers", "field"),
    [
        ("/echo/%2E%2E/admin", {}, "path"),
        ("/echo/.%2e/admin", {}, "path"),
        ("/echo", {"Interlink-Proxy-Host": "evil"}, "headers.host"),
        ("/echo", {"Interlink-Proxy-Transfer-Encoding": "chunked"}, "headers.transfer-encoding"),
        ("/echo", {"Interlink-Max-Attempts": "9"}, "Interlink-Max-Attempts"),
        ("/echo", {"Interlink-Max-Attempts": "two"}, "Interlink-Max-Attempts"),
        ("/echo", {"Interlink-Timeout-Seconds": "500"}, "Interlink-Timeout-Seconds"),
        ("/echo", {"Interlink-Timeout-Seconds": "nan"}, "Interlink-Timeout-Seconds"),
        ("/echo", {"Interlink-Timeout-Seconds": "1_0"}, "Interlink-Timeout-Seconds"),
        ("/echo", {"Interlink-Timeout-Seconds": "1e1"}, "Interlink-Timeout-Seconds"),
        ("/echo", {"Idempotency-Key": "k" * 256}, "Idempotency-Key"),
    ],
)
async def test_bad_calls_are_422_naming_the_field(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    echo_api: EchoApi,
    path: str,
    headers: dict[str, str],
    field: str,
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    before = echo_api.requests
    response = await client.get(_url(conn, path), headers={**admin_headers, **headers})
    body = assert_problem(response, 422)
    fields = [e.get("field", "") for e in body.get("errors", [])]
    assert any(f.lower() == field.lower() or f.lower().startswith(field.lower()) for f in fields), body
    assert echo_api.requests == before  # nothing was sent


async def test_interlinks_own_answers_are_problems(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    assert_problem(await client.get(_url(conn, "/echo")), 401, "missing")
    assert_problem(await client.get(_url("conn_nope", "/echo"), headers=admin_headers), 404)

    closed = await _connect(client, admin_headers, "closed", "NONE")
    response = await client.get(_url(closed, "/x"), headers={**admin_headers, "Interlink-Max-Attempts": "1"})
    body = assert_problem(response, 502)
    assert body["errorClass"] == "connect" and body["attempts"] == 1

    slow = await client.get(
        _url(conn, "/slow"),
        headers={**admin_headers, "Interlink-Max-Attempts": "1", "Interlink-Timeout-Seconds": "0.3"},
    )
    assert assert_problem(slow, 504)["errorClass"] == "timeout"

    # A status HTTP does not define cannot be passed on.
    odd = await client.get(_url(conn, "/status/799"), headers=admin_headers)
    body = assert_problem(odd, 502)
    assert body["errorClass"] == "other" and body["providerStatus"] == 799

    # An answer above the connection's response limit (10 MB) is not passed on cut short.
    large = await client.get(_url(conn, f"/bytes/{10 * MEGABYTE + 1}"), headers=admin_headers)
    body = assert_problem(large, 502)
    assert body["errorClass"] == "too_large" and body["requestId"].startswith("apr_")
    whole = await client.get(_url(conn, f"/bytes/{10 * MEGABYTE}"), headers=admin_headers)
    assert whole.status_code == 200 and len(whole.content) == 10 * MEGABYTE


async def test_other_tenants_connections_are_not_found(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    other = await client.post("/v1/tenants", json={"name": "other"}, headers=admin_headers)
    assert other.status_code == 201, other.text
    other_id = other.json()["id"]
    their_key = await make_key(
        client, {**admin_headers, "X-Tenant-Id": other_id}, scopes=["connections:write"]
    )
    response = await client.get(_url(conn, "/echo"), headers={"Authorization": f"Bearer {their_key['key']}"})
    assert_problem(response, 404)


# -- through a real server: the direct route served from the parsed request -------------------------


@pytest.fixture
def live_server_settings_overrides(tmp_path: Path, echo_api: EchoApi) -> dict[str, object]:
    return {
        "providers_file": _providers(tmp_path, echo_api, "http://127.0.0.1:9/token"),
        "allowed_target_networks": ["127.0.0.0/8"],
        "connection_max_response_bytes": LIVE_RESPONSE_LIMIT,
    }


LIVE_RESPONSE_LIMIT = 64 * 1024
"""INTERLINK_CONNECTION_MAX_RESPONSE_BYTES of the real server here (the default is 10 MB)."""


def _raw_exchange(server: LiveServer, request: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``request`` as bytes and read one answer (status line, headers, body by length)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            body += sock.recv(65536)
        return lines[0], headers, body


def _pipelined(server: LiveServer, requests: bytes) -> bytes:
    """Send ``requests`` (the last one with ``Connection: close``) and read until the server
    closes the connection."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(requests)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_a_real_server_serves_both_ways(live_server: LiveServer) -> None:
    key = live_server.admin_key
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}) as http:
        created = http.post(
            "/v1/connections",
            json={"providerKey": "echo-header", "name": "live", "authType": "API_KEY",
                  "credentials": {"apiKey": API_KEY}},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        conn = created.json()["id"]

        direct = http.get(_url(conn, "/echo/live"), params={"a": "1"})
        assert direct.status_code == 200, direct.text
        seen = direct.json()
        assert seen["path"] == "/api/echo/live" and seen["query"] == {"a": ["1"]}
        assert seen["headers"]["x-api-key"] == API_KEY
        assert direct.headers["interlink-request-id"].startswith("apr_")
        assert len(direct.headers.get_list("date")) == 1  # the server's, not the provider's too

        # A chunked body is the framework route's: the same answer.
        def chunks() -> Any:
            yield b'{"part": '
            yield b"1}"

        chunked = http.post(
            _url(conn, "/echo/chunked"), content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 200, chunked.text
        assert json.loads(chunked.json()["body"]) == {"part": 1}
        assert chunked.headers["interlink-request-id"].startswith("apr_")
        assert len(chunked.headers.get_list("date")) == 1

        escaped = http.get(_url(conn, "/echo/a%2Fb"))
        assert escaped.status_code == 200 and escaped.json()["rawPath"] == "/api/echo/a%2Fb"

        missing = http.get(_url(conn, "/status/404"))
        assert missing.status_code == 404 and missing.json() == {"status": 404}

        # The response limit is the operator's setting.
        limit = http.get(_url(conn, f"/bytes/{LIVE_RESPONSE_LIMIT}"))
        assert limit.status_code == 200 and len(limit.content) == LIVE_RESPONSE_LIMIT
        above = http.get(_url(conn, f"/bytes/{LIVE_RESPONSE_LIMIT + 1}"))
        assert assert_problem(above, 502)["errorClass"] == "too_large"
        problem = http.get(_url(conn, "/echo"), headers={"Authorization": "Bearer il_live_nope"})
        assert_problem(problem, 401)

    # Repeated header lines, as they come on the wire to the server's own direct route.
    status, _, body = _raw_exchange(
        live_server,
        f"GET {_url(conn, '/echo/lines')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Interlink-Proxy-X-Tag: a\r\nInterlink-Proxy-X-Tag: b\r\nConnection: close\r\n\r\n".encode(),
    )
    assert status == "HTTP/1.1 200 OK", status
    assert json.loads(body)["headers"]["x-tag"] == "a, b"

    # A 204 answer carries no Content-Length (and no body) on the wire.
    status, headers, body = _raw_exchange(
        live_server,
        f"DELETE {_url(conn, '/empty')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert status == "HTTP/1.1 204 No Content", status
    assert "content-length" not in headers and body == b""
    assert headers["interlink-attempts"] == "1"

    # Answers to HEAD on the wire: the provider's length, no body (the next answer on the same
    # connection follows the blank line at once), from the direct route, the framework route and a
    # problem alike.
    for path, status, length in (
        ("/bytes/1234", "200 OK", "1234"),
        ("/bytes/1234/a%20b", "200 OK", "1234"),
        ("/bytes/10?key=x&key=y", "401 Unauthorized", None),
    ):
        auth = "il_live_nope" if length is None else key
        answers = _pipelined(
            live_server,
            f"HEAD {_url(conn, path)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\n\r\n"
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
        )
        head, _, rest = answers.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status}".encode()), (path, head)
        fields = [line.split(b":", 1) for line in head.split(b"\r\n")[1:]]
        lengths = [value.strip() for name, value in fields if name.lower() == b"content-length"]
        assert lengths == ([length.encode()] if length else []), (path, head)
        assert rest.startswith(b"HTTP/1.1 200 OK"), (path, rest[:200])

    # Dot segments as they come on the wire (a client library would resolve them) are refused.
    status, _, body = _raw_exchange(
        live_server,
        f"GET {_url(conn, '/echo/../admin')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert status.startswith("HTTP/1.1 422"), status
    assert json.loads(body)["errors"][0]["field"] == "path"
