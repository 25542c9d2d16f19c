"""Delivery metrics (WebhookDeliveryMetrics) on SQLite and PostgreSQL: real deliveries to a real
receiver through the DeliveryWorker, then every figure checked against what the test computes from
the deliveries and attempts tables itself; the REST routes, the SDK and the CLI; the Prometheus
counters and queue gauges.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from interlink.bootstrap import BootstrapResult
from interlink.client import AsyncInterlinkClient, InterlinkClient, NotFoundError, ValidationError
from interlink.core import clock
from interlink.core.actor import Actor, system_actor
from interlink.core.db import Database
from interlink.core.enums import DeliveryStatus
from interlink.core.errors import ValidationFailed
from interlink.core.ids import min_id_at
from interlink.core.settings import Settings
from interlink.http.app import create_app
from interlink.runtime import Runtime
from interlink.webhooks import metrics
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker
from interlink.webhooks.endpoints import Endpoints, EndpointSpec, active_secrets
from interlink.webhooks.ingest import EventSpec, ingest
from interlink.webhooks.metrics_schemas import DeliveryStats, WebhookDeliveryMetrics
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.api_helpers import assert_problem, make_key, make_tenant
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer, auth, make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)

LOCAL = ["127.0.0.0/8"]
EVENTS = 4


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=LOCAL)


@pytest.fixture
def live_server_settings_overrides() -> dict[str, object]:
    return {"allowed_target_networks": LOCAL}


@pytest.fixture
def actor(admin: BootstrapResult) -> Actor:
    return system_actor(admin.tenant_id)


@pytest.fixture
async def worker(runtime: Runtime) -> AsyncIterator[DeliveryWorker]:
    config = DeliveryConfig(concurrency=32, batch_size=32, lease_seconds=30, poll_interval=0.05)
    yield DeliveryWorker(runtime.db, runtime.keyring, runtime.transport, config)


async def add_endpoint(runtime: Runtime, actor: Actor, url: str, **fields: Any) -> str:
    service = Endpoints(runtime.keyring, runtime.allowed_target_networks)
    async with runtime.db.unit_of_work() as session:
        row = await service.create(session, actor, EndpointSpec(url=url, **fields))
    return row.id


@dataclass
class World:
    """Five endpoints of one tenant after :data:`EVENTS` events were delivered to each of them."""

    ok: str  # 200 (the first answer slow)
    flaky: str  # 500 twice, then 200
    bad: str  # 400 always, one retry: FAILED
    slow: str  # never answers: timeouts, then a retry an hour away (RETRYING)
    off: str  # disabled after the events were accepted: its deliveries wait (PENDING)

    @property
    def all(self) -> list[str]:
        return [self.ok, self.flaky, self.bad, self.slow, self.off]


async def deliver_mixed(runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker) -> World:
    world = World(
        ok=await add_endpoint(runtime, actor, receiver.script("/ok", Answer(200, delay=0.3), Answer(200))),
        flaky=await add_endpoint(
            runtime,
            actor,
            receiver.script("/flaky", Answer(500), Answer(500), Answer(200)),
            retry_schedule=[1],
        ),
        bad=await add_endpoint(runtime, actor, receiver.script("/bad", Answer(400)), retry_schedule=[1]),
        slow=await add_endpoint(
            runtime,
            actor,
            receiver.script("/slow", Answer(hang=True)),
            timeout_seconds=1,
            retry_schedule=[3600],
        ),
        off=await add_endpoint(runtime, actor, receiver.script("/off")),
    )
    async with runtime.db.unit_of_work(write=False) as session:
        receiver.secrets["/ok"] = await active_secrets(session, runtime.keyring, world.ok)
    for n in range(EVENTS):
        async with runtime.db.unit_of_work() as session:
            await ingest(session, actor, EventSpec(type="invoice.paid", payload={"n": n}))
    async with runtime.db.unit_of_work() as session:
        await Endpoints(runtime.keyring, runtime.allowed_target_networks).disable(
            session, actor, world.off, "maintenance"
        )
    await worker.drain()
    clock.shift(timedelta(seconds=2))  # the one retry of /flaky and /bad is due
    await worker.drain()
    return world


# -- what the tables say -------------------------------------------------------------------------


async def table_rows(runtime: Runtime) -> tuple[list[WebhookDelivery], list[WebhookAttempt]]:
    async with runtime.db.unit_of_work(write=False) as session:
        deliveries = list((await session.scalars(sa.select(WebhookDelivery))).all())
        attempts = list((await session.scalars(sa.select(WebhookAttempt))).all())
    return deliveries, attempts


def percentiles(durations: list[float]) -> list[float | None]:
    """p50/p95/p99 with linear interpolation between closest ranks (``percentile_cont``)."""
    if not durations:
        return [None, None, None]
    if len(durations) == 1:
        return [durations[0]] * 3
    cuts = statistics.quantiles(durations, n=100, method="inclusive")
    return [cuts[49], cuts[94], cuts[98]]


def expected(
    deliveries: list[WebhookDelivery], attempts: list[WebhookAttempt], now: datetime, minutes: float
) -> dict[str, Any]:
    """The figures of these rows, computed here from the rows themselves."""
    counts = Counter(d.status.value for d in deliveries)
    delivered, failed = counts["DELIVERED"], counts["FAILED"]
    per_delivery = Counter(a.delivery_id for a in attempts)
    tried = [d for d in deliveries if per_delivery[d.id]]
    waiting = [d for d in deliveries if d.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)]
    durations = sorted(a.duration_ms for a in attempts if a.duration_ms is not None)
    p50, p95, p99 = percentiles(durations)
    return {
        "deliveries": {
            "total": len(deliveries),
            **{s.value.lower(): counts[s.value] for s in DeliveryStatus},
        },
        "successRate": delivered / (delivered + failed) if delivered + failed else None,
        "attemptsPerDelivery": sum(per_delivery[d.id] for d in tried) / len(tried) if tried else None,
        "attempts": len(attempts),
        "latencySamples": len(durations),
        "p50Ms": p50,
        "p95Ms": p95,
        "p99Ms": p99,
        "throughputPerMinute": len(attempts) / minutes,
        "errorsByClass": dict(sorted(Counter(a.error_class for a in attempts if a.error_class).items())),
        "queueDepth": len(waiting),
        "oldestPendingAgeSeconds": round((now - min(d.created_at for d in waiting)).total_seconds(), 3)
        if waiting
        else None,
    }


def assert_figures(got: DeliveryStats, want: dict[str, Any]) -> None:
    body = got.model_dump(mode="json", by_alias=True)
    for name, value in want.items():
        if isinstance(value, float):
            assert body[name] == pytest.approx(value, rel=1e-9, abs=1e-6), name
        else:
            assert body[name] == value, name


# -- the service ---------------------------------------------------------------------------------


async def test_metrics_match_the_deliveries_and_attempts(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    world = await deliver_mixed(runtime, actor, receiver, worker)
    deliveries, attempts = await table_rows(runtime)
    by_endpoint = {e: [d for d in deliveries if d.endpoint_id == e] for e in world.all}
    attempts_of = {e: [a for a in attempts if a.endpoint_id == e] for e in world.all}

    # What the scripts make happen (so the expectations below are not vacuous).
    states = {e: Counter(d.status for d in rows) for e, rows in by_endpoint.items()}
    assert states[world.ok] == {DeliveryStatus.DELIVERED: EVENTS}
    assert states[world.flaky] == {DeliveryStatus.DELIVERED: EVENTS}
    assert states[world.bad] == {DeliveryStatus.FAILED: EVENTS}
    assert states[world.slow] == {DeliveryStatus.RETRYING: EVENTS}
    assert states[world.off] == {DeliveryStatus.PENDING: EVENTS}
    assert len(attempts_of[world.flaky]) == EVENTS + 2 and len(attempts_of[world.bad]) == 2 * EVENTS

    async with runtime.db.unit_of_work(write=False) as session:
        tenant = await metrics.tenant_metrics(session, actor.tenant_id)
        per_endpoint = {e: await metrics.endpoint_metrics(session, actor.tenant_id, e) for e in world.all}
    minutes = 24 * 60.0
    assert tenant.until == tenant.generated_at and tenant.until - tenant.since == timedelta(hours=24)
    assert_figures(tenant, expected(deliveries, attempts, tenant.generated_at, minutes))
    for endpoint_id, found in per_endpoint.items():
        assert found.endpoint_id == endpoint_id and found.tenant_id == actor.tenant_id
        want = expected(by_endpoint[endpoint_id], attempts_of[endpoint_id], found.generated_at, minutes)
        assert_figures(found, want)

    # The figures the scripts determine, spelled out.
    assert tenant.deliveries.total == 5 * EVENTS
    assert (tenant.deliveries.delivered, tenant.deliveries.failed) == (2 * EVENTS, EVENTS)
    assert tenant.success_rate == pytest.approx(2 / 3)
    assert per_endpoint[world.ok].success_rate == 1.0 and per_endpoint[world.ok].attempts_per_delivery == 1.0
    assert per_endpoint[world.flaky].attempts_per_delivery == pytest.approx((EVENTS + 2) / EVENTS)
    assert per_endpoint[world.bad].success_rate == 0.0
    assert per_endpoint[world.bad].errors_by_class == {"http_4xx": 2 * EVENTS}
    assert per_endpoint[world.flaky].errors_by_class == {"http_5xx": 2}
    assert per_endpoint[world.slow].errors_by_class == {"timeout": EVENTS}
    assert per_endpoint[world.slow].success_rate is None  # nothing finished yet
    assert per_endpoint[world.off].attempts == 0 and per_endpoint[world.off].p50_ms is None
    assert per_endpoint[world.off].attempts_per_delivery is None
    assert per_endpoint[world.off].queue_depth == EVENTS and per_endpoint[world.slow].queue_depth == EVENTS
    assert tenant.queue_depth == 2 * EVENTS
    slow_ok = max(a.duration_ms or 0 for a in attempts_of[world.ok])
    assert (
        slow_ok >= 300
        and per_endpoint[world.ok].p99_ms is not None
        and per_endpoint[world.ok].p99_ms <= slow_ok
    )
    assert tenant.p95_ms is not None and tenant.p50_ms is not None and tenant.p50_ms <= tenant.p95_ms

    # The breakdown: busiest first (all have EVENTS deliveries: then by id), the same figures.
    assert tenant.endpoints is not None
    assert [e.endpoint_id for e in tenant.endpoints] == sorted(world.all)
    for summary in tenant.endpoints:
        assert summary.url is not None and summary.url.startswith(receiver.url)
        own = per_endpoint[summary.endpoint_id].model_dump(by_alias=True)
        mine = summary.model_dump(by_alias=True)
        assert {k: mine[k] for k in own if k in mine and k != "oldestPendingAgeSeconds"} == {
            k: own[k] for k in own if k in mine and k != "oldestPendingAgeSeconds"
        }
    async with runtime.db.unit_of_work(write=False) as session:
        top2 = await metrics.tenant_metrics(session, actor.tenant_id, top=2)
    assert top2.endpoints is not None and [e.endpoint_id for e in top2.endpoints] == sorted(world.all)[:2]

    # Deliveries carry their creation time in their id (the window queries rely on it).
    for d in deliveries:
        assert (
            min_id_at("del", d.created_at) <= d.id < min_id_at("del", d.created_at + metrics.ID_CLOCK_SLACK)
        )


async def test_queue_age_follows_the_clock_and_the_window_selects(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    waiting = await add_endpoint(runtime, actor, receiver.script("/w"))
    endpoint_service = Endpoints(runtime.keyring, runtime.allowed_target_networks)
    # One delivery made three days ago (the clock turned back), one now; the endpoint is disabled
    # after both were accepted, so both wait.
    clock.shift(timedelta(days=-3))
    async with runtime.db.unit_of_work() as session:
        old = await ingest(session, actor, EventSpec(type="a.b", payload={"n": 1}))
    clock.reset()
    async with runtime.db.unit_of_work() as session:
        await ingest(session, actor, EventSpec(type="a.b", payload={"n": 2}))
        await endpoint_service.disable(session, actor, waiting)
    old_created = old.deliveries[0].created_at

    async with runtime.db.unit_of_work(write=False) as session:
        now = await metrics.endpoint_metrics(session, actor.tenant_id, waiting)
        wide = await metrics.endpoint_metrics(
            session, actor.tenant_id, waiting, since=clock.utcnow() - timedelta(days=4)
        )
    assert now.deliveries.total == 1 and now.deliveries.pending == 1  # the old one is outside 24 h
    assert wide.deliveries.total == 2 and wide.deliveries.pending == 2
    assert now.queue_depth == wide.queue_depth == 2  # the queue is now, whatever the window
    age = now.oldest_pending_age_seconds
    assert age == pytest.approx((now.generated_at - old_created).total_seconds(), abs=1e-3)
    assert age is not None and age > 3 * 86_400 - 60

    clock.shift(timedelta(hours=5))
    async with runtime.db.unit_of_work(write=False) as session:
        later = await metrics.endpoint_metrics(session, actor.tenant_id, waiting)
    assert later.oldest_pending_age_seconds == pytest.approx(age + 5 * 3600, abs=60)
    assert later.deliveries.total == 1  # five hours on, the new one is still in the last 24 h

    # The queue empties: no age.
    async with runtime.db.unit_of_work() as session:
        await endpoint_service.enable(session, actor, waiting)
    await worker.drain()
    async with runtime.db.unit_of_work(write=False) as session:
        drained = await metrics.endpoint_metrics(session, actor.tenant_id, waiting)
        tenant = await metrics.tenant_metrics(session, actor.tenant_id)
    assert drained.queue_depth == 0 and drained.oldest_pending_age_seconds is None
    assert tenant.queue_depth == 0 and tenant.oldest_pending_age_seconds is None


async def test_windows_are_checked(runtime: Runtime, actor: Actor) -> None:
    now = clock.utcnow()
    endpoint = await add_endpoint(runtime, actor, "http://127.0.0.1:9/x")
    cases = [
        (now - timedelta(hours=1), now - timedelta(hours=2), "since"),
        (now, now, "since"),
        (now - timedelta(days=91), now, "since"),
        (now + timedelta(hours=1), now + timedelta(hours=2), "since"),
    ]
    for since, until, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            metrics.resolve_window(since, until, now)
        assert refused.value.extra["errors"][0]["field"] == field
    window = metrics.resolve_window(now - timedelta(days=90), now, now)
    assert window.elapsed_minutes == 90 * 24 * 60
    ahead = metrics.resolve_window(now - timedelta(minutes=30), now + timedelta(minutes=30), now)
    assert ahead.elapsed_minutes == 30  # throughput counts the part of the window that has passed
    async with runtime.db.unit_of_work(write=False) as session:
        empty = await metrics.endpoint_metrics(session, actor.tenant_id, endpoint)
    assert empty.deliveries.total == 0 and empty.success_rate is None and empty.attempts == 0
    assert empty.throughput_per_minute == 0.0 and empty.errors_by_class == {} and empty.p99_ms is None


# -- REST ----------------------------------------------------------------------------------------


async def test_rest_routes_scopes_404_and_422(
    runtime: Runtime,
    actor: Actor,
    receiver: Receiver,
    worker: DeliveryWorker,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    world = await deliver_mixed(runtime, actor, receiver, worker)
    got = await client.get(f"/v1/endpoints/{world.flaky}/metrics", headers=admin_headers)
    assert got.status_code == 200, got.text
    body = got.json()
    async with runtime.db.unit_of_work(write=False) as session:
        direct = await metrics.endpoint_metrics(
            session, actor.tenant_id, world.flaky, since=datetime.fromisoformat(body["since"])
        )
    same = direct.model_dump(mode="json", by_alias=True)
    for volatile in ("until", "generatedAt", "oldestPendingAgeSeconds", "throughputPerMinute"):
        same.pop(volatile), body.pop(volatile)
    assert body == same and body["endpoints"] is None

    since = (clock.utcnow() - timedelta(hours=1)).isoformat()
    tenant = await client.get("/v1/webhook-metrics", params={"since": since, "top": 3}, headers=admin_headers)
    assert tenant.status_code == 200, tenant.text
    tenant_body = tenant.json()
    assert tenant_body["endpointId"] is None and len(tenant_body["endpoints"]) == 3
    assert tenant_body["deliveries"]["total"] == 5 * EVENTS and tenant_body["since"].startswith(since[:19])
    assert set(tenant_body) >= {
        "successRate",
        "attemptsPerDelivery",
        "p50Ms",
        "p95Ms",
        "p99Ms",
        "queueDepth",
        "oldestPendingAgeSeconds",
        "throughputPerMinute",
        "errorsByClass",
    }

    # 404: unknown, deleted, or another tenant's endpoint (also when a platform key names that tenant).
    assert_problem(await client.get("/v1/endpoints/ep_missing/metrics", headers=admin_headers), 404)
    deleted = await client.delete(f"/v1/endpoints/{world.ok}", headers=admin_headers)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/v1/endpoints/{world.ok}/metrics", headers=admin_headers), 404)
    other = await make_tenant(client, admin_headers, "other")
    other_headers = auth(admin_headers["Authorization"].removeprefix("Bearer "), other)
    assert_problem(await client.get(f"/v1/endpoints/{world.flaky}/metrics", headers=other_headers), 404)
    theirs = await client.get("/v1/webhook-metrics", headers=other_headers)
    assert theirs.status_code == 200 and theirs.json()["deliveries"]["total"] == 0
    assert theirs.json()["endpoints"] == []

    # Scopes: webhooks:read, as for reading deliveries.
    producer = await make_key(client, admin_headers, scopes=["events:write"])
    producer_headers = auth(producer["key"])
    assert_problem(await client.get(f"/v1/endpoints/{world.flaky}/metrics", headers=producer_headers), 403)
    assert_problem(await client.get("/v1/webhook-metrics", headers=producer_headers), 403)
    reader = await make_key(client, admin_headers, scopes=["webhooks:read"])
    reading = await client.get(f"/v1/endpoints/{world.flaky}/metrics", headers=auth(reader["key"]))
    assert reading.status_code == 200

    # 422 naming the field.
    now = clock.utcnow()
    bad_windows: list[tuple[str, dict[str, Any], str]] = [
        (
            "since after until",
            {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
            "since",
        ),
        ("over 90 days", {"since": (now - timedelta(days=91)).isoformat()}, "since"),
        ("in the future", {"since": (now + timedelta(days=1)).isoformat()}, "since"),
        ("no offset", {"since": "2026-01-01T00:00:00"}, "since"),
        ("not a time", {"until": "yesterday"}, "until"),
    ]
    for path in (f"/v1/endpoints/{world.flaky}/metrics", "/v1/webhook-metrics"):
        for what, params, field in bad_windows:
            problem = assert_problem(await client.get(path, params=params, headers=admin_headers), 422)
            assert [e["field"] for e in problem["errors"]] == [field], (path, what, problem)
    for top in ("0", "101", "x"):
        problem = assert_problem(
            await client.get("/v1/webhook-metrics", params={"top": top}, headers=admin_headers), 422
        )
        assert [e["field"] for e in problem["errors"]] == ["top"]


# -- Prometheus ----------------------------------------------------------------------------------


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_prometheus_counters_and_queue_gauges(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker, client: httpx.AsyncClient
) -> None:
    web = {"channel": "WEBHOOK"}
    counters = {
        "success": ("interlink_webhook_attempts_total", {**web, "outcome": "success", "error_class": "none"}),
        "http_4xx": (
            "interlink_webhook_attempts_total",
            {**web, "outcome": "failure", "error_class": "http_4xx"},
        ),
        "http_5xx": (
            "interlink_webhook_attempts_total",
            {**web, "outcome": "failure", "error_class": "http_5xx"},
        ),
        "timeout": (
            "interlink_webhook_attempts_total",
            {**web, "outcome": "failure", "error_class": "timeout"},
        ),
        "timed": ("interlink_webhook_attempt_duration_seconds_count", web),
        "delivered": ("interlink_webhook_deliveries_finished_total", {"status": "DELIVERED"}),
        "failed": ("interlink_webhook_deliveries_finished_total", {"status": "FAILED"}),
    }
    before = {k: sample(name, labels) for k, (name, labels) in counters.items()}
    await deliver_mixed(runtime, actor, receiver, worker)
    deliveries, attempts = await table_rows(runtime)

    response = await client.get("/metrics")
    assert response.status_code == 200
    values = scraped(response.text)

    def value(name: str, labels: dict[str, str]) -> float:
        return values.get((name, tuple(sorted(labels.items()))), 0.0)

    errors = Counter(a.error_class for a in attempts if a.error_class)
    want = {
        "success": sum(1 for a in attempts if a.succeeded),
        "http_4xx": errors["http_4xx"],
        "http_5xx": errors["http_5xx"],
        "timeout": errors["timeout"],
        "timed": sum(1 for a in attempts if a.duration_ms is not None),
        "delivered": sum(1 for d in deliveries if d.status is DeliveryStatus.DELIVERED),
        "failed": sum(1 for d in deliveries if d.status is DeliveryStatus.FAILED),
    }
    assert want["success"] == 2 * EVENTS and want["timeout"] == EVENTS and want["failed"] == EVENTS
    for key, (name, labels) in counters.items():
        assert value(name, labels) - before[key] == want[key], key

    waiting = [d for d in deliveries if d.status in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)]
    assert value("interlink_webhook_queue_depth", {"status": "PENDING"}) == EVENTS
    assert value("interlink_webhook_queue_depth", {"status": "RETRYING"}) == EVENTS
    oldest = (clock.utcnow() - min(d.created_at for d in waiting)).total_seconds()
    assert value("interlink_webhook_oldest_pending_seconds", {}) == pytest.approx(oldest, abs=10)
    # The PENDING ones belong to a disabled endpoint and the RETRYING ones are due in an hour.
    assert value("interlink_webhook_queue_lag_seconds", {}) == 0
    # No tenant or endpoint ids in any label of ours.
    ours = [key for key in values if key[0].startswith("interlink_webhook_")]
    assert ours and all(
        label not in ("tenant", "tenant_id", "endpoint", "endpoint_id") for key in ours for label, _ in key[1]
    )


async def test_the_scrape_survives_a_database_that_is_away(tmp_path: Path) -> None:
    down = make_settings("postgresql+psycopg://interlink@127.0.0.1:1/interlink", tmp_path / "data")
    runtime = Runtime(down)
    try:
        app = create_app(down, runtime, access_log=False)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as client:
            response = await client.get("/metrics")
        assert response.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        assert families["interlink_webhook_queue_depth"].samples == []
        assert families["interlink_webhook_oldest_pending_seconds"].samples == []
        assert "interlink_webhook_attempts" in families  # everything else is still there
    finally:
        await runtime.stop()


async def test_a_hanging_database_delays_the_scrape_by_at_most_the_wait() -> None:
    held: list[asyncio.StreamWriter] = []

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    db = Database(f"postgresql+psycopg://interlink@127.0.0.1:{port}/interlink")
    gauges = metrics.QueueGauges(wait=0.2, query_timeout=30)
    registry = CollectorRegistry()
    registry.register(gauges)
    try:
        await asyncio.wait_for(gauges.refresh(db), timeout=10)  # returns though nothing answers
        text = generate_latest(registry).decode()
        assert "interlink_webhook_queue_depth{" not in text
        assert "interlink_webhook_queue_query_failures_total 0.0" in text
        server.close()
        for writer in held:  # the database goes away for good: the query in the background fails
            writer.transport.abort()
        async with asyncio.timeout(20):
            while registry.get_sample_value("interlink_webhook_queue_query_failures_total") != 1.0:
                await asyncio.sleep(0.05)
    finally:
        server.close()
        await db.dispose()


# -- SDK and CLI ---------------------------------------------------------------------------------


def run_cli(server: LiveServer, *args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
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


async def test_sdk_and_cli(live_server: LiveServer, receiver: Receiver) -> None:
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        ok = await asyncio.to_thread(sdk.endpoints.create, receiver.script("/s/ok"))
        failing = await asyncio.to_thread(
            sdk.endpoints.create, receiver.script("/s/failing", Answer(503)), retry_schedule=[3600]
        )
        for n in range(3):
            await asyncio.to_thread(sdk.events.send, "order.created", {"n": n})
        async with asyncio.timeout(20):
            while True:
                found = await asyncio.to_thread(sdk.webhook_metrics)
                if found.deliveries.delivered == 3 and found.deliveries.retrying == 3:
                    break
                await asyncio.sleep(0.05)
        assert isinstance(found, WebhookDeliveryMetrics)
        assert found.success_rate == 1.0 and found.errors_by_class == {"http_5xx": 3}
        assert found.queue_depth == 3 and found.endpoints is not None and len(found.endpoints) == 2
        one = await asyncio.to_thread(sdk.endpoints.metrics, failing.id)
        assert one.endpoint_id == failing.id and one.deliveries.retrying == 3 and one.success_rate is None
        since = datetime.now(UTC) - timedelta(hours=2)
        windowed = await asyncio.to_thread(sdk.endpoints.metrics, ok.id, since=since, until=datetime.now(UTC))
        assert windowed.since == since and windowed.deliveries.delivered == 3
        top = await asyncio.to_thread(sdk.webhook_metrics, top=1)
        assert top.endpoints is not None and len(top.endpoints) == 1
        with pytest.raises(ValidationError) as wide:
            sdk.webhook_metrics(since=datetime.now(UTC) - timedelta(days=100))
        assert [e.field for e in wide.value.errors] == ["since"]
        with pytest.raises(NotFoundError):
            sdk.endpoints.metrics("ep_missing")

    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as client:
        tenant = await client.webhook_metrics(since=since)
        assert tenant.deliveries.total == 6 and tenant.attempts == 6
        endpoint = await client.endpoints.metrics(ok.id)
        assert endpoint.deliveries.delivered == 3 and endpoint.attempts_per_delivery == 1.0
        with pytest.raises(NotFoundError):
            await client.endpoints.metrics("ep_missing")

    as_json = await asyncio.to_thread(run_cli, live_server, "endpoints", "metrics", failing.id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    parsed = json.loads(as_json.stdout)
    assert parsed["endpointId"] == failing.id and parsed["deliveries"]["retrying"] == 3
    assert parsed["errorsByClass"] == {"http_5xx": 3}
    table = await asyncio.to_thread(
        run_cli, live_server, "endpoints", "metrics", ok.id, "--since", since.isoformat()
    )
    assert table.returncode == 0, table.stderr
    assert f"Delivery metrics of endpoint {ok.id}" in table.stdout and "100.00 %" in table.stdout
    whole = await asyncio.to_thread(run_cli, live_server, "webhooks", "metrics", "--top", "1")
    assert whole.returncode == 0, whole.stderr
    assert "Busiest endpoints" in whole.stdout and "http_5xx 3" in whole.stdout
    whole_json = json.loads(
        (await asyncio.to_thread(run_cli, live_server, "webhooks", "metrics", "--json", real=True)).stdout
    )
    assert whole_json["deliveries"]["total"] == 6 and len(whole_json["endpoints"]) == 2
    refused = await asyncio.to_thread(
        run_cli,
        live_server,
        "webhooks",
        "metrics",
        "--since",
        "2020-01-01T00:00:00Z",
        "--until",
        "2020-06-01T00:00:00Z",
    )
    assert refused.returncode == 1 and "422" in refused.stderr and "since" in refused.stderr
    missing = await asyncio.to_thread(run_cli, live_server, "endpoints", "metrics", "ep_missing")
    assert missing.returncode == 1 and "404" in missing.stderr
    usage = await asyncio.to_thread(run_cli, live_server, "webhooks", "metrics", "--since", "soon")
    assert usage.returncode == 2
