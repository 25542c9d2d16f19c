"""``/v1/api-requests`` (the outbound request log and ApiMetrics) through REST, the Python SDK
(blocking and asyncio) and the CLI, on SQLite and PostgreSQL.

The rows are made by real calls of the outbound client to a real aiohttp receiver on 127.0.0.1,
or written through the request log writer when exact durations are needed (metrics).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import subprocess
from typing import Any

import httpx
import pytest

from interlink.bootstrap import BootstrapResult
from interlink.client import AsyncInterlinkClient, InterlinkClient, NotFoundError, ValidationError
from interlink.core import clock
from interlink.core.db import Database
from interlink.core.ids import min_id_at
from interlink.outbound.client import OutboundService
from interlink.outbound.config import ApiClientConfig, RetryPolicy
from interlink.outbound.log import LogEntry, RequestLogWriter
from interlink.outbound.metrics import api_metrics
from interlink.outbound.response import ApiTiming, OutboundError
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem, make_key, make_tenant
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer, auth
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)

LOCAL = [ipaddress.ip_network("127.0.0.1/32")]
NO_RETRY = RetryPolicy(max_attempts=1)


async def make_calls(db: Database, receiver: Receiver, tenant_id: str) -> dict[str, str]:
    """Three calls of connection ``conn_a`` (provider acme: 200, 404, 200) and one of ``conn_b``
    (provider globex: a refused connection). Returns request ids by name."""
    receiver.script("/ok", Answer(200, {"Content-Type": "application/json"}, '{"ok": true}'))
    receiver.script("/missing", Answer(404))
    service = OutboundService(db=db, allowed_networks=LOCAL)
    ids: dict[str, str] = {}
    try:
        acme = service.client(
            ApiClientConfig(
                tenant_id=tenant_id,
                base_url=receiver.url,
                connection_id="conn_a",
                provider_key="acme",
                retry=NO_RETRY,
            )
        )
        ids["first"] = (await acme.call("GET", "/ok", query={"token": "T0P-SECRET"})).request_id or ""
        ids["missing"] = (await acme.call("GET", "/missing")).request_id or ""
        ids["last"] = (await acme.call("POST", "/ok", json={"password": "PW-SECRET"})).request_id or ""
        globex = service.client(
            ApiClientConfig(
                tenant_id=tenant_id,
                base_url="http://127.0.0.1:1",
                connection_id="conn_b",
                provider_key="globex",
                retry=NO_RETRY,
            )
        )
        with pytest.raises(OutboundError) as caught:
            await globex.call("GET", "/x")
        ids["refused"] = caught.value.request_id or ""
    finally:
        await service.close()
    return ids


# -- REST ------------------------------------------------------------------------------------------


async def test_list_filters_and_paginates(
    runtime: Runtime, client: httpx.AsyncClient, admin: BootstrapResult, receiver: Receiver
) -> None:
    ids = await make_calls(runtime.db, receiver, admin.tenant_id)
    headers = auth(admin.key)

    everything = await client.get("/v1/api-requests", headers=headers)
    assert everything.status_code == 200, everything.text
    data = everything.json()["data"]
    assert [r["id"] for r in data] == [ids["refused"], ids["last"], ids["missing"], ids["first"]]
    first = data[-1]
    assert first["url"].endswith("/ok?token=[redacted]") and "T0P-SECRET" not in everything.text
    assert "PW-SECRET" not in everything.text
    assert first["timing"]["connectMs"] > 0 and first["timing"]["reused"] is False
    assert data[-2]["timing"]["reused"] is True
    assert first["providerKey"] == "acme" and first["connectionId"] == "conn_a" and first["status"] == 200

    async def ids_for(**params: Any) -> list[str]:
        response = await client.get("/v1/api-requests", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["data"]]

    assert await ids_for(connectionId="conn_b") == [ids["refused"]]
    assert await ids_for(providerKey="acme", status=404) == [ids["missing"]]
    assert await ids_for(errorClass="connect") == [ids["refused"]]
    assert await ids_for(errorClass="none") == [ids["last"], ids["first"]]
    assert await ids_for(since=(clock.utcnow() + dt.timedelta(hours=1)).isoformat()) == []
    assert len(await ids_for(until=(clock.utcnow() + dt.timedelta(hours=1)).isoformat())) == 4

    page = (await client.get("/v1/api-requests", params={"limit": 3}, headers=headers)).json()
    assert page["hasMore"] is True and len(page["data"]) == 3
    rest = await ids_for(limit=3, after=page["nextCursor"])
    assert rest == [ids["first"]]

    one = await client.get(f"/v1/api-requests/{ids['last']}", headers=headers)
    assert one.status_code == 200 and one.json()["requestBody"] == '{"password":"[redacted]"}'
    assert_problem(await client.get("/v1/api-requests/apr_00000000000000000000000000", headers=headers), 404)


async def test_bad_filters_are_422_naming_the_field(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    headers = auth(admin.key)
    for params, field in [
        ({"errorClass": "bogus"}, "errorClass"),
        ({"status": 42}, "status"),
        ({"status": 1000}, "status"),
        ({"limit": 0}, "limit"),
        ({"after": "not-an-id"}, "after"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ({"connectionId": "conn\x00"}, "connectionId"),
        ({"providerKey": "a\x00b"}, "providerKey"),
    ]:
        body = assert_problem(await client.get("/v1/api-requests", params=params, headers=headers), 422)
        assert field in json.dumps(body["errors"]), (params, body)
    window = await client.get(
        "/v1/api-requests/metrics", params={"since": "2099-01-01T00:00:00Z"}, headers=headers
    )
    assert "since" in json.dumps(assert_problem(window, 422)["errors"])
    nul = await client.get("/v1/api-requests/metrics", params={"connectionId": "c\x00"}, headers=headers)
    assert "connectionId" in json.dumps(assert_problem(nul, 422)["errors"])
    assert_problem(await client.get("/v1/api-requests/not-an-id", headers=headers), 404)


async def test_windows_at_the_ends_of_the_calendar_are_answered(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    """A bound within the id clock's slack of year 1 or year 9999 is a valid, empty window."""
    headers = auth(admin.key)
    for params in (
        {"since": "0001-01-01T00:00:00Z"},
        {"until": "9999-12-31T23:59:59Z"},
        {"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59Z"},
    ):
        listed = await client.get("/v1/api-requests", params=params, headers=headers)
        assert listed.status_code == 200, (params, listed.text)
    for params in (
        {"until": "0001-01-01T12:00:00Z"},
        {"since": "0001-01-01T00:00:00Z", "until": "0001-01-01T00:00:01Z"},
    ):
        figures = await client.get("/v1/api-requests/metrics", params=params, headers=headers)
        assert figures.status_code == 200, (params, figures.text)
        assert figures.json()["count"] == 0


