"""Endpoint health against a real receiver on 127.0.0.1, on SQLite and PostgreSQL: auto-disable, the
circuit breaker, operational events (verified with ``standardwebhooks``), manual re-enable, the
``webhook.test`` ping, and the tenant webhook configuration through REST, the SDK and the CLI.

Time moves with ``interlink.core.clock.shift``; nothing here waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.client import AsyncInterlinkClient, InterlinkClient, PermissionDeniedError, ValidationError
from interlink.core import clock
from interlink.core.actor import Actor, system_actor
from interlink.core.enums import DeliveryStatus, RetentionPolicy
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from interlink.webhooks import config as webhook_config
from interlink.webhooks import delivery as engine
from interlink.webhooks import health
from interlink.webhooks.config_schemas import CircuitBreakerConfig, WebhookConfig
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker
from interlink.webhooks.endpoints import Endpoints, EndpointSpec, active_secrets
from interlink.webhooks.ingest import EventSpec, ingest
from interlink.webhooks.models import WebhookDelivery, WebhookEndpoint
from interlink.webhooks.schemas import EndpointTestResult, endpoint_info
from tests.api_helpers import assert_problem, make_key
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer, make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)

LOCAL = ["127.0.0.0/8"]
OPS = ["endpoint.disabled", "endpoint.recovered"]
WAITING = {DeliveryStatus.PENDING, DeliveryStatus.RETRYING}


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
    config = DeliveryConfig(concurrency=8, batch_size=8, lease_seconds=30, poll_interval=0.05)
    yield DeliveryWorker(runtime.db, runtime.keyring, runtime.transport, config)


async def add_endpoint(
    runtime: Runtime, actor: Actor, receiver: Receiver, path: str, *answers: Answer, **fields: Any
) -> str:
    """An endpoint at ``receiver`` + ``path`` whose requests the receiver verifies; returns its id."""
    url = receiver.script(path, *answers)
    service = Endpoints(runtime.keyring, runtime.allowed_target_networks)
    async with runtime.db.unit_of_work() as session:
        row = await service.create(session, actor, EndpointSpec(url=url, **fields))
    async with runtime.db.unit_of_work(write=False) as session:
        receiver.secrets[path] = await active_secrets(session, runtime.keyring, row.id)
    return row.id


async def send_event(runtime: Runtime, actor: Actor, n: int = 1) -> str:
    async with runtime.db.unit_of_work() as session:
        result = await ingest(session, actor, EventSpec(type="invoice.paid", payload={"n": n}))
    return result.event.id


async def set_config(runtime: Runtime, actor: Actor, **changes: Any) -> WebhookConfig:
    async with runtime.db.unit_of_work() as session:
        return await webhook_config.update(session, actor, changes)


async def endpoint(runtime: Runtime, endpoint_id: str) -> WebhookEndpoint:
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(WebhookEndpoint, endpoint_id)
    assert row is not None
    return row


async def deliveries(runtime: Runtime, endpoint_id: str) -> list[WebhookDelivery]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = (
            sa.select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.id)
        )
        return list((await session.scalars(stmt)).all())


async def audit_rows(runtime: Runtime, resource_id: str) -> list[AuditEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = sa.select(AuditEvent).where(AuditEvent.resource_id == resource_id).order_by(AuditEvent.id)
        return list((await session.scalars(stmt)).all())


def messages(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """The bodies ``path`` received, each verified with ``standardwebhooks``."""
    got = receiver.received(path)
    bad = [r.verify_error for r in got if r.verified is not True]
    assert not bad, bad
    return [r.json() for r in got]


def types_at(receiver: Receiver, path: str) -> list[str]:
    return [m["type"] for m in messages(receiver, path)]


# -- auto-disable, operational events, re-enable ---------------------------------------------------


async def test_a_success_of_a_healthy_endpoint_only_stamps_it_and_a_failing_one_recovers(
    runtime: Runtime, actor: Actor, receiver: Receiver
) -> None:
    """Recording successes: a healthy endpoint only gets ``last_success_at`` (one UPDATE, nothing
    else changes, not even ``updated_at``, which workers key their endpoint views on); an endpoint
    with failures counted goes the full way (counters reset, recovery announced)."""
    healthy = await add_endpoint(runtime, actor, receiver, "/healthy", Answer(200))
    failing = await add_endpoint(runtime, actor, receiver, "/failing", Answer(200))
    since = clock.utcnow() - timedelta(minutes=30)
    async with runtime.db.unit_of_work() as session:
        await session.execute(
            sa.update(WebhookEndpoint)
            .where(WebhookEndpoint.id == failing)
            .values(consecutive_failures=7, failing_since=since)
        )
    before = await endpoint(runtime, healthy)
    now = clock.utcnow()
    async with runtime.db.unit_of_work() as session:
        await health.record(
            session,
            [
                health.EndpointResults(endpoint_id=healthy, tenant_id=actor.tenant_id, succeeded=3, failed=0),
                health.EndpointResults(endpoint_id=failing, tenant_id=actor.tenant_id, succeeded=1, failed=1),
            ],
            now,
        )
    after = await endpoint(runtime, healthy)
    assert after.last_success_at == now and before.last_success_at is None
    assert after.updated_at == before.updated_at
    assert (after.consecutive_failures, after.failing_since, after.circuit_state) == (0, None, "CLOSED")
    recovered = await endpoint(runtime, failing)
    assert recovered.last_success_at == now
    assert (recovered.consecutive_failures, recovered.failing_since) == (0, None)


async def test_auto_disable_after_the_window_and_manual_re_enable(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    down = await add_endpoint(
        runtime, actor, receiver, "/down", Answer(500),
        event_types=["invoice.paid", *OPS], retry_schedule=[60] * 10,
    )  # fmt: skip
    await add_endpoint(runtime, actor, receiver, "/ops", event_types=OPS)
    await add_endpoint(runtime, actor, receiver, "/all")  # every type, but not the operational ones
    await send_event(runtime, actor, 1)
    await worker.drain()
    row = await endpoint(runtime, down)
    assert row.enabled and row.consecutive_failures == 1 and row.failing_since is not None
    failing_since = row.failing_since

    clock.shift(timedelta(days=4))  # the retry fails, but 4 days < the default 5
    await worker.drain()
    row = await endpoint(runtime, down)
    assert row.enabled and row.consecutive_failures == 2 and row.failing_since == failing_since

    clock.shift(timedelta(days=1, minutes=1))
    await send_event(runtime, actor, 2)
    await worker.drain()
    row = await endpoint(runtime, down)
    assert not row.enabled and row.disabled_reason is not None
    assert "no successful delivery for 5 days" in row.disabled_reason
    [disabled] = [a for a in await audit_rows(runtime, down) if a.action == "endpoint.disabled"]
    assert disabled.actor_type == "system" and disabled.changes["enabled"] == {"old": True, "new": False}

    # Its waiting deliveries are kept, and nothing is sent to it while it is disabled.
    kept = await deliveries(runtime, down)
    assert len(kept) == 2 and {d.status for d in kept} <= WAITING
    sent_before = len(receiver.received("/down"))
    clock.shift(timedelta(hours=2))
    await worker.drain()
    assert len(receiver.received("/down")) == sent_before

    # endpoint.disabled reached the explicit subscriber, signed; not the catch-all, not itself.
    [notice] = [m for m in messages(receiver, "/ops") if m["type"] == "endpoint.disabled"]
    data = notice["data"]
    assert data["endpointId"] == down and data["url"] == receiver.url + "/down"
    assert data["reason"] == row.disabled_reason and data["consecutiveFailures"] >= 3
    assert data["failingSince"] == failing_since.isoformat() and data["disabledAt"]
    assert set(types_at(receiver, "/all")) == {"invoice.paid"}
    assert set(types_at(receiver, "/down")) == {"invoice.paid"}

    # A manual re-enable closes everything, resumes the kept deliveries and announces the recovery.
    receiver.script("/down", Answer(200))
    async with runtime.db.unit_of_work() as session:
        await Endpoints(runtime.keyring, runtime.allowed_target_networks).enable(session, actor, down)
    clock.shift(timedelta(minutes=2))
    await worker.drain()
    assert {d.status for d in await deliveries(runtime, down)} == {DeliveryStatus.DELIVERED}
    row = await endpoint(runtime, down)
    assert row.enabled and row.consecutive_failures == 0 and row.circuit_state == "CLOSED"
    recovered = [m["data"] for m in messages(receiver, "/ops") if m["type"] == "endpoint.recovered"]
    assert len(recovered) == 1
    assert recovered[0]["reason"] == "enabled manually" and recovered[0]["endpointId"] == down
    assert recovered[0]["disabledAt"] == data["disabledAt"] and recovered[0]["recoveredAt"]
    assert set(types_at(receiver, "/down")) == {"invoice.paid"}  # never about itself


async def test_410_announces_endpoint_disabled_to_enabled_subscribers_only(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    gone = await add_endpoint(runtime, actor, receiver, "/gone", Answer(410), event_types=["invoice.paid"])
    await add_endpoint(runtime, actor, receiver, "/ops", event_types=["endpoint.disabled"])
    paused = await add_endpoint(runtime, actor, receiver, "/paused", event_types=["endpoint.disabled"])
    filtered = await add_endpoint(
        runtime, actor, receiver, "/filtered",
        event_types=["endpoint.disabled"], filter={"payload.endpointId": {"$eq": "ep_other"}},
    )  # fmt: skip
    async with runtime.db.unit_of_work() as session:
        await Endpoints(runtime.keyring).disable(session, actor, paused, "paused")
    await send_event(runtime, actor)
    await worker.drain()

    assert not (await endpoint(runtime, gone)).enabled
    [notice] = messages(receiver, "/ops")
    assert notice["type"] == "endpoint.disabled" and notice["data"]["endpointId"] == gone
    assert "410" in notice["data"]["reason"] and notice["data"]["consecutiveFailures"] == 1
    assert receiver.received("/paused") == [] and receiver.received("/filtered") == []
    assert filtered  # its filter applies to operational events too


# -- the circuit breaker ---------------------------------------------------------------------------


async def test_circuit_opens_holds_deliveries_back_and_a_probe_closes_it(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    breaker = {"failureThreshold": 3, "windowSeconds": 60, "cooldownSeconds": 30}
    await set_config(runtime, actor, circuit_breaker=breaker)
    flaky = await add_endpoint(
        runtime,
        actor,
        receiver,
        "/flaky",
        Answer(500),
        event_types=["invoice.paid"],
        retry_schedule=[15] * 20,
    )
    await add_endpoint(runtime, actor, receiver, "/fine", event_types=["invoice.paid"])
    await add_endpoint(runtime, actor, receiver, "/ops", event_types=OPS)
    for n in range(3):
        await send_event(runtime, actor, n)
    await worker.drain()

    row = await endpoint(runtime, flaky)
    assert row.circuit_state == "OPEN" and row.circuit_opens == 1 and row.enabled
    assert row.circuit_open_until is not None
    assert 25 <= (row.circuit_open_until - clock.utcnow()).total_seconds() <= 30
    assert endpoint_info(row).circuit.state == "OPEN"
    assert "endpoint.circuit_opened" in [a.action for a in await audit_rows(runtime, flaky)]
    assert len(receiver.received("/flaky")) == 3

    # Open: retries come due and new events arrive; the other endpoint gets everything, the open one
    # nothing, and no attempt of its deliveries is used up.
    for n in range(3, 5):
        await send_event(runtime, actor, n)
    clock.shift(timedelta(seconds=20))
    await worker.drain()
    assert len(receiver.received("/flaky")) == 3
    assert len(receiver.received("/fine")) == 5
    held = await deliveries(runtime, flaky)
    assert [d.attempts for d in held] == [1, 1, 1, 0, 0]
    assert {d.status for d in held} <= WAITING and {d.locked_by for d in held} == {None}

    # Cooldown over: exactly one delivery probes; other claims leave the endpoint alone meanwhile.
    clock.shift(timedelta(seconds=11))
    assert endpoint_info(await endpoint(runtime, flaky)).circuit.state == "HALF_OPEN"
    works = await engine.claim(runtime.db, runtime.keyring, "probe-worker", 50, lease_seconds=30)
    probes = [w for w in works if w.endpoint.id == flaky]
    assert len(probes) == 1
    others = await engine.claim(runtime.db, runtime.keyring, "other-worker", 50, lease_seconds=30)
    assert [w for w in others if w.endpoint.id == flaky] == []
    assert (await endpoint(runtime, flaky)).circuit_state == "HALF_OPEN"
    rest = [d for d in await deliveries(runtime, flaky) if d.id != probes[0].delivery_id]
    assert {d.status for d in rest} <= WAITING and {d.locked_by for d in rest} == {None}
    assert sorted(d.attempts for d in await deliveries(runtime, flaky)) == [0, 0, 1, 1, 1]

    # The probe fails: open again, for twice as long.
    sender = engine.Sender(runtime.transport)
    await engine.record(runtime.db, "probe-worker", [await sender.send(w) for w in probes])
    row = await endpoint(runtime, flaky)
    assert row.circuit_state == "OPEN" and row.circuit_opens == 2 and row.circuit_open_until is not None
    assert 55 <= (row.circuit_open_until - clock.utcnow()).total_seconds() <= 60
    assert len(receiver.received("/flaky")) == 4

    # The next probe succeeds: the circuit closes and every held delivery goes out.
    receiver.script("/flaky", Answer(200))
    clock.shift(timedelta(seconds=61))
    await worker.drain()
    row = await endpoint(runtime, flaky)
    assert row.circuit_state == "CLOSED" and row.circuit_opens == 0 and row.circuit_open_until is None
    assert {d.status for d in await deliveries(runtime, flaky)} == {DeliveryStatus.DELIVERED}
    assert len(receiver.received("/flaky")) == 9
    actions = [a.action for a in await audit_rows(runtime, flaky)]
    assert actions.count("endpoint.circuit_opened") == 2 and actions.count("endpoint.circuit_closed") == 1
    # Opening is not disabling: only the recovery is announced.
    assert types_at(receiver, "/ops") == ["endpoint.recovered"]
    [recovered] = messages(receiver, "/ops")
    assert recovered["data"]["endpointId"] == flaky and "circuit" in recovered["data"]["reason"]


async def test_no_circuit_breaker_when_the_tenant_turns_it_off(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    await set_config(runtime, actor, circuit_breaker=None)
    flaky = await add_endpoint(runtime, actor, receiver, "/flaky", Answer(500), retry_schedule=[15] * 5)
    for n in range(25):  # more than the built-in threshold of 20
        await send_event(runtime, actor, n)
    await worker.drain()
    row = await endpoint(runtime, flaky)
    assert row.circuit_state == "CLOSED" and row.consecutive_failures == 25
    clock.shift(timedelta(seconds=20))
    await worker.drain()
    assert len(receiver.received("/flaky")) == 50


# -- retry schedule precedence ---------------------------------------------------------------------


async def test_retry_schedule_endpoint_then_tenant_then_built_in(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    await set_config(runtime, actor, retry_schedule=[100])
    tenant_default = await add_endpoint(runtime, actor, receiver, "/a", Answer(500))
    own = await add_endpoint(runtime, actor, receiver, "/b", Answer(500), retry_schedule=[1000])
    await send_event(runtime, actor)
    await worker.drain()

    def wait(d: WebhookDelivery) -> float:
        return (d.next_attempt_at - clock.utcnow()).total_seconds()

    [a] = await deliveries(runtime, tenant_default)
    [b] = await deliveries(runtime, own)
    assert a.status is DeliveryStatus.RETRYING and 75 <= wait(a) <= 125, wait(a)  # the tenant's 100 s
    assert 750 <= wait(b) <= 1250, wait(b)  # the endpoint's own 1000 s

    await set_config(runtime, actor, retry_schedule=None)  # back to the built-in 5 s, 5 min, ...
    await send_event(runtime, actor)
    await worker.drain()
    newest = (await deliveries(runtime, tenant_default))[-1]
    assert newest.attempts == 1 and 3.5 <= wait(newest) <= 6.5, wait(newest)


# -- REST ------------------------------------------------------------------------------------------


async def test_webhook_config_over_rest(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    got = await client.get("/v1/webhook-config", headers=admin_headers)
    assert got.status_code == 200, got.text
    assert got.json() == {
        "tenantId": admin.tenant_id,
        "retrySchedule": None,
        "retention": "DAYS_30",
        "disableAfterSeconds": 432000,
        "circuitBreaker": {"failureThreshold": 20, "windowSeconds": 60, "cooldownSeconds": 60},
        "defaultTimeoutSeconds": 15.0,
        "createdAt": None,
        "updatedAt": None,
    }
    first = await client.put(
        "/v1/webhook-config",
        json={"retrySchedule": [10, 60], "retention": "DAYS_7", "defaultTimeoutSeconds": 5},
        headers=admin_headers,
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["retrySchedule"] == [10, 60] and body["retention"] == "DAYS_7"
    assert body["defaultTimeoutSeconds"] == 5.0 and body["disableAfterSeconds"] == 432000
    assert body["createdAt"] and body["circuitBreaker"]["failureThreshold"] == 20
    second = await client.put(
        "/v1/webhook-config",
        json={"circuitBreaker": None, "disableAfterSeconds": 3600},
        headers=admin_headers,
    )
    assert second.status_code == 200, second.text
    assert second.json()["circuitBreaker"] is None and second.json()["retrySchedule"] == [10, 60]
    assert (await client.get("/v1/webhook-config", headers=admin_headers)).json() == second.json()

    bad_bodies: list[tuple[dict[str, Any], str]] = [
        ({"retrySchedule": [0]}, "retrySchedule"),
        ({"retrySchedule": "5"}, "retrySchedule"),
        ({"disableAfterSeconds": 5}, "disableAfterSeconds"),
        ({"disableAfterSeconds": None}, "disableAfterSeconds"),
        ({"retention": None}, "retention"),
        ({"retention": "DAYS_2"}, "retention"),
        ({"defaultTimeoutSeconds": 61}, "defaultTimeoutSeconds"),
        (
            {"circuitBreaker": {"failureThreshold": 0, "windowSeconds": 1, "cooldownSeconds": 1}},
            "circuitBreaker.failureThreshold",
        ),
        ({"circuitBreaker": {"failureThreshold": 3, "cooldownSeconds": 1}}, "circuitBreaker.windowSeconds"),
        ({"bogus": 1}, "bogus"),
    ]
    for bad, field_name in bad_bodies:
        refused = await client.put("/v1/webhook-config", json=bad, headers=admin_headers)
        problem = assert_problem(refused, 422)
        assert [e["field"] for e in problem["errors"]] == [field_name], (bad, problem)
    assert (await client.get("/v1/webhook-config", headers=admin_headers)).json() == second.json()

    async with runtime.db.unit_of_work(write=False) as session:
        rows = (
            await session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "webhook_config.updated"))
        ).all()
    assert len(rows) == 2 and rows[0].tenant_id == admin.tenant_id
    changes = sorted((r.changes for r in rows), key=len)
    assert changes[0] == {
        "circuitBreaker": {
            "old": {"failureThreshold": 20, "windowSeconds": 60, "cooldownSeconds": 60},
            "new": None,
        },
        "disableAfterSeconds": {"old": 432000, "new": 3600},
    }

    # New endpoints take the tenant's timeout and retention unless they give their own.
    plain = await client.post("/v1/endpoints", json={"url": "http://127.0.0.1:9/a"}, headers=admin_headers)
    assert plain.status_code == 201, plain.text
    assert plain.json()["timeoutSeconds"] == 5.0 and plain.json()["retention"] == "DAYS_7"
    assert plain.json()["retrySchedule"] is None  # resolved when sending: the tenant's [10, 60]
    assert plain.json()["circuit"] == {"state": "CLOSED", "openUntil": None, "opens": 0}
    own = await client.post(
        "/v1/endpoints",
        json={"url": "http://127.0.0.1:9/b", "timeoutSeconds": 20, "retention": "DAYS_90"},
        headers=admin_headers,
    )
    assert own.json()["timeoutSeconds"] == 20.0 and own.json()["retention"] == "DAYS_90"

    reader = await make_key(client, admin_headers, scopes=["webhooks:read"])
    as_reader = {"Authorization": f"Bearer {reader['key']}"}
    assert (await client.get("/v1/webhook-config", headers=as_reader)).status_code == 200
    assert_problem(await client.put("/v1/webhook-config", json={}, headers=as_reader), 403)


async def test_webhook_test_ping_over_rest(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    async def made(path: str, **fields: Any) -> str:
        created = await client.post(
            "/v1/endpoints", json={"url": receiver.script(path), **fields}, headers=admin_headers
        )
        assert created.status_code == 201, created.text
        endpoint_id = str(created.json()["id"])
        secret = await client.get(f"/v1/endpoints/{endpoint_id}/secret", headers=admin_headers)
        receiver.secrets[path] = [secret.json()["key"]]
        return endpoint_id

    # Subscribed to something else, with a filter the ping would not pass: it is sent anyway.
    target = await made("/ping", eventTypes=["invoice.paid"], filter={"payload.amount": {"$gt": 100}})
    await made("/bystander", eventTypes=["webhook.test"])
    url = f"/v1/endpoints/{target}/test"

    pinged = await client.post(url, headers=admin_headers)
    assert pinged.status_code == 200, pinged.text
    result = EndpointTestResult.model_validate(pinged.json())
    assert result.status is DeliveryStatus.DELIVERED and result.succeeded and result.response_status == 200
    assert result.duration_ms is not None and result.error_class is None and result.next_attempt_at is None
    [first] = messages(receiver, "/ping")
    assert first["type"] == "webhook.test" and first["data"]["endpointId"] == target
    assert receiver.received("/ping")[0].webhook_id == result.event_id
    assert receiver.received("/bystander") == []
    event = (await client.get(f"/v1/events/{result.event_id}", headers=admin_headers)).json()
    assert event["type"] == "webhook.test"
    assert [(d["endpointId"], d["status"]) for d in event["deliveries"]] == [(target, "DELIVERED")]

    custom = await client.post(url, json={"payload": {"hello": "world"}}, headers=admin_headers)
    assert custom.status_code == 200 and custom.json()["status"] == "DELIVERED"
    assert messages(receiver, "/ping")[1]["data"] == {"hello": "world"}

    receiver.script("/ping", Answer(503, body="down"))
    failed = await client.post(url, headers=admin_headers)
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert body["status"] == "RETRYING" and body["succeeded"] is False
    assert body["responseStatus"] == 503 and body["errorClass"] == "http_5xx" and body["nextAttemptAt"]

    assert_problem(await client.post(url, json={"payload": 5}, headers=admin_headers), 422)
    assert_problem(await client.post("/v1/endpoints/ep_missing/test", headers=admin_headers), 404)
    await client.post(f"/v1/endpoints/{target}/disable", headers=admin_headers)
    assert_problem(await client.post(url, headers=admin_headers), 409)
    shown = (await client.get(f"/v1/endpoints/{target}", headers=admin_headers)).json()
    assert shown["consecutiveFailures"] == 1 and shown["failingSince"] and shown["lastSuccessAt"]
    assert shown["circuit"]["state"] == "CLOSED"


async def test_re_enable_over_rest_announces_the_recovery(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    ops_url = receiver.script("/ops")
    ops = await client.post("/v1/endpoints", json={"url": ops_url, "eventTypes": OPS}, headers=admin_headers)
    ops_id = ops.json()["id"]
    secret = await client.get(f"/v1/endpoints/{ops_id}/secret", headers=admin_headers)
    receiver.secrets["/ops"] = [secret.json()["key"]]
    tripped = await client.post("/v1/endpoints", json={"url": "http://127.0.0.1:9/t"}, headers=admin_headers)
    tripped_id = tripped.json()["id"]
    async with runtime.db.unit_of_work() as session:  # what the delivery side records
        row = await session.get(WebhookEndpoint, tripped_id)
        assert row is not None
        row.circuit_state, row.circuit_opens = "OPEN", 3
        row.circuit_open_until = clock.utcnow() + timedelta(minutes=5)
        row.consecutive_failures = 40

    enabled = await client.post(f"/v1/endpoints/{tripped_id}/enable", headers=admin_headers)
    assert enabled.status_code == 200
    assert enabled.json()["circuit"] == {"state": "CLOSED", "openUntil": None, "opens": 0}
    [audit_row] = [a for a in await audit_rows(runtime, tripped_id) if a.action == "endpoint.enabled"]
    assert audit_row.changes["circuitState"] == {"old": "OPEN", "new": "CLOSED"}
    again = await client.post(f"/v1/endpoints/{tripped_id}/enable", headers=admin_headers)
    assert again.status_code == 200  # nothing to recover: no second announcement

    await DeliveryWorker(runtime.db, runtime.keyring, runtime.transport).drain()
    [notice] = messages(receiver, "/ops")
    assert notice["type"] == "endpoint.recovered" and notice["data"]["endpointId"] == tripped_id
    assert notice["data"]["consecutiveFailures"] == 40 and notice["data"]["reason"] == "enabled manually"


# -- SDK and CLI -----------------------------------------------------------------------------------


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


async def cli(server: LiveServer, *args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI in a thread, so the receiver on this event loop keeps answering."""
    return await asyncio.to_thread(run, server, *args, real=real)


