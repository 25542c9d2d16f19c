"""Ingest over REST: fan-out in one transaction, idempotency, batches, schemas, the delivery log."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from interlink.webhooks.delivery import DeliveryWorker
from interlink.webhooks.models import WebhookDelivery, WebhookEvent
from tests.conftest import auth, make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)

LOCAL = ["127.0.0.0/8"]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=LOCAL)


async def endpoint(client: httpx.AsyncClient, headers: dict[str, str], url: str, **fields: Any) -> str:
    response = await client.post("/v1/endpoints", json={"url": url, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def count(runtime: Runtime, model: Any) -> int:
    async with runtime.db.unit_of_work(write=False) as session:
        return int(await session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


async def test_an_event_fans_out_to_matching_endpoints(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    url = receiver.script("/hook", Answer(200))
    everything = await endpoint(client, admin_headers, url)
    invoices = await endpoint(client, admin_headers, url, eventTypes=["invoice.paid"])
    big = await endpoint(client, admin_headers, url, filter={"payload.amount": {"$gte": 100}})
    by_region = await endpoint(client, admin_headers, url, filter={"metadata.region": "eu"})
    disabled = await endpoint(client, admin_headers, url)
    off = await client.post(
        f"/v1/endpoints/{disabled}/disable", json={"reason": "paused"}, headers=admin_headers
    )
    assert off.status_code == 200, off.text

    response = await client.post(
        "/v1/events",
        json={
            "type": "invoice.paid",
            "payload": {"amount": 50},
            "metadata": {"region": "eu"},
            "priority": "HIGH",
        },
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["id"].startswith("evt_") and event["created"] is True and event["priority"] == "HIGH"
    assert {d["endpointId"] for d in event["deliveries"]} == {everything, invoices, by_region}
    assert {d["status"] for d in event["deliveries"]} == {"PENDING"}

    other = await client.post(
        "/v1/events", json={"type": "user.created", "payload": {"amount": 500}}, headers=admin_headers
    )
    assert {d["endpointId"] for d in other.json()["deliveries"]} == {everything, big}

    only = await client.post(
        "/v1/events",
        json={"type": "invoice.paid", "payload": {"amount": 500}, "endpointIds": [big, invoices]},
        headers=admin_headers,
    )
    assert {d["endpointId"] for d in only.json()["deliveries"]} == {big, invoices}

    shown = await client.get(f"/v1/events/{event['id']}", headers=admin_headers)
    assert shown.status_code == 200
    assert shown.json()["metadata"] == {"region": "eu"} and len(shown.json()["deliveries"]) == 3
    audit_rows = await client.get(
        "/v1/audit-events", params={"resourceId": event["id"]}, headers=admin_headers
    )
    assert [a["action"] for a in audit_rows.json()["data"]] == ["event.created"]


async def test_idempotency_key_returns_the_first_event(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    await endpoint(client, admin_headers, receiver.script("/hook"))
    body = {"type": "order.shipped", "payload": {"id": 1}, "idempotencyKey": "order-1-shipped"}
    first = await client.post("/v1/events", json=body, headers=admin_headers)
    again = await client.post("/v1/events", json={**body, "payload": {"id": 2}}, headers=admin_headers)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["created"] is False
    assert again.json()["payload"] == {"id": 1}
    assert await count(runtime, WebhookEvent) == 1 and await count(runtime, WebhookDelivery) == 1

    # Concurrent duplicates: one event, every caller gets it.
    racing = {**body, "idempotencyKey": "race"}
    answers = await asyncio.gather(
        *(client.post("/v1/events", json=racing, headers=admin_headers) for _ in range(6))
    )
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await count(runtime, WebhookEvent) == 2 and await count(runtime, WebhookDelivery) == 2

    # After 24 hours the key is free again.
    clock.shift(timedelta(hours=24, seconds=1))
    later = await client.post("/v1/events", json=body, headers=admin_headers)
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]


async def test_a_batch_is_all_or_nothing(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    await endpoint(client, admin_headers, receiver.script("/hook"))
    made = await client.post(
        "/v1/event-types",
        json={
            "name": "invoice.paid",
            "schema": {
                "type": "object",
                "required": ["amount"],
                "properties": {"amount": {"type": "integer"}},
            },
        },
        headers=admin_headers,
    )
    assert made.status_code == 201, made.text
    bad = await client.post(
        "/v1/events/batch",
        json={
            "events": [
                {"type": "invoice.paid", "payload": {"amount": 1}},
                {"type": "invoice.paid", "payload": {"amount": "lots"}},
            ]
        },
        headers=admin_headers,
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["errors"][0]["field"].startswith("events.1.payload")
    assert await count(runtime, WebhookEvent) == 0 and await count(runtime, WebhookDelivery) == 0

    single = await client.post(
        "/v1/events", json={"type": "invoice.paid", "payload": {}}, headers=admin_headers
    )
    assert single.status_code == 422 and single.json()["errors"][0]["field"] == "payload"

    events = [
        {"type": "invoice.paid", "payload": {"amount": n}, "idempotencyKey": f"k{n}"} for n in range(100)
    ]
    good = await client.post("/v1/events/batch", json={"events": events}, headers=admin_headers)
    assert good.status_code == 201, good.text
    assert len(good.json()["data"]) == 100 and all(e["created"] for e in good.json()["data"])
    assert await count(runtime, WebhookEvent) == 100 and await count(runtime, WebhookDelivery) == 100

    too_many = await client.post(
        "/v1/events/batch", json={"events": [*events, events[0]]}, headers=admin_headers
    )
    assert too_many.status_code == 422

    listed = await client.get(
        "/v1/events", params={"type": "invoice.paid", "limit": 60}, headers=admin_headers
    )
    page = listed.json()
    assert len(page["data"]) == 60 and page["hasMore"] is True
    rest = await client.get(
        "/v1/events",
        params={"type": "invoice.paid", "limit": 60, "after": page["nextCursor"]},
        headers=admin_headers,
    )
    assert len(rest.json()["data"]) == 40 and rest.json()["hasMore"] is False
    ids = [e["id"] for e in page["data"] + rest.json()["data"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 100
    none = await client.get("/v1/events", params={"type": "other"}, headers=admin_headers)
    assert none.json()["data"] == []


async def test_endpoint_ids_must_belong_to_the_tenant(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    other = await client.post("/v1/tenants", json={"name": "Other"}, headers=admin_headers)
    theirs = await endpoint(client, auth(admin.key, other.json()["id"]), receiver.script("/theirs"))
    response = await client.post(
        "/v1/events", json={"type": "a.b", "payload": {}, "endpointIds": [theirs]}, headers=admin_headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "endpointIds"
    assert theirs in response.text  # names the id it was given, nothing about the other tenant
    assert other.json()["id"] not in response.text


async def test_delivery_log_attempts_and_manual_retry(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    url = receiver.script("/hook", Answer(503, body="down"), Answer(200))
    endpoint_id = await endpoint(client, admin_headers, url, retrySchedule=[3600])
    event = (
        await client.post("/v1/events", json={"type": "a.b", "payload": {}}, headers=admin_headers)
    ).json()
    worker = DeliveryWorker(runtime.db, runtime.keyring, runtime.transport)
    await worker.drain()

    listed = await client.get(
        "/v1/deliveries", params={"eventId": event["id"], "status": "RETRYING"}, headers=admin_headers
    )
    [delivery] = listed.json()["data"]
    assert delivery["endpointId"] == endpoint_id and delivery["lastStatusCode"] == 503
    assert delivery["lastErrorClass"] == "http_5xx" and delivery["attempts"] == 1
    for params in (
        {"status": "DELIVERED"},
        {"endpointId": "ep_01HZZZZZZZZZZZZZZZZZZZZZZZ"},
        {"since": "2099-01-01T00:00:00Z"},
    ):
        assert (await client.get("/v1/deliveries", params=params, headers=admin_headers)).json()["data"] == []
    tries = await client.get(f"/v1/deliveries/{delivery['id']}/attempts", headers=admin_headers)
    [attempt] = tries.json()["data"]
    assert attempt["responseStatus"] == 503 and attempt["responseBody"] == "down"
    assert attempt["requestHeaders"]["webhook-id"] == event["id"]

    retried = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=admin_headers)
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "RETRYING"
    await worker.drain()  # due now, not in an hour
    shown = await client.get(f"/v1/deliveries/{delivery['id']}", headers=admin_headers)
    assert shown.json()["status"] == "DELIVERED" and shown.json()["attempts"] == 2
    async with runtime.db.unit_of_work(write=False) as session:
        actions = (
            await session.scalars(
                sa.select(AuditEvent.action).where(AuditEvent.resource_id == delivery["id"])
            )
        ).all()
    assert list(actions) == ["delivery.retried"]

    await client.post(f"/v1/endpoints/{endpoint_id}/disable", json={"reason": "x"}, headers=admin_headers)
    refused = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=admin_headers)
    assert refused.status_code == 409
    missing = await client.get("/v1/deliveries/del_01HZZZZZZZZZZZZZZZZZZZZZZZ", headers=admin_headers)
    assert missing.status_code == 404


async def test_immediate_makes_the_first_attempt_before_answering(
    client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: Receiver
) -> None:
    ok = await endpoint(client, admin_headers, receiver.script("/ok", Answer(200)))
    down = await endpoint(client, admin_headers, receiver.script("/down", Answer(500)))
    response = await client.post(
        "/v1/events", json={"type": "a.b", "payload": {}, "immediate": True}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    statuses = {d["endpointId"]: d["status"] for d in response.json()["deliveries"]}
    assert statuses == {ok: "DELIVERED", down: "RETRYING"}
    assert len(receiver.received("/ok")) == 1 and len(receiver.received("/down")) == 1


async def test_deleting_an_endpoint_cancels_what_waits_for_it(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime
) -> None:
    headers = auth(admin.key)
    doomed = await endpoint(client, headers, "http://127.0.0.1:9/doomed")
    kept = await endpoint(client, headers, "http://127.0.0.1:9/kept")
    sent = await client.post(
        "/v1/events", json={"type": "order.created", "payload": {"n": 1}}, headers=headers
    )
    assert sent.status_code == 201, sent.text

    deleted = await client.delete(f"/v1/endpoints/{doomed}", headers=headers)
    assert deleted.status_code == 204, deleted.text
    async with runtime.db.unit_of_work(write=False) as session:
        rows = (await session.execute(sa.select(WebhookDelivery.endpoint_id, WebhookDelivery.status))).all()
    statuses = {endpoint_id: status.value for endpoint_id, status in rows}
    assert statuses == {doomed: "CANCELLED", kept: "PENDING"}
    trail = await client.get("/v1/audit-events", params={"action": "endpoint.deleted"}, headers=headers)
    assert trail.json()["data"][0]["changes"]["cancelledDeliveries"]["new"] == 1


async def test_immediate_falls_back_to_the_queue_after_the_hold(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import interlink.http.routers.webhooks_events as events_router

    async def unavailable(*_args: Any, **_kwargs: Any) -> list[Any]:
        raise ConnectionError("transport unavailable")

    monkeypatch.setattr(events_router, "deliver_now", unavailable)
    ok = await endpoint(client, admin_headers, receiver.script("/later", Answer(200)))
    response = await client.post(
        "/v1/events", json={"type": "a.b", "payload": {}, "immediate": True}, headers=admin_headers
    )
    assert response.status_code == 201, response.text
    [delivery] = response.json()["deliveries"]
    assert delivery["status"] == "PENDING"

    worker = DeliveryWorker(runtime.db, runtime.keyring, runtime.transport)
    await worker.drain()
    assert receiver.received("/later") == []  # held back while the request could still send it
    clock.shift(timedelta(seconds=31))
    await worker.drain()
    assert len(receiver.received("/later")) == 1
    async with runtime.db.unit_of_work(write=False) as session:
        row = await session.get(WebhookDelivery, delivery["id"])
    assert row is not None and row.endpoint_id == ok and row.status.value == "DELIVERED"