async def test_scope_and_tenant_isolation(
    runtime: Runtime, client: httpx.AsyncClient, admin: BootstrapResult, receiver: Receiver
) -> None:
    admin_headers = auth(admin.key)
    ids = await make_calls(runtime.db, receiver, admin.tenant_id)
    other = await make_tenant(client, admin_headers, "Other Co")
    other_key = await make_key(client, auth(admin.key, other), scopes=["connections:read"])
    response = await client.get("/v1/api-requests", headers=auth(other_key["key"]))
    assert response.status_code == 200 and response.json()["data"] == []
    assert_problem(await client.get(f"/v1/api-requests/{ids['first']}", headers=auth(other_key["key"])), 404)
    metrics = await client.get("/v1/api-requests/metrics", headers=auth(other_key["key"]))
    assert metrics.status_code == 200 and metrics.json()["count"] == 0
    reader = await make_key(client, admin_headers, scopes=["keys:read"])
    assert_problem(await client.get("/v1/api-requests", headers=auth(reader["key"])), 403)
    assert_problem(await client.get("/v1/api-requests/metrics", headers=auth(reader["key"])), 403)
    own = await make_key(client, admin_headers, scopes=["connections:read"])
    listed = await client.get("/v1/api-requests", headers=auth(own["key"]))
    assert len(listed.json()["data"]) == 4