async def test_webhook_config_and_ping_through_the_sdk(live_server: LiveServer, receiver: Receiver) -> None:
    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        assert sdk.webhook_config.get().created_at is None
        changed = sdk.webhook_config.update(
            retry_schedule=(30, 300),
            circuit_breaker=CircuitBreakerConfig(failure_threshold=5, window_seconds=30, cooldown_seconds=10),
            retention=RetentionPolicy.DAYS_1,
        )
        assert isinstance(changed, WebhookConfig) and changed.retry_schedule == [30, 300]
        assert changed.circuit_breaker == CircuitBreakerConfig(
            failure_threshold=5, window_seconds=30, cooldown_seconds=10
        )
        assert sdk.webhook_config.update(retry_schedule=None).retry_schedule is None
        with pytest.raises(ValidationError) as bad:
            sdk.webhook_config.update(
                circuit_breaker={"failureThreshold": 1, "windowSeconds": 0, "cooldownSeconds": 1}
            )
        assert [e.field for e in bad.value.errors] == ["circuitBreaker.windowSeconds"]
        hook = sdk.endpoints.create(receiver.script("/sdk"), event_types=["invoice.paid"])
        receiver.secrets["/sdk"] = [sdk.endpoints.get_secret(hook.id).key]
        assert hook.retention is RetentionPolicy.DAYS_1 and hook.circuit.state == "CLOSED"

        reader = sdk.keys.create("reader", ["webhooks:read"])
    with InterlinkClient(live_server.url, reader.key) as read_only:
        assert read_only.webhook_config.get().retention is RetentionPolicy.DAYS_1
        with pytest.raises(PermissionDeniedError):
            read_only.webhook_config.update(disable_after_seconds=600)

    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        result = await asyncio.to_thread(sdk.endpoints.test, hook.id, {"sync": True})
    assert isinstance(result, EndpointTestResult) and result.succeeded
    assert result.status is DeliveryStatus.DELIVERED

    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as client:
        updated = await client.webhook_config.update(
            disable_after_seconds=86_400, default_timeout_seconds=2.5
        )
        assert updated.disable_after_seconds == 86_400 and updated.default_timeout_seconds == 2.5
        assert (await client.webhook_config.get()) == updated
        with pytest.raises(ValidationError) as bad_async:
            await client.webhook_config.update(default_timeout_seconds=0.1)
        assert [e.field for e in bad_async.value.errors] == ["defaultTimeoutSeconds"]
        pinged = await client.endpoints.test(hook.id)
        assert pinged.succeeded and pinged.response_status == 200
    sent = messages(receiver, "/sdk")
    assert [m["type"] for m in sent] == ["webhook.test", "webhook.test"]
    assert sent[0]["data"] == {"sync": True} and sent[1]["data"]["endpointId"] == hook.id


