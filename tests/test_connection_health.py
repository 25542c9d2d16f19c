"""Connection health checks against real servers on 127.0.0.1: DNS (through the SSRF guard), TCP,
TLS with a self-signed certificate, HTTP (the provider's verification call with credentials, a
configured path, the base URL); score and availability arithmetic; transitions publishing
``connection.unhealthy``/``connection.recovered`` once; history, the scheduled job, retention and
the REST errors."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from interlink.client import AsyncInterlinkClient, InterlinkClient, NotFoundError
from interlink.connections import health
from interlink.connections.health import (
    CheckResult,
    CheckStatus,
    HealthChecker,
    availability_ratio,
    health_score,
    interval_for,
    response_penalty,
    tls_verdict,
    verdict,
)
from interlink.connections.models import (
    HealthCheckTrigger,
    IntegrationConnection,
    IntegrationHealthCheck,
    IntegrationHealthStatus,
)
from interlink.core import clock, retention
from interlink.core.actor import system_actor
from interlink.core.enums import RetentionPolicy
from interlink.core.ids import new_id
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.jobs import queue
from interlink.jobs.registry import BUILTIN_SCHEDULES, CONNECTIONS_HEALTH, build_handlers
from interlink.outbound.config import RetryPolicy
from interlink.outbound.models import ExternalApiRequest
from interlink.runtime import Runtime
from interlink.webhooks.models import WebhookEvent
from tests.api_helpers import assert_problem, make_tenant
from tests.cli_runner import INTERLINK, run_interlink
from tests.conftest import TEST_MASTER_KEYS, TEST_PEPPER, LiveServer, auth, free_port, make_settings

H = IntegrationHealthStatus
API_KEY = "hc-test-api-key"


# -- local servers ---------------------------------------------------------------------------------


@dataclass
class LocalApi:
    """An aiohttp server on 127.0.0.1 that can be stopped and started again on the same port."""

    port: int
    ssl_context: ssl.SSLContext | None = None
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    seen: list[dict[str, str]] = field(default_factory=list)
    hold: asyncio.Event | None = None
    """When set, answers wait for this event (a provider that hangs until released)."""
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def _answer(self, request: web.Request) -> web.Response:
        self.seen.append({"path": request.path, "authorization": request.headers.get("Authorization", "")})
        if self.hold is not None:
            await self.hold.wait()
        return web.json_response(self.body, status=self.status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context, reuse_address=True
        )
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


LOCALHOST = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    signing_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    expires: dt.datetime,
    *,
    ca: bool = False,
) -> x509.Certificate:
    """A certificate valid from a day before ``now`` to ``expires``: a CA's, or one for 127.0.0.1."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(expires)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
    return builder.sign(signing_key, hashes.SHA256())


