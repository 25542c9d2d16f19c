"""The outbound API client against real aiohttp servers on 127.0.0.1.

Covers the request builder, timing (with a TLS server), pool reuse, retries (503, reset, 429 with
Retry-After), idempotency rules, the retry budget, rate limits and 429 blocks shared through Redis,
the circuit breaker, batches, and the request log (redaction, no loss on close, retention) on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import ipaddress
import json
import sqlite3
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import REGISTRY

from interlink.core import clock
from interlink.core.actor import system_actor
from interlink.core.db import Database
from interlink.core.enums import RetentionPolicy
from interlink.core.errors import ValidationFailed
from interlink.core.ids import min_id_at
from interlink.core.models import AuditEvent
from interlink.core.retention import purge
from interlink.core.tenancy import create_tenant
from interlink.outbound import log as log_module
from interlink.outbound.client import ApiClient, BatchFailed, OutboundService
from interlink.outbound.config import (
    ApiClientConfig,
    CircuitBreakerConfig,
    RateLimit,
    RetryBudgetConfig,
    RetryPolicy,
)
from interlink.outbound.limiting import MAX_BLOCK_SECONDS
from interlink.outbound.log import LogEntry, RequestLogWriter, SqliteLogFile, redact_body, redact_url
from interlink.outbound.models import ExternalApiRequest
from interlink.outbound.request import NO_BODY, ApiEndpointConfig, ApiRequestBuilder
from interlink.outbound.resilience import CLOSED, HALF_OPEN, OPEN
from interlink.outbound.response import (
    ApiResponse,
    ApiTiming,
    OutboundError,
    decode_body,
    json_value,
    parse_rate_limit,
    parse_retry_after,
)
from interlink.runtime import Runtime
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)
from tests.services import REDIS_URL, need, redis_available

LOCAL = [ipaddress.ip_network("127.0.0.1/32")]
FAST = RetryPolicy(max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=0.05)
JSON = {"Content-Type": "application/json"}


def service(**kwargs: Any) -> OutboundService:
    return OutboundService(allowed_networks=LOCAL, **kwargs)


def config(base_url: str, **kwargs: Any) -> ApiClientConfig:
    kwargs.setdefault("retry", FAST)
    kwargs.setdefault("tenant_id", "ten_test")
    return ApiClientConfig(base_url=base_url, **kwargs)


@pytest.fixture
async def outbound() -> AsyncIterator[OutboundService]:
    svc = service()
    yield svc
    await svc.close()


def unique_connection() -> str:
    return f"conn_{uuid.uuid4().hex[:20]}"


# -- request builder -------------------------------------------------------------------------------


def field_of(exc: ValidationFailed) -> str:
    return str(exc.extra["errors"][0]["field"])


def test_builder_encodes_path_and_query_and_body() -> None:
    endpoint = ApiEndpointConfig(
        path="/customers/{customer_id}/invoices/{invoice}",
        method="post",
        name="invoices.create",
        query={"expand": ["lines", "tax"], "limit": 10},
        headers={"Accept": "application/json"},
    )
    prepared = ApiRequestBuilder(
        endpoint,
        parameters={"customer_id": "a/b?c", "invoice": 42},
        query={"limit": 20, "live": True, "skip": None},
        headers={"accept": "application/vnd.api+json"},
        body={"amount": 10, "note": "ü"},
    ).build("https://api.example.com/v1/")
    assert prepared.url == (
        "https://api.example.com/v1/customers/a%2Fb%3Fc/invoices/42"
        "?expand=lines&expand=tax&limit=20&live=true"
    )
    assert prepared.method == "POST" and prepared.operation == "invoices.create"
    assert prepared.origin == "https://api.example.com:443" and prepared.host == "api.example.com"
    assert prepared.headers == {"accept": "application/vnd.api+json", "Content-Type": "application/json"}
    assert json.loads(prepared.body or b"") == {"amount": 10, "note": "ü"}
    assert prepared.idempotent is False
    keyed = ApiRequestBuilder(endpoint, parameters={"customer_id": "c", "invoice": 1}).with_idempotency_key(
        "k1"
    )
    built = keyed.build("https://api.example.com")
    assert built.idempotent is True and built.headers["Idempotency-Key"] == "k1"
    assert ApiEndpointConfig(path="/x", method="PATCH", idempotent=True).is_idempotent
    assert ApiEndpointConfig(path="/x", method="DELETE").is_idempotent
    form = ApiRequestBuilder(ApiEndpointConfig(path="/t", method="POST")).with_form({"a": "1 2", "b": [1, 2]})
    built_form = form.build("http://h")
    assert built_form.body == b"a=1%202&b=1&b=2"
    assert built_form.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_replaced_keeps_every_other_field_of_the_builder() -> None:
    """``replaced`` copies the builder field by field: every field not replaced must survive
    (a field added to the builder and not copied fails here)."""
    builder = ApiRequestBuilder(
        ApiEndpointConfig(path="/c/{id}", method="POST"),
        parameters={"id": "x"},
        query={"q": 1},
        headers={"X-A": "1"},
        body={"b": 2},
        form=None,
        idempotency_key="idem-1",
        timeout_seconds=7.0,
        raw_query="a=1",
    )
    names = {f.name for f in dataclasses.fields(ApiRequestBuilder)}
    assert names == {
        "config",
        "parameters",
        "query",
        "headers",
        "body",
        "form",
        "idempotency_key",
        "timeout_seconds",
        "raw_query",
    }, "a new builder field: make replaced() copy it, then list it here"
    copied = builder.replaced(headers={"Authorization": "Bearer t"})
    assert copied == dataclasses.replace(builder, headers={"Authorization": "Bearer t"})
    both = builder.replaced(headers={"H": "v"}, query={"api_key": "k"})
    assert both == dataclasses.replace(builder, headers={"H": "v"}, query={"api_key": "k"})
    with_form = dataclasses.replace(builder, form={"f": "1"}, body=NO_BODY).replaced(query={})
    assert with_form.form == {"f": "1"} and with_form.body is NO_BODY


def test_endpoint_config_normalises_the_method_and_reads_the_path_template() -> None:
    lower = ApiEndpointConfig(path="/c", method="post")
    assert lower.method == "POST" and lower.path_params == ()
    template = ApiEndpointConfig(path="/c/{id}/lines/{line_id}", query={"limit": 5})
    assert template.path_params == ("id", "line_id")
    built = ApiRequestBuilder(template, parameters={"id": "a b", "line_id": 7}).build("http://h/v1")
    assert built.url == "http://h/v1/c/a%20b/lines/7?limit=5"
    assert ApiRequestBuilder(ApiEndpointConfig(path="/plain")).build("http://h").url == "http://h/plain"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c/{id}")).build("http://h"), "parameters.id"),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c"), parameters={"id": 1}).build("http://h"),
            "parameters.id",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c/{id}"), parameters={"id": ".."}).build(
                "http://h"
            ),
            "parameters.id",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c/{id}"), parameters={"id": True}).build(
                "http://h"
            ),
            "parameters.id",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c"), query={"n": float("nan")}).build(
                "http://h"
            ),
            "query.n",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c"), query={"n": {"a": 1}}).build("http://h"),
            "query.n",
        ),
        (
            lambda: ApiRequestBuilder(
                ApiEndpointConfig(path="/c", query_params=frozenset({"a"})), query={"b": 1}
            ).build("http://h"),
            "query.b",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c", required_query=frozenset({"a"}))).build(
                "http://h"
            ),
            "query.a",
        ),
        (
            lambda: ApiRequestBuilder(
                ApiEndpointConfig(path="/c"), headers={"X-A": "v\r\nInjected: 1"}
            ).build("http://h"),
            "headers.X-A",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c"), headers={"Bad Name": "v"}).build(
                "http://h"
            ),
            "headers.Bad Name",
        ),
        (
            lambda: ApiRequestBuilder(
                ApiEndpointConfig(path="/c", method="POST"), body={"x": float("inf")}
            ).build("http://h"),
            "body",
        ),
        (lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c")).build(""), "path"),
        (lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c")).build("ftp://h"), "path"),
        (lambda: ApiEndpointConfig(path="c"), "path"),
        (lambda: ApiEndpointConfig(path="/c?x=1"), "path"),
        (lambda: ApiEndpointConfig(path="/c", method="TRACE"), "method"),
        (lambda: ApiEndpointConfig(path="/c", method=["GET"]), "method"),  # type: ignore[arg-type]
        (lambda: ApiEndpointConfig(path="/c/{id}/{id}"), "path"),
        (lambda: ApiEndpointConfig(path="/c/{bad-name}"), "path"),
        (lambda: ApiEndpointConfig(path="/c}"), "path"),
        (lambda: ApiEndpointConfig(path="/c d"), "path"),
        (lambda: ApiEndpointConfig(path="/c\r\nX: 1"), "path"),
        (lambda: ApiEndpointConfig(path="/c", headers={"X-A": "v\nInjected: 1"}), "headers.X-A"),
        (lambda: ApiEndpointConfig(path="/c", timeout_seconds=0), "timeout_seconds"),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c"), headers={"X-A": "a\x01b"}).build(
                "http://h"
            ),
            "headers.X-A",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c"), headers={"X-A": "a\x7fb"}).build(
                "http://h"
            ),
            "headers.X-A",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c"), headers={"X-A": "\ud800"}).build(
                "http://h"
            ),
            "headers.X-A",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c"), query={"q": "\ud800"}).build("http://h"),
            "query",
        ),
        (
            lambda: ApiRequestBuilder(
                ApiEndpointConfig(path="/c", method="POST"), form={"f": "\udfff"}
            ).build("http://h"),
            "form",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c", method="POST"), body="\ud800").build(
                "http://h"
            ),
            "body",
        ),
        (
            lambda: ApiRequestBuilder(ApiEndpointConfig(path="/c/{id}"), parameters={"id": "a\tb"}).build(
                "http://h"
            ),
            "parameters.id",
        ),
        (lambda: ApiEndpointConfig(path="/c\x01"), "path"),
        (lambda: ApiClientConfig(tenant_id="t", base_url="http://u:p@h"), "base_url"),
        (lambda: RetryPolicy(max_attempts=0), "retry.max_attempts"),
    ],
)
def test_builder_refuses_bad_input_naming_the_field(make: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        make()
    assert field_of(caught.value) == field


def test_rate_limit_and_retry_after_headers() -> None:
    now = 1_800_000_000.0
    draft = parse_rate_limit(
        {"RateLimit": '"default";r=7;t=12', "RateLimit-Policy": '"default";q=100;w=60'}, now
    )
    assert draft is not None
    assert (draft.limit, draft.remaining, draft.reset_seconds, draft.window_seconds, draft.policy) == (
        100,
        7,
        12.0,
        60.0,
        "default",
    )
    older = parse_rate_limit({"RateLimit": "limit=10, remaining=0, reset=5"}, now)
    assert older is not None and (older.limit, older.remaining, older.reset_seconds) == (10, 0, 5.0)
    fields = parse_rate_limit(
        {"RateLimit-Limit": "50", "RateLimit-Remaining": "3", "RateLimit-Reset": "9"}, now
    )
    assert fields is not None and (fields.limit, fields.remaining, fields.reset_seconds) == (50, 3, 9.0)
    github = parse_rate_limit(
        {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 30)},
        now,
    )
    assert github is not None and (github.limit, github.remaining, github.reset_seconds) == (5000, 0, 30.0)
    assert github.source == "x-ratelimit"
    millis = parse_rate_limit(
        {"X-Rate-Limit-Remaining": "1", "X-Rate-Limit-Reset": str(int(now * 1000) + 4000)}, now
    )
    assert millis is not None and millis.reset_seconds == pytest.approx(4.0)
    assert parse_rate_limit({"Content-Type": "text/plain"}, now) is None
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2037 07:28:00 GMT", now=2139722880.0 - 90) == pytest.approx(90.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    # a provider's odd values: not digits to Python's int(), or too many for a float
    assert parse_retry_after("\u00b2") is None and parse_retry_after("\u0663") is None
    assert parse_retry_after("9" * 400) == 1e9


@pytest.mark.parametrize(
    "document",
    [
        b'{"id": "it_1", "lines": [1, 2.5, -0.0, 1e400, null, true], "name": "\\u00e9\xc3\xa9"}',
        b"123456789012345678901234567890",
        b"NaN",
        b'{"a": 1, "a": 2}',
        b'"\\ud800"',  # a lone surrogate escape: json.loads reads it, pydantic_core does not
        b"\xef\xbb\xbf{}",  # a byte order mark
        '{"utf": 16}'.encode("utf-16"),
        b"[1,]",
        b'{"a": 1}{}',
        b'"\t"',
        b"\xff",
    ],
)
def test_json_bodies_decode_as_json_loads_reads_them(document: bytes) -> None:
    try:
        expected: Any = json.loads(document)
    except ValueError:
        with pytest.raises(ValueError):
            json_value(document)
        assert decode_body(document, "application/json") == document.decode("utf-8", errors="replace")
        return
    assert repr(json_value(document)) == repr(expected)  # repr: NaN is not equal to itself
    assert repr(decode_body(document, "application/problem+json; charset=utf-8")) == repr(expected)


@pytest.mark.parametrize("nesting", [250, 5000])
def test_json_nested_too_deeply_is_text(nesting: int) -> None:
    document = b"[" * nesting + b"]" * nesting
    with pytest.raises(ValueError):
        json_value(document)
    assert decode_body(document, "application/json") == document.decode()


def test_redaction_helpers() -> None:
    url = redact_url("https://user:pw@api.example.com/v1/x?api_key=K1&page=2&access_token=T1&sig=S1#frag")
    assert (
        url == "https://api.example.com/v1/x?api_key=[redacted]&page=2&access_token=[redacted]&sig=[redacted]"
    )
    small = redact_body(
        b'{"user":"a","password":"P1","nested":{"client_secret":"S2","n":1}}', "application/json"
    )
    assert small is not None and "P1" not in small and "S2" not in small and '"n":1' in small
    large = json.dumps({"token": "T9", "items": ["x" * 100] * 60, "secret": "Z9"}).encode()
    kept = redact_body(large, "application/json")
    assert kept is not None and len(kept) <= 4096 and "T9" not in kept and "Z9" not in kept
    assert redact_body(b"\x00\x01\x02\xff" * 100, "application/octet-stream") is None
    assert redact_body(b"a=1&password=P3", "application/x-www-form-urlencoded") == "a=1&password=[redacted]"


def test_credential_words_are_redacted_in_any_name() -> None:
    """Names built around a credential word (a service account's ``private_key``, a presigned
    URL's ``X-Amz-Signature``, a JWT ``client_assertion``) are redacted in URLs and bodies;
    words that only contain one (``monkey``, ``keyword``) are not."""
    url = redact_url("https://s3.example.com/o?X-Amz-Signature=S1&X-Amz-Date=D&jwt=J1&keyword=kw")
    assert url == "https://s3.example.com/o?X-Amz-Signature=[redacted]&X-Amz-Date=D&jwt=[redacted]&keyword=kw"
    account = json.dumps(
        {"type": "service_account", "private_key_id": "K1", "private_key": "-----BEGIN PRIVATE KEY-----P1"}
    )
    body = redact_body(account.encode(), "application/json")
    assert body is not None and "K1" not in body and "P1" not in body and "service_account" in body
    nested = redact_body(
        b'{"items":[{"signingKey":"S2","monkey":"m"}],"passphrase":"P2"}', "application/json"
    )
    assert nested == '{"items":[{"signingKey":"[redacted]","monkey":"m"}],"passphrase":"[redacted]"}'
    form = redact_body(
        b"client_assertion=A1&code_verifier=V1&grant_type=g", "application/x-www-form-urlencoded"
    )
    assert form == "client_assertion=[redacted]&code_verifier=[redacted]&grant_type=g"


# -- timing, pooling -------------------------------------------------------------------------------


async def test_timing_and_pool_reuse(receiver: Receiver, outbound: OutboundService) -> None:
    receiver.script("/v1/items/a/b", Answer(headers=JSON, body='{"id": "a/b"}'))
    client = outbound.client(config(receiver.url + "/v1"))
    first = await client.call("GET", "/items/{id}", parameters={"id": "a/b"})
    assert first.status == 200 and first.data == {"id": "a/b"} and first.ok
    assert first.reused is False
    assert first.timing.connect_ms > 0 and first.timing.dns_ms == 0 and first.timing.tls_ms == 0
    assert 0 < first.timing.first_byte_ms <= first.timing.total_ms <= first.duration_ms
    second = await client.call("GET", "/items/{id}", parameters={"id": "a/b"})
    assert second.reused is True
    assert (second.timing.dns_ms, second.timing.connect_ms, second.timing.tls_ms) == (0, 0, 0)
    assert second.timing.first_byte_ms > 0
    assert len(outbound.pools) == 1
    [pool] = outbound.pools.values()
    assert pool.limit_per_host == 32
    await outbound.close()  # shutdown closes the pooled connections
    assert outbound.pools == {} and pool._pool is None


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_tls_and_dns_timing(tmp_path: Path) -> None:
    cert_path, key_path = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_path, key_path)
    app = web.Application()

    async def hello(_request: web.Request) -> web.Response:
        return web.json_response({"tls": True})

    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = runner.addresses[0][1]
    client_ctx = ssl.create_default_context(cafile=str(cert_path))
    svc = service(ssl_context=client_ctx)
    try:
        client = svc.client(config(f"https://localhost:{port}"))
        first = await client.call("GET", "/hello")
        assert first.data == {"tls": True}
        assert first.timing.dns_ms > 0 and first.timing.connect_ms > 0 and first.timing.tls_ms > 0
        assert first.reused is False
        again = await client.call("GET", "/hello")
        assert again.reused is True and again.timing.tls_ms == 0 and again.timing.dns_ms == 0
        ip_client = svc.client(config(f"https://127.0.0.1:{port}"))
        by_ip = await ip_client.call("GET", "/hello")
        assert by_ip.timing.dns_ms == 0 and by_ip.timing.tls_ms > 0
        untrusted = service()
        try:
            with pytest.raises(OutboundError) as caught:
                await untrusted.client(config(f"https://127.0.0.1:{port}")).call("GET", "/hello")
            assert caught.value.error_class == "tls" and caught.value.attempts == 1  # not retried
        finally:
            await untrusted.close()
    finally:
        await svc.close()
        await runner.cleanup()


# -- retries ---------------------------------------------------------------------------------------


async def test_retries_on_503_and_reset(receiver: Receiver, outbound: OutboundService) -> None:
    receiver.script("/flaky", Answer(503), Answer(503), Answer(200, JSON, '{"ok": true}'))
    client = outbound.client(config(receiver.url, circuit_breaker=None))
    response = await client.call("GET", "/flaky")
    assert response.status == 200 and response.attempts == 3 and response.error_class is None
    assert len(receiver.received("/flaky")) == 3

    # On a new connection (aiohttp itself resends an idempotent request once when a *pooled*
    # connection turns out to be closed, below the client's attempt count).
    receiver.script("/reset", Answer(reset=True), Answer(200))
    fresh = service()
    try:
        after_reset = await fresh.client(config(receiver.url)).call("GET", "/reset")
    finally:
        await fresh.close()
    assert after_reset.status == 200 and after_reset.attempts == 2
    assert len(receiver.received("/reset")) == 2

    receiver.script("/down", Answer(503))
    exhausted = await client.call("GET", "/down")
    assert exhausted.status == 503 and exhausted.attempts == 3 and exhausted.error_class == "http_5xx"
    with pytest.raises(OutboundError) as caught:
        exhausted.raise_for_status()
    assert caught.value.response is exhausted

    receiver.script("/missing", Answer(404))
    not_found = await client.call("GET", "/missing")
    assert not_found.attempts == 1 and not_found.error_class == "http_4xx"


async def test_429_retry_after_is_honoured(receiver: Receiver, outbound: OutboundService) -> None:
    receiver.script(
        "/limited",
        Answer(429, {"Retry-After": "1", "RateLimit": "limit=5, remaining=0, reset=1"}),
        Answer(200, {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4"}),
    )
    client = outbound.client(config(receiver.url, connection_id=unique_connection()))
    response = await client.call("GET", "/limited")
    assert response.status == 200 and response.attempts == 2
    assert response.rate_limit is not None and response.rate_limit.remaining == 4
    first, second = receiver.received("/limited")
    assert second.at - first.at >= 1.0
    assert response.duration_ms >= 1000


async def test_non_idempotent_requests_are_not_retried_once_sent(
    receiver: Receiver, outbound: OutboundService
) -> None:
    client = outbound.client(config(receiver.url, circuit_breaker=None))
    receiver.script("/charge", Answer(503), Answer(201))
    plain = await client.call("POST", "/charge", json={"amount": 1})
    assert plain.status == 503 and plain.attempts == 1
    assert len(receiver.received("/charge")) == 1

    receiver.script("/charge-reset", Answer(reset=True), Answer(201))
    with pytest.raises(OutboundError) as caught:
        await client.call("POST", "/charge-reset", json={"amount": 1})
    assert caught.value.error_class == "connect" and caught.value.attempts == 1
    assert len(receiver.received("/charge-reset")) == 1

    receiver.script("/charge-keyed", Answer(503), Answer(201))
    keyed = await client.call("POST", "/charge-keyed", json={"amount": 1}, idempotency_key="order-7")
    assert keyed.status == 201 and keyed.attempts == 2
    keys = {r.headers["idempotency-key"] for r in receiver.received("/charge-keyed")}
    assert keys == {"order-7"}

    receiver.script("/marked", Answer(503), Answer(200))
    marked = await client.request(ApiEndpointConfig(path="/marked", method="PATCH", idempotent=True))
    assert marked.status == 200 and marked.attempts == 2

    # Nothing listens on this port: the connection fails before anything is sent, so even a POST
    # without an Idempotency-Key is tried again.
    closed = receiver.url.rsplit(":", 1)[0] + ":1"
    with pytest.raises(OutboundError) as refused:
        await outbound.client(config(closed)).call("POST", "/x", json={})
    assert refused.value.error_class == "connect" and refused.value.attempts == FAST.max_attempts


async def test_retry_budget_stops_retry_storms(receiver: Receiver, outbound: OutboundService) -> None:
    receiver.script("/outage", Answer(503))
    budget = RetryBudgetConfig(ratio=0.0, min_retries=2, window_seconds=60)
    client = outbound.client(config(receiver.url, connection_id=unique_connection(), retry_budget=budget))
    first = await client.call("GET", "/outage")
    assert first.attempts == 3 and first.error_class == "http_5xx"
    second = await client.call("GET", "/outage")
    assert second.attempts == 1 and second.error_class == "budget_exhausted" and second.status == 503
    assert len(receiver.received("/outage")) == 4
    generous = RetryBudgetConfig(ratio=1.0, min_retries=0, window_seconds=60)
    other = outbound.client(config(receiver.url, connection_id=unique_connection(), retry_budget=generous))
    third = await other.call("GET", "/outage")
    assert third.attempts == 2 and third.error_class == "budget_exhausted"  # 1 call buys 1 retry


# -- rate limits and 429 blocks --------------------------------------------------------------------


async def test_rate_limit_waits_for_a_slot_in_memory(receiver: Receiver, outbound: OutboundService) -> None:
    limit = RateLimit(limit=2, period_seconds=1, max_wait_seconds=5)
    client = outbound.client(config(receiver.url, connection_id=unique_connection(), rate_limit=limit))
    started = time.monotonic()
    for _ in range(3):
        assert (await client.call("GET", "/slow-down")).ok
    # the first slot was taken after ``started``; the third waited for it to leave the window
    assert time.monotonic() - started >= 0.98
    assert len(receiver.received("/slow-down")) == 3
    refusing = outbound.client(
        config(
            receiver.url,
            connection_id=unique_connection(),
            host_rate_limit=RateLimit(limit=1, period_seconds=60, max_wait_seconds=0),
        )
    )
    host_key = f"host:{refusing.config.base_url.split('//')[1].split(':')[0]}"
    await outbound.limiter.reset()
    assert (await refusing.call("GET", "/host")).ok
    with pytest.raises(OutboundError) as caught:
        await refusing.call("GET", "/host")
    assert caught.value.error_class == "rate_limited" and caught.value.attempts == 0
    assert caught.value.retry_after_seconds is not None and 59 < caught.value.retry_after_seconds <= 60
    assert len(receiver.received("/host")) == 1
    assert host_key == "host:127.0.0.1"


async def test_rate_limit_shared_by_two_processes_through_redis(receiver: Receiver) -> None:
    need(redis_available(), f"Redis not reachable at {REDIS_URL}")
    connection_id = unique_connection()
    limit = RateLimit(limit=3, period_seconds=60, max_wait_seconds=0)
    first, second = service(redis_url=REDIS_URL), service(redis_url=REDIS_URL)
    try:
        a = first.client(config(receiver.url, connection_id=connection_id, rate_limit=limit))
        b = second.client(config(receiver.url, connection_id=connection_id, rate_limit=limit))
        assert (await a.call("GET", "/shared")).ok
        assert (await b.call("GET", "/shared")).ok
        assert (await a.call("GET", "/shared")).ok
        for client in (b, a):
            with pytest.raises(OutboundError) as caught:
                await client.call("GET", "/shared")
            assert caught.value.error_class == "rate_limited"
        assert len(receiver.received("/shared")) == 3
        # another connection has its own window
        c = second.client(config(receiver.url, connection_id=unique_connection(), rate_limit=limit))
        assert (await c.call("GET", "/shared")).ok
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_429_blocks_every_worker_of_the_connection(receiver: Receiver, store: str) -> None:
    if store == "redis":
        need(redis_available(), f"Redis not reachable at {REDIS_URL}")
        first, second = service(redis_url=REDIS_URL), service(redis_url=REDIS_URL)
    else:
        first = second = service()
    connection_id = unique_connection()
    no_retry = RetryPolicy(max_attempts=1)
    try:
        receiver.script("/busy", Answer(429, {"Retry-After": "1"}), Answer(200))
        a = first.client(config(receiver.url, connection_id=connection_id, retry=no_retry))
        b = second.client(config(receiver.url, connection_id=connection_id, retry=no_retry))
        refused = await a.call("GET", "/busy")
        assert refused.status == 429 and refused.error_class == "rate_limited"
        assert refused.retry_after_seconds == 1.0
        answered = await b.call("GET", "/busy")
        assert answered.status == 200
        blocked, allowed = receiver.received("/busy")
        assert allowed.at - blocked.at >= 0.99  # b waited out the block a was given

        receiver.script("/busy-long", Answer(429, {"Retry-After": "300"}))
        long_block = await a.call("GET", "/busy-long")
        assert long_block.status == 429
        with pytest.raises(OutboundError) as caught:
            await b.call("GET", "/busy-long")
        assert caught.value.error_class == "rate_limited" and caught.value.attempts == 0
        assert caught.value.retry_after_seconds is not None and 299 < caught.value.retry_after_seconds <= 300
        assert len(receiver.received("/busy-long")) == 1

        # A Retry-After years ahead blocks for a day at most.
        receiver.script("/busy-forever", Answer(429, {"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}))
        years = unique_connection()
        far = first.client(config(receiver.url, connection_id=years, retry=no_retry))
        assert (await far.call("GET", "/busy-forever")).retry_after_seconds > 10 * 365 * 86_400
        assert 86_390 < await second.limiter.blocked_for(years) <= MAX_BLOCK_SECONDS == 86_400
    finally:
        await first.limiter.block(connection_id, 0)
        await first.close()
        if second is not first:
            await second.close()


# -- circuit breaker -------------------------------------------------------------------------------


async def test_circuit_opens_half_opens_and_closes(receiver: Receiver, outbound: OutboundService) -> None:
    connection_id = unique_connection()
    breaker = CircuitBreakerConfig(failure_threshold=2, window_seconds=30, cooldown_seconds=0.3)
    client = outbound.client(
        config(
            receiver.url,
            connection_id=connection_id,
            provider_key="acme",
            retry=RetryPolicy(max_attempts=1),
            circuit_breaker=breaker,
        )
    )
    receiver.script("/cb", Answer(500), Answer(500), Answer(500), Answer(200, gated=True), Answer(200))
    for _ in range(2):
        assert (await client.call("GET", "/cb")).status == 500
    snapshot = outbound.circuit(connection_id)
    assert snapshot is not None and snapshot.state == OPEN and snapshot.opened_count == 1
    assert _gauge("acme", OPEN) >= 1
    with pytest.raises(OutboundError) as caught:
        await client.call("GET", "/cb")
    assert caught.value.error_class == "circuit_open" and caught.value.attempts == 0
    assert caught.value.retry_after_seconds is not None and 0 < caught.value.retry_after_seconds <= 0.3
    assert len(receiver.received("/cb")) == 2

    await _until(lambda: outbound.circuit(connection_id).state == HALF_OPEN)  # type: ignore[union-attr]
    failed_probe = await client.call("GET", "/cb")  # the probe fails: open again
    assert failed_probe.status == 500
    assert outbound.circuit(connection_id).state == OPEN  # type: ignore[union-attr]

    await _until(lambda: outbound.circuit(connection_id).state == HALF_OPEN)  # type: ignore[union-attr]
    probe = asyncio.create_task(client.call("GET", "/cb"))  # held at the receiver's gate
    await receiver.wait_for(lambda: len(receiver.received("/cb")) == 4)
    with pytest.raises(OutboundError) as second_probe:
        await client.call("GET", "/cb")  # only one probe at a time
    assert second_probe.value.error_class == "circuit_open"
    receiver.release("/cb")
    assert (await probe).status == 200
    assert outbound.circuit(connection_id).state == CLOSED  # type: ignore[union-attr]
    assert (await client.call("GET", "/cb")).status == 200


async def test_a_retry_held_back_ends_the_call_with_the_answer_it_has(
    receiver: Receiver, outbound: OutboundService
) -> None:
    """The provider answered; its retry was refused before sending (here the circuit the answer
    opened): the call ends with that answer, its error class saying why it was not retried."""
    breaker = CircuitBreakerConfig(failure_threshold=1, window_seconds=30, cooldown_seconds=30)
    client = outbound.client(config(receiver.url, connection_id=unique_connection(), circuit_breaker=breaker))
    receiver.script("/opens", Answer(503, JSON, '{"busy": true}'))
    response = await client.call("GET", "/opens")
    assert response.status == 503 and response.attempts == 1 and response.data == {"busy": True}
    assert response.error_class == "circuit_open"
    assert len(receiver.received("/opens")) == 1


def _gauge(provider: str, state: str) -> float:
    value = REGISTRY.get_sample_value("interlink_outbound_circuits", {"provider": provider, "state": state})
    return value or 0.0


async def _until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


# -- batches ---------------------------------------------------------------------------------------


async def test_batch_collect_all_and_fail_fast(receiver: Receiver, outbound: OutboundService) -> None:
    receiver.script("/item/2", Answer(404))
    receiver.script("/item/0", Answer(delay=0.05))
    receiver.script("/item/1", Answer(delay=0.3))
    for i in range(3, 8):
        receiver.script(f"/item/{i}", Answer(delay=0.05))
    client = outbound.client(config(receiver.url, retry=RetryPolicy(max_attempts=1)))
    endpoint = ApiEndpointConfig(path="/item/{n}")
    requests = [ApiRequestBuilder(endpoint, parameters={"n": i}) for i in range(8)]

    results = await client.batch(requests, concurrency=3, mode="collect_all")
    assert [r.status for r in results if isinstance(r, ApiResponse)] == [
        200,
        200,
        404,
        200,
        200,
        200,
        200,
        200,
    ]
    assert max(receiver.max_in_progress.get(f"/item/{i}", 0) for i in range(8)) <= 1
    assert len(receiver.requests) == 8

    receiver.requests.clear()
    with pytest.raises(BatchFailed) as caught:
        await client.batch(requests, concurrency=2, mode="fail_fast")
    failure = caught.value
    assert failure.index == 2 and failure.failure.error_class == "http_4xx"
    assert failure.results[0] is not None and failure.results[2] is not None
    assert failure.results[1] is None  # in flight (slow) when request 2 failed: cancelled
    assert all(r is None for r in failure.results[4:])  # never started
    assert len(receiver.requests) < 8


async def test_batch_needs_a_positive_concurrency(outbound: OutboundService) -> None:
    client = outbound.client(config("http://127.0.0.1:1"))
    with pytest.raises(ValueError, match="concurrency"):
        await client.batch([], concurrency=0)
    assert await client.batch([]) == []


# -- the request log -------------------------------------------------------------------------------


async def _rows(runtime: Runtime) -> list[ExternalApiRequest]:
    async with runtime.db.unit_of_work(write=False) as session:
        return list(
            (await session.scalars(sa.select(ExternalApiRequest).order_by(ExternalApiRequest.id))).all()
        )


def _as_text(row: ExternalApiRequest) -> str:
    return json.dumps({c.key: getattr(row, c.key) for c in sa.inspect(row).mapper.column_attrs}, default=str)


async def test_request_log_is_redacted_and_complete(runtime: Runtime, receiver: Receiver) -> None:
    runtime.outbound.allowed_networks = LOCAL
    receiver.script(
        "/v1/tokens",
        Answer(
            200,
            {"Content-Type": "application/json", "Set-Cookie": "session=COOKIE-SECRET"},
            '{"access_token": "RESPONSE-SECRET", "expires_in": 3600}',
        ),
    )
    client = runtime.outbound.client(
        ApiClientConfig(
            tenant_id="ten_log",
            base_url=receiver.url + "/v1",
            connection_id="conn_log",
            provider_key="acme",
            headers={"Authorization": "Bearer HEADER-SECRET-123456"},
        )
    )
    response = await client.request(
        ApiEndpointConfig(path="/tokens", method="POST", name="tokens.create"),
        query={"api_key": "QUERY-SECRET", "token": "QUERY-SECRET-2", "page": 2},
        body={"username": "ada", "password": "BODY-SECRET", "client_secret": "BODY-SECRET-2"},
        correlation_id="corr-123",
    )
    assert response.ok and response.data["access_token"] == "RESPONSE-SECRET"
    assert "QUERY-SECRET" not in response.url and response.request_id is not None
    assert receiver.received("/v1/tokens")[0].headers["authorization"] == "Bearer HEADER-SECRET-123456"
    await runtime.outbound.log.flush()  # type: ignore[union-attr]

    [row] = await _rows(runtime)
    text = _as_text(row)
    for secret in ("QUERY-SECRET", "HEADER-SECRET", "BODY-SECRET", "RESPONSE-SECRET", "COOKIE-SECRET"):
        assert secret not in text, secret
    assert row.id == response.request_id and row.tenant_id == "ten_log" and row.connection_id == "conn_log"
    assert row.provider_key == "acme" and row.operation == "tokens.create" and row.method == "POST"
    assert row.url.endswith("/v1/tokens?api_key=[redacted]&token=[redacted]&page=2")
    assert row.status == 200 and row.error_class is None and row.attempts == 1
    assert row.request_headers["Authorization"] == "[redacted]"
    assert row.response_headers is not None and row.response_headers["Set-Cookie"] == "[redacted]"
    assert json.loads(row.request_body or "") == {
        "username": "ada",
        "password": "[redacted]",
        "client_secret": "[redacted]",
    }
    assert json.loads(row.response_body or "")["expires_in"] == 3600
    assert row.correlation_id == "corr-123"
    assert row.connect_ms is not None and row.connect_ms > 0 and row.reused is False
    assert row.total_ms is not None and row.first_byte_ms is not None and row.duration_ms >= row.total_ms
    assert row.request_bytes > 0 and row.response_bytes == len(response.content)


async def test_request_log_records_failures_and_loses_nothing_on_close(
    runtime: Runtime, receiver: Receiver
) -> None:
    runtime.outbound.allowed_networks = LOCAL
    runtime.outbound.log.flush_seconds = 3600  # type: ignore[union-attr]  # only size and close flush
    runtime.outbound.log.batch_rows = 7  # type: ignore[union-attr]
    client = runtime.outbound.client(
        ApiClientConfig(tenant_id="ten_log", base_url=receiver.url, retry=FAST, circuit_breaker=None)
    )
    receiver.script("/ok", Answer(200))
    receiver.script("/gone", Answer(404))
    calls = [client.call("GET", "/ok") for _ in range(40)] + [client.call("GET", "/gone")]
    await asyncio.gather(*calls)
    refused = runtime.outbound.client(
        ApiClientConfig(tenant_id="ten_log", base_url="http://127.0.0.1:1", retry=FAST)
    )
    with pytest.raises(OutboundError):
        await refused.call("GET", "/x")
    # a writer with plenty left in its buffer
    writer = RequestLogWriter(runtime.db, flush_seconds=3600, batch_rows=100)
    writer.start()
    for i in range(345):
        writer.record(_entry(f"apr_{min_id_at('apr', clock.utcnow())[4:-6]}{i:06d}"))
    await writer.close()
    await runtime.outbound.close()
    rows = await _rows(runtime)
    assert len(rows) == 40 + 1 + 1 + 345
    statuses = [(r.status, r.error_class, r.attempts) for r in rows if r.tenant_id == "ten_log"]
    assert statuses.count((200, None, 1)) == 40
    assert (404, "http_4xx", 1) in statuses and (None, "connect", 3) in statuses


async def test_request_log_writes_whole_batches_when_woken_and_the_rest_on_time(runtime: Runtime) -> None:
    """Woken by a whole batch waiting, the writer writes whole batches and leaves the rest for the
    next batch or its timer; the timer writes whatever waits; close writes everything."""
    prefix = min_id_at("apr", clock.utcnow())[4:-6]
    writer = RequestLogWriter(runtime.db, flush_seconds=3600, batch_rows=10)
    writer.start()
    for i in range(25):
        writer.record(_entry(f"apr_{prefix}{i:06d}"))
    async with asyncio.timeout(10):
        while writer.written < 20:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # a loop that wrote the partial batch too would have done so by now
    assert (writer.written, writer.pending) == (20, 5)
    await writer.close()
    assert (writer.written, writer.pending) == (25, 0)

    timed = RequestLogWriter(runtime.db, flush_seconds=0.1, batch_rows=100)
    timed.start()
    for i in range(25, 30):
        timed.record(_entry(f"apr_{prefix}{i:06d}"))
    async with asyncio.timeout(10):
        while timed.written < 5:
            await asyncio.sleep(0.01)
    await timed.close()
    assert len(await _rows(runtime)) == 30


async def test_a_body_no_redaction_can_read_never_holds_back_the_log(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JSON body nested past what the parser walks is logged as redacted text; a row whose
    bodies cannot be built at all is written without them, and the rows after it are written."""
    prefix = min_id_at("apr", clock.utcnow())[4:-6]
    deep = b'{"token": "SECRET-1", "n": ' + b"[" * 1500 + b"]" * 1500 + b"}"
    assert len(deep) < log_module.BODY_LIMIT
    writer = RequestLogWriter(runtime.db, flush_seconds=3600)
    first = dataclasses.replace(
        _entry(f"apr_{prefix}000001"),
        response_body=deep,
        response_headers={"Content-Type": "application/json"},
    )
    writer.record(first)
    writer.record(_entry(f"apr_{prefix}000002"))
    assert await writer.flush() == 2
    deep_row = (await _rows(runtime))[0]
    assert deep_row.response_body is not None and "SECRET-1" not in deep_row.response_body
    assert deep_row.response_body.replace(" ", "").startswith('{"token":"[redacted]","n":[[[')

    def unreadable(body: bytes | None, content_type: str | None) -> str | None:
        raise RecursionError("a body no redaction path can read")

    monkeypatch.setattr(log_module, "redact_body", unreadable)
    writer.record(dataclasses.replace(_entry(f"apr_{prefix}000003"), request_body=b'{"a": 1}'))
    writer.record(_entry(f"apr_{prefix}000004"))
    assert await writer.flush() == 2 and writer.pending == 0
    rows = await _rows(runtime)
    assert [r.id[-6:] for r in rows] == ["000001", "000002", "000003", "000004"]
    assert rows[2].request_body is None and rows[2].request_bytes == 8  # its size is still known
    await writer.close()


async def test_request_log_keeps_nul_answers_and_survives_refused_rows(
    runtime: Runtime, receiver: Receiver
) -> None:
    """A provider answer with NUL characters (which PostgreSQL text and JSON cannot hold) is logged
    with U+FFFD in their place; a row the database still refuses (here: an id written before) is
    dropped and counted alone, and the rows buffered with it are written."""
    runtime.outbound.allowed_networks = LOCAL
    receiver.script("/nul", Answer(200, {"Content-Type": "text/plain"}, "before\x00after"))
    client = runtime.outbound.client(ApiClientConfig(tenant_id="ten_nul", base_url=receiver.url))
    response = await client.call("GET", "/nul")
    assert response.content == b"before\x00after"
    writer = runtime.outbound.log
    assert writer is not None
    await writer.flush()
    [row] = [r for r in await _rows(runtime) if r.tenant_id == "ten_nul"]
    assert row.response_body == "before\ufffdafter"

    prefix = min_id_at("apr", clock.utcnow())[:-6]
    writer.record(_entry(f"{prefix}000001"))
    await writer.flush()
    dropped = writer.dropped
    for n in (2, 1, 3):  # the middle one repeats an id already written
        writer.record(_entry(f"{prefix}{n:06d}"))
    assert await writer.flush() == 2
    assert writer.dropped == dropped + 1 and writer.pending == 0
    ids = {r.id for r in await _rows(runtime) if r.tenant_id == "ten_bulk"}
    assert ids == {f"{prefix}{n:06d}" for n in (1, 2, 3)}


async def test_request_log_headers_survive_the_bulk_write_unchanged(runtime: Runtime) -> None:
    """Header names and values with quotes, backslashes, tabs, newlines, non-ASCII and JSON-looking
    text come back from the log exactly (PostgreSQL: JSON text through COPY's text format; SQLite:
    JSON text in a multi-row INSERT); NUL becomes U+FFFD; credential headers stay redacted."""
    awkward = {
        "X-Quote": 'say "hi"',
        "X-Backslash": "C:\\path\\n\\t",
        "X-Controls": "a\tb\nc\rd",
        "X-Unicode": "Zoë ✓ 日本 \U0001f600",
        "X-Json": '{"a": [1, "\\u0000"]}',
        "X-Nul": "x\x00y",
        "Authorization": "Bearer secret-token",
    }
    entry = _entry(min_id_at("apr", clock.utcnow()), tenant_id="ten_awkward")
    entry.request_headers = awkward
    entry.response_headers = {"Content-Type": 'text/plain; charset="utf-8"', "X-Back": "\\"}
    writer = runtime.outbound.log
    assert writer is not None
    writer.record(entry)
    assert await writer.flush() >= 1
    [row] = [r for r in await _rows(runtime) if r.tenant_id == "ten_awkward"]
    expected = {k: v for k, v in awkward.items() if k not in ("Authorization", "X-Nul")}
    assert {k: v for k, v in row.request_headers.items() if k in expected} == expected
    assert row.request_headers["X-Nul"] == "x\ufffdy"
    assert row.request_headers["Authorization"] != "Bearer secret-token"
    assert row.response_headers == {"Content-Type": 'text/plain; charset="utf-8"', "X-Back": "\\"}


async def test_request_log_on_a_sqlite_file_writes_whole_batches_and_keeps_them_through_an_outage(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """On a SQLite file the writer uses a connection and thread of its own: a batch it cannot
    write (the file cannot be opened) stays buffered and is written by the next flush, and a batch
    is one transaction (rows of a failing batch are not left half-written)."""
    path = tmp_path / "log.db"
    path.write_bytes(sqlite_template.read_bytes())
    db = Database(f"sqlite+aiosqlite:///{path}")
    writer = RequestLogWriter(db, flush_seconds=3600, batch_rows=1000)
    assert isinstance(writer._sqlite, SqliteLogFile) and writer._sqlite.path == str(path)
    prefix = min_id_at("apr", clock.utcnow())[:-6]
    for n in range(3):
        writer.record(_entry(f"{prefix}{n:06d}", tenant_id="ten_file"))
    writer._sqlite.path = str(tmp_path / "missing" / "log.db")  # the file is away
    with pytest.raises(sqlite3.OperationalError):
        await writer.flush()
    assert writer.pending == 3 and writer.dropped == 0
    writer._sqlite.path = str(path)
    assert await writer.flush() == 3

    # A transaction left open on the log's connection fails one flush, not every one after it.
    log_file = writer._sqlite
    assert log_file._executor is not None and log_file._connection is not None
    await asyncio.get_running_loop().run_in_executor(
        log_file._executor,
        lambda: log_file._connection.execute("BEGIN"),  # type: ignore[union-attr]
    )
    writer.record(_entry(f"{prefix}{3:06d}", tenant_id="ten_file"))
    with pytest.raises(sqlite3.OperationalError):
        await writer.flush()
    assert writer.pending == 1 and await writer.flush() == 1

    # One batch, one transaction over its INSERTs: a row of its second INSERT repeats an id, so
    # the batch fails as a whole (its first INSERT is rolled back), then the writer writes the
    # rows one by one and drops only that one.
    batch = [f"{prefix}{n:06d}" for n in range(100, 800)]
    assert len(batch) > log_module._SQLITE_ROWS_PER_INSERT
    batch[-1] = f"{prefix}{0:06d}"
    for request_id in batch:
        writer.record(_entry(request_id, tenant_id="ten_file"))
    assert await writer.flush() == len(batch) - 1 and writer.dropped == 1
    await writer.close()
    async with db.unit_of_work(write=False) as session:
        ids = set(await session.scalars(sa.select(ExternalApiRequest.id)))
    assert ids == {f"{prefix}{n:06d}" for n in (0, 1, 2, 3)} | set(batch)
    assert RequestLogWriter(Database("sqlite+aiosqlite:///:memory:"))._sqlite is None
    await db.engine.dispose()


def _entry(request_id: str, tenant_id: str = "ten_bulk", when: dt.datetime | None = None) -> LogEntry:
    return LogEntry(
        id=request_id,
        tenant_id=tenant_id,
        connection_id=None,
        provider_key=None,
        operation=None,
        method="GET",
        url="http://example.com/",
        status=200,
        error_class=None,
        error_message=None,
        attempts=1,
        timing=ApiTiming(total_ms=1.0),
        duration_ms=1.0,
        request_headers={},
        response_headers={},
        request_body=None,
        response_body=None,
        response_bytes=0,
        correlation_id=None,
        created_at=when or clock.utcnow(),
    )


async def test_retention_purges_the_request_log_and_audits_it(runtime: Runtime) -> None:
    async with runtime.db.unit_of_work() as session:
        tenant = await create_tenant(session, system_actor("ten_system"), "Log Co", "log-co")
    old = clock.utcnow() - dt.timedelta(days=40)
    writer = RequestLogWriter(runtime.db)
    for i in range(3):
        when = old + dt.timedelta(milliseconds=i)
        writer.record(_entry(min_id_at("apr", when), tenant.id, when))
    fresh = _entry(min_id_at("apr", clock.utcnow()), tenant.id)
    writer.record(fresh)
    await writer.close()

    result = await purge(
        runtime.db, RetentionPolicy.DAYS_365, RetentionPolicy.DAYS_90, RetentionPolicy.DAYS_30
    )
    assert result.api_requests == {tenant.id: 3}
    assert [r.id for r in await _rows(runtime)] == [fresh.id]
    async with runtime.db.unit_of_work(write=False) as session:
        audit = await session.scalar(
            sa.select(AuditEvent).where(
                AuditEvent.tenant_id == tenant.id, AuditEvent.action == "retention.purged"
            )
        )
    assert audit is not None and audit.changes["apiRequests"]["new"] == 3
    assert audit.changes["apiRequestPolicy"]["new"] == "DAYS_30"
    again = await purge(
        runtime.db, RetentionPolicy.DAYS_365, RetentionPolicy.DAYS_90, RetentionPolicy.DAYS_30
    )
    assert again.api_requests == {}
    kept = await purge(runtime.db, RetentionPolicy.DAYS_365, RetentionPolicy.DAYS_90, RetentionPolicy.FOREVER)
    assert kept.api_requests == {}


async def test_prometheus_counts_calls_by_provider_and_class(
    receiver: Receiver, outbound: OutboundService
) -> None:
    def sample(outcome: str, error_class: str) -> float:
        labels = {"provider": "promtest", "outcome": outcome, "error_class": error_class}
        return REGISTRY.get_sample_value("interlink_outbound_requests_total", labels) or 0.0

    receiver.script("/p-ok", Answer(200))
    receiver.script("/p-bad", Answer(400))
    client = outbound.client(config(receiver.url, provider_key="promtest"))
    before_ok, before_bad = sample("success", "none"), sample("failure", "http_4xx")
    await client.call("GET", "/p-ok")
    await client.call("GET", "/p-bad")
    assert sample("success", "none") == before_ok + 1
    assert sample("failure", "http_4xx") == before_bad + 1
    count = REGISTRY.get_sample_value(
        "interlink_outbound_request_duration_seconds_count", {"provider": "promtest"}
    )
    assert count is not None and count >= 2


def test_api_client_is_exported() -> None:
    assert ApiClient.__module__ == "interlink.outbound.client"
