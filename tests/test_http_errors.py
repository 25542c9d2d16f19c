"""Bad input and failures: every error is RFC 9457 problem+json naming the field, never a 500.

Each problem has ``Content-Type: application/problem+json``, ``type`` =
``urn:interlink:problem:<code>``, a ``correlationId`` equal to the ``X-Correlation-Id`` response
header, and no stack trace.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from interlink.core.settings import Settings

PROBLEM = "application/problem+json"
TRACE_MARKERS = ("Traceback", 'File "', "site-packages", '.py", line')


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is a problem of ``status`` and ``code``, tied to its correlation id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["type"] == f"urn:interlink:problem:{code}", body
    assert body["status"] == status
    assert body["title"]
    assert body["correlationId"] == response.headers["x-correlation-id"]
    for marker in TRACE_MARKERS:
        assert marker not in response.text, response.text
    return body


def fields_of(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body.get("errors") or []]


# -- malformed and invalid bodies ---------------------------------------------------------------


async def test_malformed_json_is_400(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.post(
        "/v1/tenants",
        content=b'{"name": "Acme",',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    body = assert_problem(response, 400, "malformed-json")
    assert "JSON" in body["detail"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"name": "Acme \xff"}', "the body is not UTF-8 text"),
        (b'{"name": "Acme", "metadata": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}", "too deeply"),
        (b'{"name": "Acme", "metadata": {"n": ' + b"7" * 5000 + b"}}", "too many digits"),
    ],
)
async def test_a_body_the_parser_cannot_read_is_400_saying_why(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: bytes, detail: str
) -> None:
    response = await client.post(
        "/v1/tenants", content=body, headers={**admin_headers, "Content-Type": "application/json"}
    )
    problem = assert_problem(response, 400, "bad-request")
    assert detail in problem["detail"], problem


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/tenants", {"name": 5}, "name"),
        ("/v1/tenants", {"name": "Acme", "metadata": "not an object"}, "metadata"),
        ("/v1/keys", {"name": "k", "scopes": "admin"}, "scopes"),
        ("/v1/keys", {"name": "k", "scopes": ["no-such-scope"]}, "scopes.0"),
        ("/v1/keys", {"name": "k", "scopes": ["keys:read"], "expiresAt": "tomorrow"}, "expiresAt"),
        (
            "/v1/keys",
            {"name": "k", "scopes": ["keys:read"], "rateLimit": {"limit": "many"}},
            "rateLimit.limit",
        ),
        ("/v1/keys/verify", {"key": ["il_live_x"]}, "key"),
    ],
)
async def test_wrong_types_are_422_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str, payload: dict[str, Any], field: str
) -> None:
    body = assert_problem(
        await client.post(path, json=payload, headers=admin_headers), 422, "validation-error"
    )
    assert field in fields_of(body), body


async def test_unknown_fields_are_422_naming_each(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/keys",
        json={"name": "k", "scopes": ["keys:read"], "colour": "red", "rateLimit": {"limit": 5, "burst": 9}},
        headers=admin_headers,
    )
    body = assert_problem(response, 422, "validation-error")
    errors = {e["field"]: e["message"] for e in body["errors"]}
    assert errors.get("colour") == "unknown field", body
    assert errors.get("rateLimit.burst") == "unknown field", body


async def test_missing_fields_are_422_naming_each(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = assert_problem(
        await client.post("/v1/keys", json={}, headers=admin_headers), 422, "validation-error"
    )
    assert {"name", "scopes"} <= set(fields_of(body)), body


@pytest.mark.parametrize("payload", [[1, 2], "text", 42, None])
async def test_a_body_that_is_not_an_object_is_422(
    client: httpx.AsyncClient, admin_headers: dict[str, str], payload: Any
) -> None:
    response = await client.post(
        "/v1/tenants",
        content=json.dumps(payload).encode(),
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    body = assert_problem(response, 422, "validation-error")
    assert fields_of(body) == ["body"], body


async def test_a_missing_body_is_422(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    body = assert_problem(await client.post("/v1/tenants", headers=admin_headers), 422, "validation-error")
    assert fields_of(body) == ["body"], body


async def test_a_body_that_is_not_json_is_4xx(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/tenants", content=b"name=Acme", headers={**admin_headers, "Content-Type": "text/plain"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code, response.json()["type"].rsplit(":", 1)[-1])


@pytest.mark.parametrize("value", ["a\x00b", "\ud800"])
async def test_strings_the_database_cannot_store_are_never_a_500(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings, value: str
) -> None:
    """NUL characters and lone surrogates: refused where the database cannot store them."""
    raw = json.dumps({"name": value, "metadata": {"note": value}}).encode()
    response = await client.post(
        "/v1/tenants", content=raw, headers={**admin_headers, "Content-Type": "application/json"}
    )
    if response.status_code == 201:
        assert settings.is_sqlite, "only SQLite stores NUL characters in text"
        assert response.json()["name"] == value
        return
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"], body


async def test_header_validation_names_the_header(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    response = await client.get("/v1/keys", headers={**admin_headers, "X-Tenant-Id": "t" * 65})
    body = assert_problem(response, 422, "validation-error")
    assert fields_of(body) == ["x-tenant-id"], body


# -- body size ----------------------------------------------------------------------------------


def _big_payload(settings: Settings) -> bytes:
    return json.dumps({"name": "big", "metadata": {"blob": "x" * (settings.max_body_bytes + 10)}}).encode()


async def test_oversized_body_with_content_length_is_413(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    payload = _big_payload(settings)
    response = await client.post(
        "/v1/tenants", content=payload, headers={**admin_headers, "Content-Type": "application/json"}
    )
    body = assert_problem(response, 413, "payload-too-large")
    assert str(settings.max_body_bytes) in body["detail"]
    listed = await client.get("/v1/tenants", headers=admin_headers)
    assert "big" not in [t["name"] for t in listed.json()["data"]]


async def test_oversized_chunked_body_without_content_length_is_413(
    client: httpx.AsyncClient, admin_headers: dict[str, str], settings: Settings
) -> None:
    payload = _big_payload(settings)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    request = client.build_request(
        "POST", "/v1/tenants", content=chunks(), headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await client.send(request)
    assert_problem(response, 413, "payload-too-large")
    listed = await client.get("/v1/tenants", headers=admin_headers)
    assert "big" not in [t["name"] for t in listed.json()["data"]]


async def test_a_small_chunked_body_is_accepted(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": '
        yield b'"Chunked Co"}'

    response = await client.post(
        "/v1/tenants", content=chunks(), headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["slug"] == "chunked-co"


async def test_a_non_numeric_content_length_never_500s(app: FastAPI, admin_headers: dict[str, str]) -> None:
    status, _headers, body = await raw_request(
        app,
        "POST",
        "/v1/tenants",
        [
            (b"authorization", admin_headers["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"content-length", b"lots"),
        ],
        b'{"name": "Odd Length"}',
    )
    assert status < 500, body


# -- routing ------------------------------------------------------------------------------------


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    assert_problem(await client.get("/v1/no-such-thing", headers=admin_headers), 404, "not-found")
    assert_problem(await client.get("/nothing-here"), 404, "not-found")


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    response = await client.delete("/v1/tenants", headers=admin_headers)
    assert_problem(response, 405, "method-not-allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


# -- pagination ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/keys", "/v1/tenants", "/v1/audit-events", "/v1/security-events"])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "x" * 65}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
async def test_bad_pagination_names_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], path: str, query: dict[str, Any], field: str
) -> None:
    response = await client.get(path, params=query, headers=admin_headers)
    body = assert_problem(response, 422, "validation-error")
    assert fields_of(body) == [field], body


async def test_pagination_walks_every_item_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for n in range(5):
        created = await client.post("/v1/tenants", json={"name": f"Page {n}"}, headers=admin_headers)
        assert created.status_code == 201
    seen: list[str] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"after": after} if after else {})}
        page = (await client.get("/v1/tenants", params=params, headers=admin_headers)).json()
        seen += [t["id"] for t in page["data"]]
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        after = page["nextCursor"]
    assert len(seen) == 6  # the default tenant and five more
    assert seen == sorted(seen, reverse=True)


# -- correlation ids ----------------------------------------------------------------------------


async def test_a_valid_correlation_id_is_echoed_and_stored(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    cid = "req-2024.07:abc_DEF"
    response = await client.post(
        "/v1/tenants", json={"name": "Echo"}, headers={**admin_headers, "X-Correlation-Id": cid}
    )
    assert response.status_code == 201
    assert response.headers["x-correlation-id"] == cid
    events = await client.get("/v1/audit-events", params={"correlationId": cid}, headers=admin_headers)
    assert events.status_code == 200
    failing = await client.get(
        "/v1/keys", params={"limit": 0}, headers={**admin_headers, "X-Correlation-Id": cid}
    )
    assert assert_problem(failing, 422, "validation-error")["correlationId"] == cid


async def test_a_missing_correlation_id_is_generated(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")
    assert first.headers["x-correlation-id"]
    assert first.headers["x-correlation-id"] != second.headers["x-correlation-id"]


@pytest.mark.parametrize(
    "hostile",
    [
        b"a" * 129,
        b"abc\r\nSet-Cookie: session=stolen",
        b"abc\ndef",
        b"trailing-newline\n",
        b"<script>alert(1)</script>",
        b"id with spaces",
        "caf\u00e9".encode("latin-1"),
        b"",
    ],
)
async def test_a_hostile_correlation_id_is_replaced(app: FastAPI, hostile: bytes) -> None:
    status, headers, body = await raw_request(
        app, "GET", "/v1/no-such-thing", [(b"x-correlation-id", hostile)]
    )
    assert status == 404
    echoed = [v for k, v in headers if k.lower() == b"x-correlation-id"]
    assert len(echoed) == 1
    assert echoed[0] != hostile
    assert 1 <= len(echoed[0]) <= 128
    assert b"\n" not in echoed[0] and b"\r" not in echoed[0]
    assert not any(k.lower() == b"set-cookie" for k, _ in headers)
    assert json.loads(body)["correlationId"] == echoed[0].decode()


# -- failures inside the service ----------------------------------------------------------------


async def test_an_unexpected_error_is_500_problem_without_details(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def explode() -> None:
        raise RuntimeError("internal detail: password=hunter2")

    app.add_api_route("/test-only/explode", explode)
    response = await client.get("/test-only/explode", headers={"X-Correlation-Id": "explode-1"})
    body = assert_problem(response, 500, "internal-error")
    assert body["correlationId"] == "explode-1"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


async def test_a_database_outage_inside_a_request_is_503_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def unreachable() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    app.add_api_route("/test-only/db-down", unreachable)
    response = await client.get("/test-only/db-down")
    assert_problem(response, 503, "service-unavailable")
    assert int(response.headers["retry-after"]) >= 1
    assert "SELECT" not in response.text


async def test_authentication_errors_are_problems(client: httpx.AsyncClient) -> None:
    missing = assert_problem(await client.get("/v1/keys"), 401, "unauthorized")
    assert missing["reason"] == "missing"
    malformed = assert_problem(
        await client.get("/v1/keys", headers={"Authorization": "Bearer not-a-key"}), 401, "unauthorized"
    )
    assert malformed["reason"] == "malformed"
    scheme = await client.get("/v1/keys", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert_problem(scheme, 401, "unauthorized")


# -- raw ASGI, for headers no HTTP client would send ---------------------------------------------


async def raw_request(
    app: FastAPI, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Call the ASGI app directly with exactly these headers."""
    sent = False
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"interlink.test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("interlink.test", 80),
    }
    await app(scope, receive, send)
    return start["status"], list(start.get("headers", [])), b"".join(chunks)


async def test_out_of_range_times_are_422_not_500(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for path in ("/v1/audit-events", "/v1/security-events", "/v1/deliveries"):
        for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
            response = await client.get(path, params={"since": value}, headers=admin_headers)
            assert response.status_code == 422, (path, value, response.text)
            assert "since" in [e["field"] for e in response.json()["errors"]]


async def test_non_finite_numbers_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for body in ('{"type": "a.b", "payload": {"x": NaN}}', '{"type": "a.b", "payload": {"y": 1e400}}'):
        response = await client.post(
            "/v1/events", content=body, headers={**admin_headers, "content-type": "application/json"}
        )
        assert response.status_code == 422, response.text
        assert "payload" in [e["field"] for e in response.json()["errors"]]