# -- ApiMetrics ------------------------------------------------------------------------------------


def entry(i: int, tenant_id: str, duration_ms: float, **fields: Any) -> LogEntry:
    now = clock.utcnow() - dt.timedelta(minutes=30) + dt.timedelta(milliseconds=i)
    values: dict[str, Any] = {
        "id": min_id_at("apr", now),
        "tenant_id": tenant_id,
        "connection_id": "conn_m",
        "provider_key": "acme",
        "operation": None,
        "method": "GET",
        "url": "https://api.acme.test/x",
        "status": 200,
        "error_class": None,
        "error_message": None,
        "attempts": 1,
        "timing": ApiTiming(total_ms=duration_ms),
        "duration_ms": duration_ms,
        "request_headers": {},
        "response_headers": {},
        "request_body": None,
        "response_body": None,
        "response_bytes": 0,
        "correlation_id": None,
        "created_at": now,
    }
    values.update(fields)
    return LogEntry(**values)


async def test_metrics_percentiles_success_rate_and_errors(
    runtime: Runtime, client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    writer = RequestLogWriter(runtime.db)
    tenant = admin.tenant_id
    for i, duration in enumerate([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0]):
        writer.record(entry(i, tenant, duration))
    writer.record(entry(8, tenant, 90.0, status=503, error_class="http_5xx", attempts=3))
    writer.record(entry(9, tenant, 100.0, status=None, error_class="timeout", attempts=2))
    writer.record(entry(10, tenant, 5.0, connection_id="conn_other", provider_key="globex"))
    await writer.close()

    async with runtime.db.unit_of_work(write=False) as session:
        figures = await api_metrics(session, tenant, connection_id="conn_m")
    assert figures.count == 10 and figures.succeeded == 8 and figures.failed == 2
    assert figures.success_rate == pytest.approx(0.8)
    assert figures.attempts == 13 and figures.retries == 3
    assert figures.p50_ms == pytest.approx(55.0)
    assert figures.p95_ms == pytest.approx(95.5)
    assert figures.p99_ms == pytest.approx(99.1)
    assert figures.errors_by_class == {"http_5xx": 1, "timeout": 1}
    assert figures.throughput_per_minute == pytest.approx(10 / (24 * 60), rel=1e-3)

    by_provider = await client.get(
        "/v1/api-requests/metrics", params={"providerKey": "globex"}, headers=auth(admin.key)
    )
    assert by_provider.status_code == 200, by_provider.text
    body = by_provider.json()
    assert body["count"] == 1 and body["p50Ms"] == 5.0 and body["successRate"] == 1.0
    whole = (await client.get("/v1/api-requests/metrics", headers=auth(admin.key))).json()
    assert whole["count"] == 11 and whole["errorsByClass"] == {"http_5xx": 1, "timeout": 1}
    empty = await client.get(
        "/v1/api-requests/metrics",
        params={"since": (clock.utcnow() - dt.timedelta(minutes=10)).isoformat()},
        headers=auth(admin.key),
    )
    assert empty.json()["count"] == 0 and empty.json()["p50Ms"] is None


async def test_a_status_http_does_not_define_can_be_filtered(
    runtime: Runtime, client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    """A provider may answer 6xx-9xx; the call is logged with that status and found by it."""
    writer = RequestLogWriter(runtime.db)
    writer.record(entry(0, admin.tenant_id, 5.0, status=799, error_class="http_5xx"))
    await writer.close()
    found = await client.get("/v1/api-requests", params={"status": 799}, headers=auth(admin.key))
    assert found.status_code == 200, found.text
    assert [r["status"] for r in found.json()["data"]] == [799]


# -- SDK and CLI -----------------------------------------------------------------------------------


async def test_sdk_blocking_and_async(live_server: LiveServer, receiver: Receiver) -> None:
    db = Database(live_server.settings.effective_database_url)
    try:
        ids = await make_calls(db, receiver, live_server.tenant_id)
    finally:
        await db.dispose()

    def blocking() -> None:
        with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
            page = sdk.api_requests.list(limit=2)
            assert [r.id for r in page] == [ids["refused"], ids["last"]] and page.has_more
            assert [r.id for r in sdk.api_requests.iter_all(page_size=1)] == [
                ids["refused"],
                ids["last"],
                ids["missing"],
                ids["first"],
            ]
            missing = sdk.api_requests.list(provider_key="acme", status=404)
            assert [r.id for r in missing] == [ids["missing"]]
            found = sdk.api_requests.get(ids["refused"])
            assert found.error_class == "connect" and found.status is None and found.attempts == 1
            metrics = sdk.api_requests.metrics(connection_id="conn_a")
            assert metrics.count == 3 and metrics.errors_by_class == {"http_4xx": 1}
            with pytest.raises(NotFoundError):
                sdk.api_requests.get("apr_00000000000000000000000000")
            with pytest.raises(ValidationError):
                sdk.api_requests.list(error_class="nope")

    await asyncio.to_thread(blocking)
    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as sdk:
        only_b = await sdk.api_requests.list(connection_id="conn_b")
        assert [r.id for r in only_b] == [ids["refused"]]
        collected = [r.id async for r in sdk.api_requests.iter_all(error_class="none", page_size=1)]
        assert collected == [ids["last"], ids["first"]]
        one = await sdk.api_requests.get(ids["first"])
        assert one.url.endswith("token=[redacted]") and one.timing.connect_ms
        figures = await sdk.api_requests.metrics(provider_key="globex")
        assert figures.count == 1 and figures.errors_by_class == {"connect": 1}


def run(server: LiveServer, *args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INTERLINK_") or k.startswith("INTERLINK_TEST")
    }
    environment.update(
        {"COLUMNS": "250", "INTERLINK_API_URL": server.url, "INTERLINK_API_KEY": server.admin_key}
    )
    result = run_interlink(args, env=environment, real=real)
    assert "Traceback" not in result.stderr, result.stderr
    return result


async def test_cli(live_server: LiveServer, receiver: Receiver) -> None:
    db = Database(live_server.settings.effective_database_url)
    try:
        ids = await make_calls(db, receiver, live_server.tenant_id)
    finally:
        await db.dispose()

    def cli(*args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
        return run(live_server, "api-requests", *args, real=real)

    table = await asyncio.to_thread(cli, "list")
    assert table.returncode == 0, table.stderr
    assert ids["first"] in table.stdout and "T0P-SECRET" not in table.stdout and "[redacted]" in table.stdout
    listed = await asyncio.to_thread(
        cli, "list", "--provider", "acme", "--status", "404", "--json", real=True
    )
    assert [r["id"] for r in json.loads(listed.stdout)["data"]] == [ids["missing"]]
    every = await asyncio.to_thread(cli, "list", "--all", "--limit", "1", "--error-class", "none", "--json")
    assert [r["id"] for r in json.loads(every.stdout)["data"]] == [ids["last"], ids["first"]]
    shown = await asyncio.to_thread(cli, "show", ids["refused"], "--json")
    assert json.loads(shown.stdout)["errorClass"] == "connect"
    metrics = await asyncio.to_thread(cli, "metrics", "--connection", "conn_a", "--json")
    assert json.loads(metrics.stdout)["count"] == 3
    pretty = await asyncio.to_thread(cli, "metrics", "--provider", "globex")
    assert pretty.returncode == 0 and "successRate" in pretty.stdout
    bad = await asyncio.to_thread(cli, "list", "--error-class", "nope")
    assert bad.returncode == 1 and "errorClass" in (bad.stdout + bad.stderr)
    missing = await asyncio.to_thread(cli, "show", "apr_00000000000000000000000000")
    assert missing.returncode == 1