async def test_webhook_config_and_ping_through_the_cli(live_server: LiveServer, receiver: Receiver) -> None:
    shown = await cli(live_server, "webhook-config", "show")
    assert shown.returncode == 0 and "432000" in shown.stdout and "DAYS_30" in shown.stdout

    set_ = await cli(
        live_server, "webhook-config", "set", "--retry", "10", "--retry", "20",
        "--circuit-threshold", "7", "--disable-after", "7200", "--json",
    )  # fmt: skip
    assert set_.returncode == 0, set_.stderr
    body = json.loads(set_.stdout)
    assert body["retrySchedule"] == [10, 20] and body["disableAfterSeconds"] == 7200
    assert body["circuitBreaker"] == {"failureThreshold": 7, "windowSeconds": 60, "cooldownSeconds": 60}

    off = await cli(
        live_server, "webhook-config", "set", "--no-circuit-breaker", "--default-retry", "--json", real=True
    )
    assert off.returncode == 0 and json.loads(off.stdout)["circuitBreaker"] is None
    half = await cli(live_server, "webhook-config", "set", "--circuit-window", "5")
    assert half.returncode == 2 and "circuit breaker is off" in half.stderr
    refused = await cli(live_server, "webhook-config", "set", "--disable-after", "1")
    assert refused.returncode == 1 and "422" in refused.stderr and "disableAfterSeconds" in refused.stderr
    nothing = await cli(live_server, "webhook-config", "set")
    assert nothing.returncode == 2

    made = await cli(live_server, "endpoints", "create", receiver.script("/cli"), "--json")
    endpoint_id = json.loads(made.stdout)["id"]
    secret = await cli(live_server, "endpoints", "secret", endpoint_id, "--json")
    receiver.secrets["/cli"] = [json.loads(secret.stdout)["key"]]
    pinged = await cli(live_server, "endpoints", "test", endpoint_id)
    assert pinged.returncode == 0, pinged.stderr
    assert f"to {endpoint_id}: HTTP 200" in pinged.stdout
    as_json = await cli(live_server, "endpoints", "test", endpoint_id, "--payload", '{"a": 1}', "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["status"] == "DELIVERED"
    assert [m["data"] for m in messages(receiver, "/cli")][1] == {"a": 1}

    receiver.script("/cli", Answer(500))
    failing = await cli(live_server, "endpoints", "test", endpoint_id)
    assert failing.returncode == 1 and "http_5xx" in failing.stdout
    missing = await cli(live_server, "endpoints", "test", "ep_missing")
    assert missing.returncode == 1 and "404" in missing.stderr