def _server_context(
    tmp_path: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> ssl.SSLContext:
    cert_file, key_file = tmp_path / f"{stem}.pem", tmp_path / f"{stem}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


def self_signed(tmp_path: Path, days: int = 40) -> tuple[ssl.SSLContext, dt.datetime]:
    """A server context with a self-signed certificate for 127.0.0.1, and its expiry."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expires = now + timedelta(days=days)
    cert = _certificate(LOCALHOST, LOCALHOST, key.public_key(), key, now, expires)
    return _server_context(tmp_path, "cert", cert, key), expires


def ca_signed(tmp_path: Path, days: int) -> tuple[ssl.SSLContext, ssl.SSLContext, dt.datetime]:
    """A server context with a certificate for 127.0.0.1 issued by a new CA, a client context that
    trusts that CA (and verifies the host), and the certificate's expiry."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, now, now + timedelta(days=365), ca=True)
    expires = now + timedelta(days=days)
    leaf = _certificate(LOCALHOST, ca_name, key.public_key(), ca_key, now, expires)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return _server_context(tmp_path, "leaf", leaf, key), client, expires


@pytest.fixture
def api_port() -> int:
    return free_port()


@pytest.fixture
def tls_port() -> int:
    return free_port()


def _provider_file(directory: Path, api_port: int, tls_port: int) -> Path:
    path = directory / "providers.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            providers:
              - key: local-verified
                name: Local verified
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [API_KEY]
                base_urls:
                  PRODUCTION: http://127.0.0.1:{api_port}/api
                verification:
                  method: GET
                  path: /health
                  expected_status: [200]
                  expect_json: {{ok: true}}
              - key: local-limited
                name: Local limited
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [API_KEY]
                base_urls:
                  PRODUCTION: http://127.0.0.1:{api_port}/api
                rate_limits:
                  - {{limit: 1, window_seconds: 3, scope: account, description: One call in 3 s}}
                verification:
                  method: GET
                  path: /health
              - key: local-plain
                name: Local plain
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: http://127.0.0.1:{api_port}
              - key: local-tls
                name: Local TLS
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [NONE]
                base_urls:
                  PRODUCTION: https://127.0.0.1:{tls_port}
            """
        )
    )
    return path


@pytest.fixture
def settings(db_url: str, tmp_path: Path, api_port: int, tls_port: int) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        providers_file=_provider_file(tmp_path, api_port, tls_port),
        allowed_target_networks=["127.0.0.0/8"],
    )


@pytest.fixture
async def api(api_port: int) -> AsyncIterator[LocalApi]:
    server = LocalApi(api_port)
    await server.start()
    yield server
    await server.stop()


async def _connection(
    client: httpx.AsyncClient, headers: dict[str, str], provider: str, name: str = "probe", **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"providerKey": provider, "name": name, **extra}
    if provider == "local-verified":
        body.setdefault("credentials", {"apiKey": API_KEY})
    response = await client.post("/v1/connections", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _check(client: httpx.AsyncClient, headers: dict[str, str], connection_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/connections/{connection_id}/health-checks", headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _by_name(check: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in check["checks"]}


async def _subscribe(client: httpx.AsyncClient, headers: dict[str, str], *types: str) -> str:
    body = {"channel": "EMAIL", "channelConfig": {"to": ["ops@example.com"]}, "eventTypes": list(types)}
    response = await client.post("/v1/endpoints", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _events(runtime: Runtime, event_type: str) -> list[WebhookEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(WebhookEvent).where(WebhookEvent.event_type == event_type).order_by(WebhookEvent.id)
        )
        return list(rows.all())


async def _row(runtime: Runtime, connection_id: str) -> IntegrationConnection:
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(IntegrationConnection, connection_id)
        assert row is not None
        return row


# -- pure arithmetic -------------------------------------------------------------------------------


def _checks(**statuses: str) -> list[CheckResult]:
    return [
        CheckResult(name, CheckStatus(status.rstrip("!")), 1.0, "", blocked=status.endswith("!"))
        for name, status in statuses.items()
    ]


def test_score_formula() -> None:
    healthy = _checks(dns="PASS", tcp="PASS", tls="SKIP", http="PASS")
    assert health_score(healthy, 100.0, None) == 100
    assert verdict(healthy, 100) is H.HEALTHY
    # DNS failure: everything after it is blocked and scored as failed.
    dns_down = _checks(dns="FAIL", tcp="SKIP!", tls="SKIP!", http="SKIP!")
    assert health_score(dns_down, None, None) == 0
    tcp_down = _checks(dns="PASS", tcp="FAIL", tls="SKIP!", http="SKIP!")
    assert health_score(tcp_down, None, None) == 15 and verdict(tcp_down, 15) is H.UNHEALTHY
    tls_bad = _checks(dns="PASS", tcp="PASS", tls="FAIL", http="SKIP!")
    assert health_score(tls_bad, None, None) == 30
    http_bad = _checks(dns="PASS", tcp="PASS", tls="PASS", http="FAIL")
    assert health_score(http_bad, 50.0, None) == 40 and verdict(http_bad, 40) is H.UNHEALTHY
    # WARN costs half the weight and makes the connection DEGRADED.
    limited = _checks(dns="PASS", tcp="PASS", tls="SKIP", http="WARN")
    assert health_score(limited, 100.0, None) == 70 and verdict(limited, 70) is H.DEGRADED
    expiring = _checks(dns="PASS", tcp="PASS", tls="WARN", http="PASS")
    assert health_score(expiring, 100.0, None) == 95 and verdict(expiring, 95) is H.DEGRADED
    # Response time: nothing up to 2 s, 5 points at 4 s, at most 10.
    assert (
        response_penalty(2000.0) == 0 and response_penalty(4000.0) == 5 and response_penalty(60_000.0) == 10
    )
    assert health_score(healthy, 4000.0, None) == 95
    # Error rate of the request log: round(20 × rate).
    assert health_score(healthy, 100.0, 0.25) == 95
    assert health_score(healthy, 100.0, 1.0) == 80 and verdict(healthy, 80) is H.HEALTHY
    assert verdict(healthy, 79) is H.DEGRADED and verdict(healthy, 49) is H.UNHEALTHY
    assert health_score(limited, 60_000.0, 1.0) == 40


def test_tls_verdict_and_windows() -> None:
    now = clock.utcnow()
    assert tls_verdict(True, now + timedelta(days=90), now).status is CheckStatus.PASS
    soon = tls_verdict(True, now + timedelta(days=5), now)
    assert soon.status is CheckStatus.WARN and "expires in 5.0 days" in soon.message
    expired = tls_verdict(False, now - timedelta(days=1), now, "certificate has expired")
    assert expired.status is CheckStatus.FAIL and "expired on" in expired.message
    invalid = tls_verdict(False, now + timedelta(days=90), now, "self-signed certificate")
    assert invalid.status is CheckStatus.FAIL and "self-signed certificate" in invalid.message
    assert availability_ratio(0, 0) is None and availability_ratio(4, 3) == 0.75
    assert interval_for({}, 300) == timedelta(seconds=300)
    assert interval_for({"healthCheckIntervalSeconds": 3600}, 300) == timedelta(hours=1)
    for bad in (5, "600", True, 10**9):
        assert interval_for({"healthCheckIntervalSeconds": bad}, 300) == timedelta(seconds=300)


# -- probes against real servers -------------------------------------------------------------------


async def test_healthy_connection_uses_the_verification_call_with_credentials(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, api: LocalApi
) -> None:
    created = await _connection(client, admin_headers, "local-verified")
    check = await _check(client, admin_headers, created["id"])
    assert check["status"] == "HEALTHY" and check["healthScore"] == 100, check
    assert check["id"].startswith("hc_") and check["trigger"] == "manual" and check["error"] is None
    checks = _by_name(check)
    assert [c["name"] for c in check["checks"]] == ["dns", "tcp", "tls", "http"]
    assert checks["dns"]["status"] == "PASS" and "127.0.0.1" in checks["dns"]["message"]
    assert checks["tcp"]["status"] == "PASS" and checks["tls"]["status"] == "SKIP"
    assert checks["http"]["status"] == "PASS" and "answered 200" in checks["http"]["message"]
    assert check["connectivity"]["dnsResolution"] and check["connectivity"]["tcpConnection"]
    assert check["connectivity"]["httpResponse"] and check["connectivity"]["httpStatus"] == 200
    assert check["connectivity"]["tlsHandshake"] is None and check["responseTime"] is not None
    # The verification call went to base URL + path with the connection's API key.
    assert api.seen == [{"path": "/api/health", "authorization": f"Bearer {API_KEY}"}]

    row = await _row(runtime, created["id"])
    assert row.health_status is H.HEALTHY and row.health_score == 100 and row.last_health_check_at
    assert row.next_health_check_at is not None
    assert row.next_health_check_at - row.last_health_check_at == timedelta(seconds=300)

    summary = (await client.get(f"/v1/connections/{created['id']}/health", headers=admin_headers)).json()
    assert summary["status"] == "HEALTHY" and summary["healthScore"] == 100
    assert summary["lastCheck"]["id"] == check["id"]
    assert summary["availability"] == {"last24Hours": 1.0, "last7Days": 1.0, "last30Days": 1.0}
    async with runtime.db.unit_of_work(write=False) as session:
        actions = (
            await session.scalars(sa.select(AuditEvent.action).where(AuditEvent.resource_id == created["id"]))
        ).all()
    assert "connection.health_checked" in actions and "connection.health_changed" in actions

    # The JSON answer must hold expect_json.
    api.body = {"ok": False}
    failed = await _check(client, admin_headers, created["id"])
    assert failed["status"] == "UNHEALTHY" and "expected True" in _by_name(failed)["http"]["message"]


async def test_a_connection_blocked_by_a_429_is_degraded_and_nothing_is_sent(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, api: LocalApi
) -> None:
    """While the provider's 429 blocks the connection the verification call is not sent (the block
    holds for every process) and the check is a WARN, like the 429 itself: the provider answers,
    the connection is only rate limited. Nothing waits for the block."""
    created = await _connection(client, admin_headers, "local-verified")
    for seconds in (5, 61):  # one the call would once have waited for, one it would not
        await runtime.outbound.limiter.block(created["id"], seconds)
        started = asyncio.get_running_loop().time()
        check = await _check(client, admin_headers, created["id"])
        assert asyncio.get_running_loop().time() - started < 3
        http = _by_name(check)["http"]
        assert http["status"] == "WARN" and "not sent (rate limited)" in http["message"], http
        assert "blocked by the provider" in http["message"]
        assert check["status"] == "DEGRADED" and check["responseTime"] is None
    assert api.seen == []


async def test_a_wait_for_a_rate_limit_slot_is_not_response_time(
    client: httpx.AsyncClient, admin_headers: dict[str, str], api: LocalApi
) -> None:
    created = await _connection(client, admin_headers, "local-limited", credentials={"apiKey": API_KEY})
    assert (await _check(client, admin_headers, created["id"]))["status"] == "HEALTHY"  # the one slot
    started = asyncio.get_running_loop().time()
    check = await _check(client, admin_headers, created["id"])
    assert asyncio.get_running_loop().time() - started >= 2  # it waited for the next slot
    http = _by_name(check)["http"]
    assert http["status"] == "PASS" and http["duration"] < 2000, http
    assert check["status"] == "HEALTHY" and check["responseTime"] < 2000
    assert len(api.seen) == 2


async def test_error_rate_of_the_request_log_lowers_the_score(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, api: LocalApi
) -> None:
    created = await _connection(client, admin_headers, "local-verified")
    calls = await runtime.connection_clients.open(
        system_actor(created["tenantId"]), created["id"], retry=RetryPolicy(max_attempts=1)
    )
    api.status = 500
    await calls.call("GET", "/customers")
    api.status = 200
    for _ in range(3):
        await calls.call("GET", "/customers")
    assert runtime.outbound.log is not None
    await runtime.outbound.log.flush()
    check = await _check(client, admin_headers, created["id"])
    assert _by_name(check)["http"]["status"] == "PASS"
    assert check["performance"]["requestCount"] == 4 and check["performance"]["errorRate"] == 0.25
    assert check["performance"]["throughput"] == pytest.approx(4 / 1440, abs=1e-4)
    assert check["healthScore"] == 95 and check["status"] == "HEALTHY"  # 100 − round(20 × 0.25)
    # The check's own call is logged (operation health.check) but left out of the figures.
    await runtime.outbound.log.flush()
    async with runtime.db.unit_of_work(write=False) as session:
        operations = (
            await session.scalars(
                sa.select(ExternalApiRequest.operation).where(
                    ExternalApiRequest.connection_id == created["id"]
                )
            )
        ).all()
    assert sorted(o or "" for o in operations) == ["", "", "", "", "health.check"]
    summary = (await client.get(f"/v1/connections/{created['id']}/health", headers=admin_headers)).json()
    assert summary["performance"]["requestCount"] == 4


async def test_refused_tcp_is_unhealthy_then_recovered_with_one_event_each(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, api: LocalApi
) -> None:
    await _subscribe(client, admin_headers, health.UNHEALTHY_EVENT, health.RECOVERED_EVENT)
    created = await _connection(client, admin_headers, "local-plain")
    first = await _check(client, admin_headers, created["id"])
    assert first["status"] == "HEALTHY" and _by_name(first)["http"]["message"].startswith(
        "GET of the base URL"
    )
    assert await _events(runtime, health.UNHEALTHY_EVENT) == []

    await api.stop()
    down = await _check(client, admin_headers, created["id"])
    checks = _by_name(down)
    assert down["status"] == "UNHEALTHY" and down["healthScore"] == 15
    assert checks["tcp"]["status"] == "FAIL" and "refused" in checks["tcp"]["message"]
    assert checks["http"]["status"] == "SKIP" and "tcp check failed" in checks["http"]["message"]
    assert down["error"].startswith("tcp:") and down["connectivity"]["tcpConnection"] is False
    [event] = await _events(runtime, health.UNHEALTHY_EVENT)
    assert event.payload["connectionId"] == created["id"] and event.payload["healthStatus"] == "UNHEALTHY"
    assert event.payload["previousHealthStatus"] == "HEALTHY" and event.payload["checkId"] == down["id"]

    # Still down, checked twice at once: no second event (compare-and-set on the stored status).
    checker = HealthChecker(runtime)
    actor = system_actor(created["tenantId"])
    await asyncio.gather(*(checker.run(actor, created["id"]) for _ in range(2)))
    assert len(await _events(runtime, health.UNHEALTHY_EVENT)) == 1

    await api.start()
    back = await _check(client, admin_headers, created["id"])
    assert back["status"] == "HEALTHY"
    [recovered] = await _events(runtime, health.RECOVERED_EVENT)
    assert (
        recovered.payload["previousHealthStatus"] == "UNHEALTHY"
        and recovered.payload["healthStatus"] == "HEALTHY"
    )
    summary = (await client.get(f"/v1/connections/{created['id']}/health", headers=admin_headers)).json()
    assert summary["availability"]["last24Hours"] == pytest.approx(2 / 5)


async def test_concurrent_first_failures_publish_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, api: LocalApi
) -> None:
    await _subscribe(client, admin_headers, health.UNHEALTHY_EVENT)
    created = await _connection(client, admin_headers, "local-plain")
    await api.stop()
    checker = HealthChecker(runtime)
    actor = system_actor(created["tenantId"])
    rows = await asyncio.gather(*(checker.run(actor, created["id"]) for _ in range(3)))
    assert {r.status for r in rows} == {H.UNHEALTHY}
    assert len(await _events(runtime, health.UNHEALTHY_EVENT)) == 1


async def test_http_500_is_unhealthy(
    client: httpx.AsyncClient, admin_headers: dict[str, str], api: LocalApi
) -> None:
    created = await _connection(client, admin_headers, "local-verified")
    api.status = 500
    check = await _check(client, admin_headers, created["id"])
    http = _by_name(check)["http"]
    assert check["status"] == "UNHEALTHY" and check["healthScore"] == 40
    assert (
        http["status"] == "FAIL" and "answered 500" in http["message"] and "expected 200" in http["message"]
    )
    assert check["connectivity"]["httpStatus"] == 500 and check["error"].startswith("http:")


async def test_rate_limited_answer_is_degraded_and_configured_path_is_used(
    client: httpx.AsyncClient, admin_headers: dict[str, str], api: LocalApi
) -> None:
    created = await _connection(client, admin_headers, "local-plain", metadata={"healthCheckPath": "/status"})
    api.status = 429
    check = await _check(client, admin_headers, created["id"])
    assert check["status"] == "DEGRADED" and _by_name(check)["http"]["status"] == "WARN"
    assert api.seen[-1]["path"] == "/status"
    api.status = 404  # a configured path must answer 2xx/3xx
    assert (await _check(client, admin_headers, created["id"]))["status"] == "UNHEALTHY"
    bad = await _connection(
        client, admin_headers, "local-plain", name="bad", metadata={"healthCheckPath": "x"}
    )
    failed = await _check(client, admin_headers, bad["id"])
    assert "metadata.healthCheckPath" in _by_name(failed)["http"]["message"]


async def test_self_signed_certificate_fails_tls_with_expiry_recorded(
    client: httpx.AsyncClient, admin_headers: dict[str, str], tmp_path: Path, tls_port: int
) -> None:
    context, expires = self_signed(tmp_path)
    server = LocalApi(tls_port, ssl_context=context)
    await server.start()
    try:
        created = await _connection(client, admin_headers, "local-tls")
        check = await _check(client, admin_headers, created["id"])
    finally:
        await server.stop()
    tls = _by_name(check)["tls"]
    assert check["status"] == "UNHEALTHY" and check["healthScore"] == 30
    assert tls["status"] == "FAIL" and "certificate is not valid" in tls["message"]
    assert "self-signed" in tls["message"] or "self signed" in tls["message"]
    assert dt.datetime.fromisoformat(check["tlsExpiresAt"]) == expires
    assert check["connectivity"]["tlsHandshake"] is False
    assert _by_name(check)["http"]["status"] == "SKIP" and server.seen == []


async def test_trusted_certificate_expiring_soon_is_degraded(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, tmp_path: Path, tls_port: int
) -> None:
    server_context, client_context, expires = ca_signed(tmp_path, days=5)
    server = LocalApi(tls_port, ssl_context=server_context)
    await server.start()
    # The deployment trusts the CA (the transport's own context): the handshake verifies, and the
    # HTTP check goes over https with the same trust.
    runtime.transport.ssl_context = client_context  # type: ignore[attr-defined]
    try:
        created = await _connection(client, admin_headers, "local-tls")
        check = await _check(client, admin_headers, created["id"])
    finally:
        await server.stop()
    checks = _by_name(check)
    assert checks["tls"]["status"] == "WARN" and "expires in" in checks["tls"]["message"], checks
    assert checks["http"]["status"] == "PASS" and server.seen[-1]["path"] == "/"
    assert check["status"] == "DEGRADED" and check["healthScore"] == 95  # half the tls weight
    assert check["connectivity"]["tlsHandshake"] is True and check["error"] is None
    assert dt.datetime.fromisoformat(check["tlsExpiresAt"]) == expires


async def test_refused_address_is_a_dns_failure_and_never_connected(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, api: LocalApi
) -> None:
    created = await _connection(client, admin_headers, "local-plain")
    checker = HealthChecker(runtime)
    checker.allowed_networks = []  # as in a deployment that does not allow loopback targets
    row = await checker.run(system_actor(created["tenantId"]), created["id"])
    dns = row.checks[0]
    assert row.status is H.UNHEALTHY and row.health_score == 0
    assert dns["status"] == "FAIL" and "refused by the outbound target guard (loopback)" in dns["message"]
    assert [c["status"] for c in row.checks[1:]] == ["SKIP", "SKIP", "SKIP"]
    assert api.seen == []


# -- history, availability, schedule, retention ----------------------------------------------------


async def _insert(runtime: Runtime, conn: dict[str, Any], status: H, age: timedelta) -> None:
    async with runtime.db.unit_of_work() as session:
        session.add(
            IntegrationHealthCheck(
                id=new_id("hc"),
                tenant_id=conn["tenantId"],
                connection_id=conn["id"],
                status=status,
                health_score=100 if status is H.HEALTHY else 15,
                response_time_ms=None,
                checks=[],
                connectivity={},
                performance={},
                tls_expires_at=None,
                trigger=HealthCheckTrigger.SCHEDULED,
                error=None,
                checked_at=clock.utcnow() - age,
            )
        )


async def test_availability_windows_and_history_pages(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    conn = await _connection(client, admin_headers, "local-plain")
    # 24 h: 1 healthy + 1 unhealthy; 7 d adds 2 healthy; 30 d adds 4 unhealthy; older ones are ignored.
    for status, hours in [(H.HEALTHY, 1), (H.UNHEALTHY, 2), (H.DEGRADED, 30), (H.HEALTHY, 100)]:
        await _insert(runtime, conn, status, timedelta(hours=hours))
    for days in (10, 11, 12, 13):
        await _insert(runtime, conn, H.UNHEALTHY, timedelta(days=days))
    await _insert(runtime, conn, H.HEALTHY, timedelta(days=31))
    summary = (await client.get(f"/v1/connections/{conn['id']}/health", headers=admin_headers)).json()
    assert summary["availability"] == {"last24Hours": 0.5, "last7Days": 0.75, "last30Days": 0.375}
    assert summary["status"] is None and summary["performance"]["requestCount"] == 0

    path = f"/v1/connections/{conn['id']}/health-checks"
    first = (await client.get(path, params={"limit": 4}, headers=admin_headers)).json()
    assert first["hasMore"] and len(first["data"]) == 4
    ids = [c["id"] for c in first["data"]]
    assert ids == sorted(ids, reverse=True)
    rest = (
        await client.get(path, params={"limit": 50, "after": first["nextCursor"]}, headers=admin_headers)
    ).json()
    assert not rest["hasMore"] and len(rest["data"]) == 5
    assert not set(ids) & {c["id"] for c in rest["data"]}
    one = await client.get(f"{path}/{ids[0]}", headers=admin_headers)
    assert one.status_code == 200 and one.json()["id"] == ids[0]
    assert_problem(await client.get(f"{path}/hc_01JZZZZZZZZZZZZZZZZZZZZZZZ", headers=admin_headers), 404)
    assert_problem(await client.get(path, params={"after": "nope"}, headers=admin_headers), 422)


async def test_scheduled_job_checks_due_connections(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, api: LocalApi
) -> None:
    assert BUILTIN_SCHEDULES["connections.health"] == (CONNECTIONS_HEALTH, "* * * * *")
    a = await _connection(client, admin_headers, "local-plain", name="a")
    b = await _connection(
        client, admin_headers, "local-plain", name="b", metadata={"healthCheckIntervalSeconds": 3600}
    )
    off = await _connection(client, admin_headers, "local-plain", name="off")
    await client.patch(f"/v1/connections/{off['id']}", json={"status": "DISABLED"}, headers=admin_headers)

    # A new connection is first checked one interval after it was created.
    assert await health.run_due(runtime) == {"due": 0, "checked": 0, "failed": 0}
    clock.shift(timedelta(minutes=5, seconds=1))
    handler = build_handlers(runtime)[CONNECTIONS_HEALTH]
    await handler(None)  # type: ignore[arg-type]  # the handler does not use its context
    assert (await _row(runtime, off["id"])).last_health_check_at is None
    row_a, row_b = await _row(runtime, a["id"]), await _row(runtime, b["id"])
    assert row_a.health_status is H.HEALTHY and row_b.health_status is H.HEALTHY
    assert row_b.next_health_check_at is not None and row_b.last_health_check_at is not None
    assert row_b.next_health_check_at - row_b.last_health_check_at == timedelta(hours=1)
    history = (await client.get(f"/v1/connections/{a['id']}/health-checks", headers=admin_headers)).json()
    assert [c["trigger"] for c in history["data"]] == ["scheduled"]

    assert await health.run_due(runtime) == {"due": 0, "checked": 0, "failed": 0}
    clock.shift(timedelta(minutes=6))
    assert await health.run_due(runtime) == {"due": 1, "checked": 1, "failed": 0}  # only a
    clock.shift(timedelta(hours=1))
    assert (await health.run_due(runtime))["checked"] == 2


async def _checked(runtime: Runtime, connection_id: str) -> int:
    async with runtime.db.unit_of_work(write=False) as session:
        found = await session.scalar(
            sa.select(sa.func.count())
            .select_from(IntegrationHealthCheck)
            .where(IntegrationHealthCheck.connection_id == connection_id)
        )
    return int(found or 0)


async def test_a_run_stopped_mid_way_loses_and_repeats_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, api: LocalApi
) -> None:
    """A worker killed mid-run holds only the connections it was checking, and only for the claim:
    they come due again when it ends (not one interval later); the others are checked by the next
    run; every connection is checked exactly once."""
    hourly = {"healthCheckIntervalSeconds": 3600}
    ids = [
        (await _connection(client, admin_headers, "local-plain", name=f"c{i}", metadata=hourly))["id"]
        for i in range(6)
    ]
    clock.shift(timedelta(minutes=5, seconds=1))
    api.hold = asyncio.Event()
    run = asyncio.create_task(health.run_due(runtime, concurrency=2))
    for _ in range(500):  # until both slots are inside their HTTP check
        if len(api.seen) >= 2:
            break
        await asyncio.sleep(0.01)
    assert len(api.seen) == 2
    run.cancel()  # the worker dies: what it claimed stays claimed
    with contextlib.suppress(asyncio.CancelledError):
        await run
    api.hold.set()
    rows = [await _row(runtime, cid) for cid in ids]
    held = [r for r in rows if r.next_health_check_at is not None]
    assert len(held) == 2 and all(r.last_health_check_at is None for r in held)
    claim_end = clock.utcnow() + timedelta(seconds=health.CLAIM_SECONDS)
    assert all(r.next_health_check_at is not None and r.next_health_check_at <= claim_end for r in held)

    api.hold = None
    assert await health.run_due(runtime) == {"due": 4, "checked": 4, "failed": 0}
    assert await health.run_due(runtime) == {"due": 0, "checked": 0, "failed": 0}
    clock.shift(timedelta(seconds=health.CLAIM_SECONDS + 1))
    assert await health.run_due(runtime) == {"due": 2, "checked": 2, "failed": 0}
    assert await health.run_due(runtime) == {"due": 0, "checked": 0, "failed": 0}
    assert [await _checked(runtime, cid) for cid in ids] == [1] * 6
    for cid in ids:
        row = await _row(runtime, cid)
        assert row.next_health_check_at is not None and row.last_health_check_at is not None
        assert row.next_health_check_at - row.last_health_check_at == timedelta(hours=1)


async def test_a_sigkilled_worker_holds_only_what_it_was_checking(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    settings: Settings,
    api: LocalApi,
) -> None:
    """A real ``interlink worker`` killed with SIGKILL in the middle of the ``connections.health``
    job: the connections it was checking come due again when their claim ends, the others at once;
    another worker then checks each connection exactly once."""
    hourly = {"healthCheckIntervalSeconds": 3600}
    ids = [
        (await _connection(client, admin_headers, "local-plain", name=f"k{i}", metadata=hourly))["id"]
        for i in range(8)
    ]
    async with runtime.db.unit_of_work() as session:
        await session.execute(
            sa.update(IntegrationConnection)
            .where(IntegrationConnection.id.in_(ids))
            .values(next_health_check_at=clock.utcnow() - timedelta(seconds=1))
        )
        await queue.enqueue(session, CONNECTIONS_HEALTH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    env.update(
        {
            "INTERLINK_DATABASE_URL": settings.effective_database_url,
            "INTERLINK_DATA_DIR": str(settings.data_dir),
            "INTERLINK_MASTER_KEYS": TEST_MASTER_KEYS,
            "INTERLINK_KEY_PEPPER": TEST_PEPPER,
            "INTERLINK_PROVIDERS_FILE": str(settings.providers_file),
            "INTERLINK_ALLOWED_TARGET_NETWORKS": '["127.0.0.0/8"]',
            "INTERLINK_WORKER_POLL_SECONDS": "0.2",
            "INTERLINK_LOG_LEVEL": "WARNING",
        }
    )
    api.hold = asyncio.Event()
    worker = subprocess.Popen(
        [INTERLINK, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3000):  # until its 4 slots are inside their HTTP checks
            if len(api.seen) >= health.CONCURRENCY or worker.poll() is not None:
                break
            await asyncio.sleep(0.01)
        assert len(api.seen) == health.CONCURRENCY, worker.stderr.read() if worker.poll() is not None else ""
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        api.hold.set()
    api.hold = None

    now = clock.utcnow()
    rows = [await _row(runtime, cid) for cid in ids]
    held = [r.id for r in rows if r.next_health_check_at is not None and r.next_health_check_at > now]
    assert len(held) == health.CONCURRENCY
    claim_end = now + timedelta(seconds=health.CLAIM_SECONDS)
    assert all(r.next_health_check_at is not None and r.next_health_check_at <= claim_end for r in rows)
    assert all(r.last_health_check_at is None for r in rows)

    assert await health.run_due(runtime) == {"due": 4, "checked": 4, "failed": 0}
    clock.shift(timedelta(seconds=health.CLAIM_SECONDS + 1))
    assert await health.run_due(runtime) == {"due": 4, "checked": 4, "failed": 0}
    assert await health.run_due(runtime) == {"due": 0, "checked": 0, "failed": 0}
    assert [await _checked(runtime, cid) for cid in ids] == [1] * 8


async def test_a_scheduled_check_is_cut_off_before_its_claim_ends(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    api: LocalApi,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "CLAIM_SECONDS", 20)
    monkeypatch.setattr(health, "CLAIM_MARGIN_SECONDS", 19)  # the check gets 1 s
    conn = await _connection(client, admin_headers, "local-plain")
    clock.shift(timedelta(minutes=5, seconds=1))
    api.hold = asyncio.Event()
    try:
        started = asyncio.get_running_loop().time()
        assert await health.run_due(runtime) == {"due": 1, "checked": 1, "failed": 0}
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        api.hold.set()
    history = (await client.get(f"/v1/connections/{conn['id']}/health-checks", headers=admin_headers)).json()
    [check] = history["data"]
    assert check["trigger"] == "scheduled" and check["status"] == "UNHEALTHY"
    http = _by_name(check)["http"]
    assert http["status"] == "FAIL" and "no result within 1 s" in http["message"]
    assert [c["status"] for c in check["checks"]][:2] == ["PASS", "PASS"]
    row = await _row(runtime, conn["id"])
    assert row.next_health_check_at is not None and row.last_health_check_at is not None
    assert row.next_health_check_at - row.last_health_check_at == timedelta(seconds=300)


async def test_retention_purges_old_checks(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    conn = await _connection(client, admin_headers, "local-plain")
    await _insert(runtime, conn, H.HEALTHY, timedelta(days=31))
    await _insert(runtime, conn, H.HEALTHY, timedelta(days=40))
    await _insert(runtime, conn, H.HEALTHY, timedelta(days=29))
    result = await retention.purge(
        runtime.db, RetentionPolicy.FOREVER, RetentionPolicy.FOREVER, health_check_days=30
    )
    assert result.health_checks == {conn["tenantId"]: 2}
    async with runtime.db.unit_of_work(write=False) as session:
        left = (await session.scalars(sa.select(IntegrationHealthCheck))).all()
        audits = (
            await session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "retention.purged"))
        ).all()
    assert len(left) == 1
    assert audits[-1].changes["healthChecks"]["new"] == 2
    assert runtime.settings.connection_health_retention_days == 30
    with pytest.raises(ValueError, match="greater than or equal to 30"):
        Settings(connection_health_retention_days=7)


class _CutShort:
    """A database whose ``fail_at``-th unit of work fails: a purge cut short."""

    def __init__(self, db: Any, fail_at: int) -> None:
        self.db, self.fail_at, self.units = db, fail_at, 0

    def unit_of_work(self, *args: Any, **kwargs: Any) -> Any:
        self.units += 1
        if self.units == self.fail_at:
            raise ConnectionError("the database went away")
        return self.db.unit_of_work(*args, **kwargs)


async def test_a_purge_cut_short_audits_what_it_deleted(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conn = await _connection(client, admin_headers, "local-plain")
    for days in (31, 32, 33, 34, 35):
        await _insert(runtime, conn, H.HEALTHY, timedelta(days=days))
    monkeypatch.setattr(health, "PURGE_BATCH", 2)
    forever = RetentionPolicy.FOREVER
    with pytest.raises(ConnectionError):  # the first batch is deleted, the second never starts
        await retention.purge(_CutShort(runtime.db, fail_at=2), forever, forever, health_check_days=30)

    async def state() -> tuple[int, list[int]]:
        async with runtime.db.unit_of_work(write=False) as session:
            left = await session.scalar(sa.select(sa.func.count()).select_from(IntegrationHealthCheck))
            audits = (
                await session.scalars(
                    sa.select(AuditEvent)
                    .where(AuditEvent.action == "retention.purged", AuditEvent.tenant_id == conn["tenantId"])
                    .order_by(AuditEvent.id)
                )
            ).all()
        return int(left or 0), [a.changes["healthChecks"]["new"] for a in audits]

    assert await state() == (3, [2])
    result = await retention.purge(runtime.db, forever, forever, health_check_days=30)
    assert result.health_checks == {conn["tenantId"]: 3}
    assert await state() == (0, [2, 3])


# -- REST errors -----------------------------------------------------------------------------------


async def test_unknown_and_foreign_connections_are_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str], admin: Any
) -> None:
    unknown = "conn_01JZZZZZZZZZZZZZZZZZZZZZZZ"
    for method, suffix in [("POST", "health-checks"), ("GET", "health-checks"), ("GET", "health")]:
        response = await client.request(method, f"/v1/connections/{unknown}/{suffix}", headers=admin_headers)
        assert_problem(response, 404)
    other = await make_tenant(client, admin_headers, "other")
    foreign = await _connection(client, auth(admin.key, other), "local-plain")
    for method, suffix in [("POST", "health-checks"), ("GET", "health-checks"), ("GET", "health")]:
        response = await client.request(
            method, f"/v1/connections/{foreign['id']}/{suffix}", headers=admin_headers
        )
        assert_problem(response, 404)
    # Ids of another form (a NUL character cannot even be compared on PostgreSQL) are plain 404s.
    own = await _connection(client, admin_headers, "local-plain")
    for bad in ("%00", "conn_%00", "nope"):
        for method, suffix in [("POST", "health-checks"), ("GET", "health-checks"), ("GET", "health")]:
            response = await client.request(method, f"/v1/connections/{bad}/{suffix}", headers=admin_headers)
            assert_problem(response, 404)
        bad_check = bad.replace("conn_", "hc_")
        response = await client.get(
            f"/v1/connections/{own['id']}/health-checks/{bad_check}", headers=admin_headers
        )
        assert_problem(response, 404)
    # A connection that cannot be called is not checked (no network traffic at all).
    await client.patch(
        f"/v1/connections/{foreign['id']}", json={"status": "DISABLED"}, headers=auth(admin.key, other)
    )
    refused = await client.post(
        f"/v1/connections/{foreign['id']}/health-checks", headers=auth(admin.key, other)
    )
    assert assert_problem(refused, 409)["type"].endswith("connection-unavailable")
    response = await client.get(f"/v1/connections/{foreign['id']}/health", headers=auth(admin.key, other))
    assert response.status_code == 200 and json.loads(response.text)["status"] is None


# -- SDK and CLI against a live server -------------------------------------------------------------


@pytest.fixture
def live_server_settings_overrides(tmp_path: Path, api_port: int, tls_port: int) -> dict[str, object]:
    return {
        "providers_file": _provider_file(tmp_path, api_port, tls_port),
        "allowed_target_networks": ["127.0.0.0/8"],
    }


def _cli(server: LiveServer, *args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("INTERLINK_")}
    environment.update(
        {"INTERLINK_API_URL": server.url, "INTERLINK_API_KEY": server.admin_key, "COLUMNS": "250"}
    )
    result = run_interlink(args, env=environment, real=real)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_sdk_and_cli(live_server: LiveServer) -> None:
    # Nothing listens on the API port here: the check finds TCP refused (a result, not an error).
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        conn = sdk.connections.create(provider_key="local-plain", name="plain")
        check = sdk.connection_health.run(conn.id)
        assert check.status is H.UNHEALTHY and check.health_score == 15
        assert [c.status for c in check.checks] == [
            CheckStatus.PASS,
            CheckStatus.FAIL,
            CheckStatus.SKIP,
            CheckStatus.SKIP,
        ]
        assert sdk.connection_health.get(conn.id, check.id).id == check.id
        assert [c.id for c in sdk.connection_health.iter_all(conn.id, page_size=1)] == [check.id]
        summary = sdk.connection_health.summary(conn.id)
        assert summary.status is H.UNHEALTHY and summary.availability.last_24_hours == 0.0
        with pytest.raises(NotFoundError):
            sdk.connection_health.run("conn_01JZZZZZZZZZZZZZZZZZZZZZZZ")

    ran = _cli(live_server, "connections", "health-check", conn.id)
    assert ran.returncode == 0, ran.stderr
    assert "UNHEALTHY (score 15)" in ran.stdout and "tcp" in ran.stdout and "refused" in ran.stdout
    shown = _cli(live_server, "connections", "health", conn.id, "--json", real=True)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["availability"]["last24Hours"] == 0.0
    text = _cli(live_server, "connections", "health", conn.id)
    assert "availability: 24h 0.0%" in text.stdout
    missing = _cli(live_server, "connections", "health", "conn_01JZZZZZZZZZZZZZZZZZZZZZZZ")
    assert missing.returncode == 1 and "not found" in missing.stderr

    # The history, and one check of it.
    history = _cli(live_server, "connections", "health-checks", conn.id, "--json", real=True)
    assert history.returncode == 0, history.stderr
    listed = json.loads(history.stdout)["data"]
    assert len(listed) == 2 and listed[1]["id"] == check.id and listed[0]["trigger"] == "manual"
    first = _cli(live_server, "connections", "health-checks", conn.id, "--limit", "1")
    assert first.returncode == 0 and listed[0]["id"] in first.stdout and "UNHEALTHY" in first.stdout
    assert check.id not in first.stdout and f"--after {listed[0]['id']}" in first.stderr
    every = _cli(live_server, "connections", "health-checks", conn.id, "--limit", "1", "--all", "--json")
    assert [c["id"] for c in json.loads(every.stdout)["data"]] == [c["id"] for c in listed]
    one = _cli(live_server, "connections", "health-check-show", conn.id, check.id)
    assert one.returncode == 0 and "UNHEALTHY (score 15)" in one.stdout and "refused" in one.stdout
    unknown = _cli(live_server, "connections", "health-check-show", conn.id, "hc_01JZZZZZZZZZZZZZZZZZZZZZZZ")
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    foreign = _cli(live_server, "connections", "health-checks", "conn_01JZZZZZZZZZZZZZZZZZZZZZZZ")
    assert foreign.returncode == 1 and "not found" in foreign.stderr


async def test_async_sdk(live_server: LiveServer) -> None:
    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as sdk:
        conn = await sdk.connections.create(provider_key="local-plain", name="plain")
        check = await sdk.connection_health.run(conn.id)
        page = await sdk.connection_health.list(conn.id)
        assert [c.id for c in page.data] == [check.id]
        assert (await sdk.connection_health.summary(conn.id)).last_check is not None
