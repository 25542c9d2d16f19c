"""Structured logs, Prometheus metrics and the health endpoints."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client.parser import text_string_to_metric_families

from interlink.core.logging import configure_logging
from interlink.core.settings import Settings
from interlink.http.app import create_app
from interlink.runtime import Runtime


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """JSON logs of the service captured in memory; the previous logging setup is restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    structlog.reset_defaults()


@pytest.fixture
async def logged_client(settings: Settings, runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that writes access logs."""
    app = create_app(settings, runtime, access_log=True)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as client:
        yield client


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is JSON


async def test_info_logs_carry_no_sql(
    log_stream: io.StringIO, logged_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """At the default level the database drivers stay quiet: SQLAlchemy echoes every statement at
    INFO and the drivers log operations and parameters at DEBUG, so their loggers start at WARNING."""
    response = await logged_client.post(
        "/v1/keys", json={"name": "quiet", "scopes": ["keys:read"]}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    loggers = {line.get("logger") for line in log_lines(log_stream)}
    assert "interlink.http" in loggers  # the access log itself is there
    noisy = {name for name in loggers if name and name.startswith(("sqlalchemy", "aiosqlite", "psycopg"))}
    assert not noisy, noisy


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out.append((dict(sample.labels), sample.value))
    return out


async def test_access_log_lines_are_json_with_the_correlation_id(
    log_stream: io.StringIO, logged_client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    cid = "obs-test-0001"
    response = await logged_client.get("/v1/keys", headers={**admin_headers, "X-Correlation-Id": cid})
    assert response.status_code == 200
    failed = await logged_client.get(
        "/v1/keys/key_nope", headers={**admin_headers, "X-Correlation-Id": "obs-2"}
    )
    assert failed.status_code == 404

    lines = log_lines(log_stream)
    access = [line for line in lines if line.get("event") == "http_request"]
    mine = [line for line in access if line.get("correlation_id") == cid]
    assert len(mine) == 1, access
    entry = mine[0]
    assert entry["method"] == "GET"
    assert entry["path"] == "/v1/keys"
    assert entry["route"] == "/v1/keys"
    assert entry["status"] == 200
    assert entry["level"] == "info"
    assert isinstance(entry["duration_ms"], float | int)
    assert "timestamp" in entry
    [not_found] = [line for line in access if line.get("correlation_id") == "obs-2"]
    assert not_found["status"] == 404
    assert not_found["route"] == "/v1/keys/{key_id}"
    # The key itself never reaches the log.
    assert admin_headers["Authorization"][7:] not in log_stream.getvalue()


async def test_a_generated_correlation_id_is_logged_and_returned(
    log_stream: io.StringIO, logged_client: httpx.AsyncClient
) -> None:
    response = await logged_client.get("/healthz")
    cid = response.headers["x-correlation-id"]
    assert any(
        line.get("event") == "http_request" and line.get("correlation_id") == cid
        for line in log_lines(log_stream)
    )


async def test_errors_are_logged_with_the_correlation_id_and_without_secrets(
    log_stream: io.StringIO, logged_client: httpx.AsyncClient
) -> None:
    response = await logged_client.get(
        "/v1/keys",
        headers={"Authorization": "Bearer il_live_notarealkeybutlookslikeone", "X-Correlation-Id": "obs-3"},
    )
    assert response.status_code == 401
    lines = [line for line in log_lines(log_stream) if line.get("correlation_id") == "obs-3"]
    assert any(line.get("event") == "http_request" and line["status"] == 401 for line in lines)
    assert "notarealkeybutlookslikeone" not in log_stream.getvalue()


async def test_metrics_count_requests_by_route_template(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    def count(text: str, route: str, status: str) -> float:
        return sum(
            value
            for labels, value in samples(text, "interlink_http_requests_total")
            if labels == {"method": "GET", "route": route, "status": status}
        )

    before = (await client.get("/metrics")).text
    for key_id in ("key_a", "key_b", "key_c"):
        response = await client.get(f"/v1/keys/{key_id}", headers=admin_headers)
        assert response.status_code == 404
    await client.get("/no/such/route")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert count(after, "/v1/keys/{key_id}", "404") - count(before, "/v1/keys/{key_id}", "404") == 3
    # Raw paths never become labels (bounded cardinality); unmatched requests share one label.
    routes = {labels["route"] for labels, _ in samples(after, "interlink_http_requests_total")}
    assert not {"/v1/keys/key_a", "/no/such/route"} & routes
    assert count(after, "unmatched", "404") - count(before, "unmatched", "404") >= 1
    assert samples(after, "interlink_http_request_duration_seconds_count")


async def test_metric_labels_stay_bounded_for_invented_methods(client: httpx.AsyncClient) -> None:
    for method in ("FOO", "BAR1", "BAZ2"):
        response = await client.request(method, "/healthz")
        assert response.status_code == 405
    text = (await client.get("/metrics")).text
    methods = {labels["method"] for labels, _ in samples(text, "interlink_http_requests_total")}
    assert "OTHER" in methods
    assert not {"FOO", "BAR1", "BAZ2"} & methods


async def test_healthz_and_readyz(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}
    assert ready.headers["x-correlation-id"]
