"""Inbound webhooks: sources through the REST API and provider-signed requests to the receiver.

Each scheme gets a request signed the way the provider documents it (Standard Webhooks with the
``standardwebhooks`` package), accepted and fanned out to a real receiver endpoint that verifies
the outgoing Standard Webhooks signature. Refusals answer problem+json with a reason and leave an
``inbound.rejected`` security event; a provider event id is processed once, also under a race.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from interlink.bootstrap import BootstrapResult
from interlink.core import clock, retention
from interlink.core.enums import RetentionPolicy
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.keys.models import SecurityEvent
from interlink.runtime import Runtime
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker
from interlink.webhooks.inbound.models import WebhookInboundReceipt, WebhookInboundSecret
from interlink.webhooks.inbound.receiver import REPLAY_PREFIX
from interlink.webhooks.models import WebhookDelivery, WebhookEvent
from tests.api_helpers import assert_problem
from tests.conftest import make_settings
from tests.receiver import Receiver, receiver_fixture  # noqa: F401  (fixture)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # The in-process client connects from 127.0.0.1, a trusted proxy here (X-Forwarded-For tests).
    return make_settings(
        db_url, tmp_path / "data", allowed_target_networks=["127.0.0.0/8"], trusted_proxies=["127.0.0.1/32"]
    )


@pytest.fixture
async def worker(runtime: Runtime) -> AsyncIterator[DeliveryWorker]:
    config = DeliveryConfig(concurrency=4, batch_size=8, lease_seconds=30, poll_interval=0.05)
    yield DeliveryWorker(runtime.db, runtime.keyring, runtime.transport, config)


async def make_source(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body.setdefault("name", "provider")
    response = await client.post("/v1/inbound-sources", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def subscribe(
    client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver, path: str
) -> None:
    """An endpoint on the receiver for every event type; the receiver verifies what it gets."""
    url = receiver.script(path)
    response = await client.post("/v1/endpoints", json={"url": url}, headers=headers)
    assert response.status_code == 201, response.text
    secret = await client.get(f"/v1/endpoints/{response.json()['id']}/secret", headers=headers)
    receiver.secrets[path] = [secret.json()["key"]]


async def rejections(runtime: Runtime) -> list[SecurityEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(SecurityEvent)
            .where(SecurityEvent.event_type == "inbound.rejected")
            .order_by(SecurityEvent.id)
        )
        return list(rows.all())


async def events_of(runtime: Runtime, source_id: str) -> list[WebhookEvent]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.scalars(
            sa.select(WebhookEvent).where(WebhookEvent.source == f"inbound:{source_id}")
        )
        return list(rows.all())


def now() -> int:
    return int(clock.utcnow().timestamp())


def stripe_headers(secret: str, body: bytes, t: int | None = None) -> dict[str, str]:
    t = now() if t is None else t
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"}


# -- each scheme, end to end -----------------------------------------------------------------------


async def _accept_and_deliver(
    client: httpx.AsyncClient,
    runtime: Runtime,
    worker: DeliveryWorker,
    receiver: Receiver,
    source: dict[str, Any],
    headers: dict[str, str],
    body: bytes,
    expected_type: str,
) -> None:
    response = await client.post(source["receivePath"], content=body, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["eventType"] == expected_type and answer["duplicate"] is False and answer["deliveries"] == 1
    [event] = await events_of(runtime, source["id"])
    assert event.id == answer["eventId"] and event.payload == json.loads(body)
    assert event.meta is not None and event.meta["inbound"]["sourceId"] == source["id"]
    await worker.drain()
    [delivered] = receiver.received("/sink")
    assert delivered.verified is True, delivered.verify_error
    assert delivered.webhook_id == event.id
    assert delivered.json()["type"] == expected_type and delivered.json()["data"] == json.loads(body)


async def test_stripe(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    worker: DeliveryWorker,
    receiver: Receiver,
) -> None:
    await subscribe(client, admin_headers, receiver, "/sink")
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_stripe_issued")
    assert source["signingSecret"]["secret"] == "whsec_stripe_issued"
    assert source["eventType"] == {"from": "body", "field": "type", "prefix": "stripe."}
    body = json.dumps({"id": "evt_1NG8", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}).encode()
    await _accept_and_deliver(
        client,
        runtime,
        worker,
        receiver,
        source,
        stripe_headers("whsec_stripe_issued", body),
        body,
        "stripe.invoice.paid",
    )
    [event] = await events_of(runtime, source["id"])
    assert event.meta is not None and event.meta["inbound"]["providerEventId"] == "evt_1NG8"


async def test_github(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    worker: DeliveryWorker,
    receiver: Receiver,
) -> None:
    await subscribe(client, admin_headers, receiver, "/sink")
    source = await make_source(client, admin_headers, scheme="github", secret="gh-hook-secret")
    body = json.dumps({"action": "opened", "number": 7}).encode()
    headers = {
        "X-Hub-Signature-256": "sha256=" + hmac.new(b"gh-hook-secret", body, hashlib.sha256).hexdigest(),
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "Content-Type": "application/json",
    }
    await _accept_and_deliver(client, runtime, worker, receiver, source, headers, body, "github.pull_request")


async def test_shopify(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    worker: DeliveryWorker,
    receiver: Receiver,
) -> None:
    await subscribe(client, admin_headers, receiver, "/sink")
    source = await make_source(client, admin_headers, scheme="shopify", secret="shpss_app_secret")
    body = json.dumps({"id": 820982911946154508, "email": "jon@example.com"}).encode()
    digest = hmac.new(b"shpss_app_secret", body, hashlib.sha256).digest()
    headers = {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "Content-Type": "application/json",
    }
    await _accept_and_deliver(
        client, runtime, worker, receiver, source, headers, body, "shopify.orders.create"
    )


async def test_standard_webhooks(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    worker: DeliveryWorker,
    receiver: Receiver,
) -> None:
    await subscribe(client, admin_headers, receiver, "/sink")
    source = await make_source(client, admin_headers, scheme="standard")
    secret = source["signingSecret"]["secret"]
    assert secret.startswith("whsec_")  # generated: the sender is configured with it
    body = json.dumps({"type": "user.created", "data": {"id": "u1"}}).encode()
    signature = Webhook(secret).sign("msg_2Kx", clock.utcnow(), body.decode())
    headers = {
        "webhook-id": "msg_2Kx",
        "webhook-timestamp": str(now()),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    await _accept_and_deliver(client, runtime, worker, receiver, source, headers, body, "user.created")


async def test_generic_hmac(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    worker: DeliveryWorker,
    receiver: Receiver,
) -> None:
    await subscribe(client, admin_headers, receiver, "/sink")
    source = await make_source(
        client,
        admin_headers,
        scheme="hmac",
        secret="acme-secret",
        schemeOptions={
            "header": "X-Acme-Signature",
            "algorithm": "sha512",
            "encoding": "base64",
            "timestampHeader": "X-Acme-Timestamp",
            "signedContent": "timestamp.body",
        },
        eventType={"from": "body", "field": "event.name", "prefix": "acme."},
        dedupe={"from": "body", "field": "event.id"},
    )
    body = json.dumps({"event": {"name": "shipment.sent", "id": "e-9"}}).encode()
    t = now()
    digest = hmac.new(b"acme-secret", f"{t}.".encode() + body, hashlib.sha512).digest()
    headers = {"X-Acme-Signature": base64.b64encode(digest).decode(), "X-Acme-Timestamp": str(t)}
    await _accept_and_deliver(client, runtime, worker, receiver, source, headers, body, "acme.shipment.sent")


# -- refusals ---------------------------------------------------------------------------------------


async def test_refusals_answer_with_a_reason_and_a_security_event(
    client: httpx.AsyncClient, admin_headers: dict[str, str], admin: BootstrapResult, runtime: Runtime
) -> None:
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_s", maxBodyBytes=200)
    path = source["receivePath"]
    body = json.dumps({"id": "evt_1", "type": "charge.succeeded"}).encode()

    bad = await client.post(path, content=body, headers=stripe_headers("whsec_wrong", body))
    assert_problem(bad, 401, "bad_signature")
    old = await client.post(path, content=body, headers=stripe_headers("whsec_s", body, now() - 301))
    assert_problem(old, 401, "timestamp_out_of_tolerance")
    missing = await client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert_problem(missing, 401, "missing_signature")
    garbled = await client.post(path, content=body, headers={"Stripe-Signature": "nonsense"})
    assert_problem(garbled, 401, "malformed_header")
    big = json.dumps({"id": "evt_2", "type": "x", "pad": "p" * 300}).encode()
    too_large = await client.post(path, content=big, headers=stripe_headers("whsec_s", big))
    assert_problem(too_large, 413, "body_too_large")
    unknown = await client.post("/v1/inbound/isrc_01HZZZZZZZZZZZZZZZZZZZZZZZ", content=body)
    assert_problem(unknown, 404, "unknown_source")

    assert await events_of(runtime, source["id"]) == []
    found = await rejections(runtime)
    assert [e.reason for e in found] == [
        "bad_signature",
        "timestamp_out_of_tolerance",
        "missing_signature",
        "malformed_header",
        "body_too_large",
        "unknown_source",
    ]
    assert all(e.source_ip == "127.0.0.1" for e in found)
    assert [e.tenant_id for e in found] == [admin.tenant_id] * 5 + [None]
    assert found[0].details["sourceId"] == source["id"]
    # tenants see their own refusals
    listed = await client.get(
        "/v1/security-events", params={"eventType": "inbound.rejected"}, headers=admin_headers
    )
    assert listed.status_code == 200 and len(listed.json()["data"]) >= 5


async def test_disabled_and_deleted_sources_are_unknown(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_s", enabled=False)
    body = b'{"id":"evt_1","type":"a"}'
    response = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert_problem(response, 404, "unknown_source")
    enabled = await client.patch(
        f"/v1/inbound-sources/{source['id']}", json={"enabled": True}, headers=admin_headers
    )
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    response = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert response.status_code == 200, response.text
    deleted = await client.delete(f"/v1/inbound-sources/{source['id']}", headers=admin_headers)
    assert deleted.status_code == 204
    response = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert_problem(response, 404, "unknown_source")
    assert (await client.get(f"/v1/inbound-sources/{source['id']}", headers=admin_headers)).status_code == 404


async def test_ip_allowlist_honours_trusted_proxies(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    source = await make_source(
        client, admin_headers, scheme="stripe", secret="whsec_s", ipAllowlist=["203.0.113.0/24"]
    )
    assert source["ipAllowlist"] == ["203.0.113.0/24"]
    body = b'{"id":"evt_ip","type":"a"}'
    direct = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert_problem(direct, 403, "ip_not_allowed")
    elsewhere = await client.post(
        source["receivePath"],
        content=body,
        headers={**stripe_headers("whsec_s", body), "X-Forwarded-For": "198.51.100.7"},
    )
    assert_problem(elsewhere, 403, "ip_not_allowed")
    allowed = await client.post(
        source["receivePath"],
        content=body,
        headers={**stripe_headers("whsec_s", body), "X-Forwarded-For": "203.0.113.9"},
    )
    assert allowed.status_code == 200, allowed.text
    assert [(e.reason, e.source_ip) for e in await rejections(runtime)] == [
        ("ip_not_allowed", "127.0.0.1"),
        ("ip_not_allowed", "198.51.100.7"),
    ]
    # An IPv4 client seen as an IPv4-mapped IPv6 address (a server or proxy listening on ::).
    body = b'{"id":"evt_ip6","type":"a"}'
    mapped = await client.post(
        source["receivePath"],
        content=body,
        headers={**stripe_headers("whsec_s", body), "X-Forwarded-For": "::ffff:203.0.113.10"},
    )
    assert mapped.status_code == 200, mapped.text
    body = b'{"id":"evt_ip7","type":"a"}'
    mapped_elsewhere = await client.post(
        source["receivePath"],
        content=body,
        headers={**stripe_headers("whsec_s", body), "X-Forwarded-For": "::ffff:198.51.100.7"},
    )
    assert_problem(mapped_elsewhere, 403, "ip_not_allowed")


async def test_unattributed_flood_costs_bounded_writes(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    for _ in range(25):
        response = await client.post("/v1/inbound/isrc_01HZZZZZZZZZZZZZZZZZZZZZZZ", content=b"{}")
        assert_problem(response, 404, "unknown_source")
    assert len(await rejections(runtime)) == 10  # UNATTRIBUTED_EVENTS_PER_MINUTE per source IP


# -- dedupe -----------------------------------------------------------------------------------------


async def test_a_repeated_provider_event_is_processed_once(
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
    runtime: Runtime,
    worker: DeliveryWorker,
    receiver: Receiver,
) -> None:
    await subscribe(client, admin_headers, receiver, "/sink")
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_s")
    body = b'{"id":"evt_same","type":"invoice.paid"}'
    first = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    clock.shift(timedelta(seconds=30))  # a provider retry, signed again later
    again = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert first.status_code == again.status_code == 200
    assert first.json()["duplicate"] is False and again.json()["duplicate"] is True
    assert again.json()["eventId"] == first.json()["eventId"] and again.json()["deliveries"] == 0
    assert len(await events_of(runtime, source["id"])) == 1
    await worker.drain()
    assert len(receiver.received("/sink")) == 1


async def test_concurrent_duplicates_are_processed_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime, receiver: Receiver
) -> None:
    await subscribe(client, admin_headers, receiver, "/sink")
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_s")
    body = b'{"id":"evt_race","type":"invoice.paid"}'
    headers = stripe_headers("whsec_s", body)
    answers = await asyncio.gather(
        *(client.post(source["receivePath"], content=body, headers=headers) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert len({a.json()["eventId"] for a in answers}) == 1
    assert sorted(a.json()["duplicate"] for a in answers) == [False, True, True, True]
    assert len(await events_of(runtime, source["id"])) == 1
    async with runtime.db.unit_of_work(write=False) as session:
        receipts = (await session.scalars(sa.select(WebhookInboundReceipt))).all()
        delivery_count = await session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery))
    # One receipt for the provider's event id, one for what the signature covered.
    assert sorted(r.dedupe_key[:14] for r in receipts) == ["evt_race", REPLAY_PREFIX]
    assert {r.event_id for r in receipts} == {answers[0].json()["eventId"]}
    assert delivery_count == 1


async def test_a_replayed_request_is_a_duplicate_whatever_its_unsigned_headers(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    """GitHub signs only the body: a captured request sent again with a new X-GitHub-Delivery is
    the same event. A Standard Webhooks message with the same body but its own signed id is not."""
    github = await make_source(client, admin_headers, scheme="github", secret="gh-secret")
    body = json.dumps({"action": "opened", "number": 8}).encode()
    signature = "sha256=" + hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
    answers = []
    for delivery in ("d-1", "d-2-forged"):
        headers = {
            "X-Hub-Signature-256": signature,
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": delivery,
        }
        answers.append(await client.post(github["receivePath"], content=body, headers=headers))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert [a.json()["duplicate"] for a in answers] == [False, True]
    assert answers[1].json()["eventId"] == answers[0].json()["eventId"]
    assert len(await events_of(runtime, github["id"])) == 1

    hmac_source = await make_source(
        client, admin_headers, scheme="hmac", secret="s3", schemeOptions={"header": "X-Sig"}, dedupe=None
    )
    signed = {"X-Sig": hmac.new(b"s3", body, hashlib.sha256).hexdigest()}
    first = await client.post(hmac_source["receivePath"], content=body, headers=signed)
    again = await client.post(hmac_source["receivePath"], content=body, headers=signed)
    assert (first.json()["duplicate"], again.json()["duplicate"]) == (False, True)

    standard = await make_source(client, admin_headers, scheme="standard")
    webhook = Webhook(standard["signingSecret"]["secret"])
    text = json.dumps({"type": "user.pinged"})
    distinct = []
    for message_id in ("msg_a", "msg_b", "msg_a"):
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(now()),
            "webhook-signature": webhook.sign(message_id, clock.utcnow(), text),
        }
        distinct.append(await client.post(standard["receivePath"], content=text, headers=headers))
    assert [a.json()["duplicate"] for a in distinct] == [False, False, True]
    assert len(await events_of(runtime, standard["id"])) == 2


async def test_receipts_are_purged_after_their_retention(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_s")
    body = b'{"id":"evt_old","type":"invoice.paid"}'
    first = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert first.json()["duplicate"] is False
    kept = await retention.purge(
        runtime.db, RetentionPolicy.FOREVER, RetentionPolicy.FOREVER, inbound_receipt_days=90
    )
    assert kept.inbound_receipts == {}
    clock.shift(timedelta(days=91))
    purged = await retention.purge(
        runtime.db, RetentionPolicy.FOREVER, RetentionPolicy.FOREVER, inbound_receipt_days=90
    )
    [event] = await events_of(runtime, source["id"])
    assert purged.inbound_receipts == {event.tenant_id: 2}  # the event id and the signed content
    async with runtime.db.unit_of_work(write=False) as session:
        left = await session.scalar(sa.select(sa.func.count()).select_from(WebhookInboundReceipt))
        audits = (
            await session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "retention.purged"))
        ).all()
    assert left == 0
    assert audits[-1].changes["inboundReceipts"]["new"] == 2
    assert audits[-1].changes["inboundReceiptRetentionDays"]["new"] == 90
    again = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert again.json()["duplicate"] is False  # remembered no longer: taken as new
    assert runtime.settings.inbound_receipt_retention_days == 90
    with pytest.raises(ValueError, match="greater than or equal to 7"):
        Settings(inbound_receipt_retention_days=1)


async def test_missing_provider_event_id_is_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_s")
    body = b'{"type":"invoice.paid"}'
    response = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert_problem(response, 422, "missing_event_id")
    not_json = b"type=invoice.paid"
    response = await client.post(
        source["receivePath"], content=not_json, headers=stripe_headers("whsec_s", not_json)
    )
    assert_problem(response, 422, "malformed_body")
    schema = {"type": "object", "required": ["amount"]}
    registered = await client.post(
        "/v1/event-types", json={"name": "stripe.invoice.paid", "schema": schema}, headers=admin_headers
    )
    assert registered.status_code == 201, registered.text
    body = b'{"id":"evt_s","type":"invoice.paid"}'
    response = await client.post(source["receivePath"], content=body, headers=stripe_headers("whsec_s", body))
    assert_problem(response, 422, "payload_invalid")
    assert [e.reason for e in await rejections(runtime)] == [
        "missing_event_id",
        "malformed_body",
        "payload_invalid",
    ]
    async with runtime.db.unit_of_work(write=False) as session:
        assert (await session.scalars(sa.select(WebhookInboundReceipt))).all() == []  # rolled back with it


async def test_deeply_nested_bodies_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_s")

    def nested(event_id: str, depth: int) -> bytes:  # the object itself is level 1
        arrays = depth - 1
        return b'{"id":"%s","type":"deep","d":%s%s}' % (event_id.encode(), b"[" * arrays, b"]" * arrays)

    deepest = nested("evt_100", 100)
    accepted = await client.post(
        source["receivePath"], content=deepest, headers=stripe_headers("whsec_s", deepest)
    )
    assert accepted.status_code == 200, accepted.text
    read = await client.get(f"/v1/events/{accepted.json()['eventId']}", headers=admin_headers)
    assert read.status_code == 200, read.text
    for event_id, depth in (("evt_101", 101), ("evt_900", 900), ("evt_50000", 50_000)):
        body = nested(event_id, depth)
        refused = await client.post(
            source["receivePath"], content=body, headers=stripe_headers("whsec_s", body)
        )
        problem = assert_problem(refused, 422, "malformed_body")
        assert "100 levels" in problem["detail"]
    assert len(await events_of(runtime, source["id"])) == 1
    assert [e.reason for e in await rejections(runtime)] == ["malformed_body"] * 3
    listed = await client.get("/v1/events", headers=admin_headers)
    assert listed.status_code == 200, listed.text


# -- configuration --------------------------------------------------------------------------------------


async def test_source_crud_rotation_and_audit(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    source = await make_source(client, admin_headers, scheme="stripe", secret="whsec_first")
    source_id = source["id"]
    assert (
        "signingSecret"
        not in (await client.get(f"/v1/inbound-sources/{source_id}", headers=admin_headers)).json()
    )
    listed = await client.get("/v1/inbound-sources", headers=admin_headers)
    assert [s["id"] for s in listed.json()["data"]] == [source_id]

    rotated = await client.post(
        f"/v1/inbound-sources/{source_id}/secret/rotate",
        json={"secret": "whsec_second"},
        headers=admin_headers,
    )
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["secret"] == "whsec_second" and rotated.json()["previousExpiresAt"] is not None
    body = b'{"id":"evt_r1","type":"a"}'
    # during the overlap both secrets verify
    for secret, event_id in (("whsec_first", "evt_r1"), ("whsec_second", "evt_r2")):
        payload = body.replace(b"evt_r1", event_id.encode())
        response = await client.post(
            source["receivePath"], content=payload, headers=stripe_headers(secret, payload)
        )
        assert response.status_code == 200, response.text
    clock.shift(timedelta(hours=25))
    payload = b'{"id":"evt_r3","type":"a"}'
    response = await client.post(
        source["receivePath"], content=payload, headers=stripe_headers("whsec_first", payload)
    )
    assert_problem(response, 401, "bad_signature")

    # secrets are stored encrypted
    async with runtime.db.unit_of_work(write=False) as session:
        stored = (await session.scalars(sa.select(WebhookInboundSecret.ciphertext))).all()
    assert len(stored) == 2 and not any("whsec_" in c for c in stored)

    updated = await client.patch(
        f"/v1/inbound-sources/{source_id}",
        json={"toleranceSeconds": 60, "eventType": {"from": "body", "field": "type", "prefix": "billing."}},
        headers=admin_headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["toleranceSeconds"] == 60 and updated.json()["eventType"]["prefix"] == "billing."
    assert (await client.delete(f"/v1/inbound-sources/{source_id}", headers=admin_headers)).status_code == 204

    async with runtime.db.unit_of_work(write=False) as session:
        rows = (
            await session.scalars(
                sa.select(AuditEvent).where(AuditEvent.resource_id == source_id).order_by(AuditEvent.id)
            )
        ).all()
    assert [r.action for r in rows] == [
        "inbound_source.created",
        "inbound_source.secret_rotated",
        "inbound_source.updated",
        "inbound_source.deleted",
    ]
    assert not any("whsec_" in json.dumps(r.changes) for r in rows)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scheme": "nope"}, "scheme"),
        ({"scheme": "hmac"}, "schemeOptions.header"),
        ({"scheme": "stripe", "schemeOptions": {"header": "X"}}, "schemeOptions.header"),
        ({"scheme": "stripe", "ipAllowlist": ["10.0.0.0/33"]}, "ipAllowlist.0"),
        ({"scheme": "standard", "secret": "not-a-whsec"}, "secret"),
        ({"scheme": "stripe", "connectionId": "con_01HZZZZZZZZZZZZZZZZZZZZZZZ"}, "connectionId"),
        ({"scheme": "stripe", "maxBodyBytes": 10**9}, "maxBodyBytes"),
        ({"scheme": "stripe", "dedupe": {"from": "fixed", "field": "x"}}, "dedupe.from"),
    ],
)
async def test_bad_sources_are_422_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await client.post("/v1/inbound-sources", json={"name": "x", **body}, headers=admin_headers)
    problem = assert_problem(response, 422)
    assert field in [e["field"] for e in problem["errors"]], problem


async def test_ids_that_are_not_source_ids_are_404(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    # A NUL character cannot even be compared with a column on PostgreSQL: still a plain 404.
    for bad in ("%00", "isrc_%00", "nope"):
        path = f"/v1/inbound-sources/{bad}"
        assert_problem(await client.get(path, headers=admin_headers), 404)
        assert_problem(await client.patch(path, json={"name": "n"}, headers=admin_headers), 404)
        assert_problem(await client.delete(path, headers=admin_headers), 404)
        assert_problem(await client.post(f"{path}/secret/rotate", headers=admin_headers), 404)
        assert_problem(await client.post(f"/v1/inbound/{bad}", content=b"{}"), 404, "unknown_source")


async def test_a_long_bad_range_is_not_echoed_whole(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    body = {"name": "x", "scheme": "stripe", "ipAllowlist": ["10.0.0.0/8", "a" * 5000]}
    problem = assert_problem(await client.post("/v1/inbound-sources", json=body, headers=admin_headers), 422)
    assert [e["field"] for e in problem["errors"]] == ["ipAllowlist.1"] and len(problem["detail"]) < 200


async def test_scopes(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    made = await client.post(
        "/v1/keys", json={"name": "r", "scopes": ["webhooks:read"]}, headers=admin_headers
    )
    reader = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await client.get("/v1/inbound-sources", headers=reader)).status_code == 200
    refused = await client.post("/v1/inbound-sources", json={"name": "x", "scheme": "github"}, headers=reader)
    assert_problem(refused, 403, "insufficient_scope")


async def test_master_key_rotation_reencrypts_source_secrets(db_url: str, tmp_path: Path) -> None:
    """After ``rotate-master-key`` the old master key can go and the source still verifies."""
    from interlink.core.actor import system_actor
    from interlink.core.crypto import generate_master_key
    from interlink.core.secrets import count_by_key_id, reencrypt_all
    from interlink.core.tenancy import create_tenant
    from interlink.encrypted_columns import ENCRYPTED_COLUMNS
    from interlink.webhooks.inbound.sources import InboundSources, SourceSpec, load_for_receiver

    k1, k2 = generate_master_key("k1"), generate_master_key("k2")
    old = Runtime(make_settings(db_url, tmp_path, master_keys=k1))
    try:
        async with old.db.unit_of_work() as session:
            tenant = await create_tenant(session, system_actor("ten_bootstrap"), "A")
        async with old.db.unit_of_work() as session:
            row, _ = await InboundSources(old.keyring, 1_000_000).create(
                session, system_actor(tenant.id), SourceSpec(name="s", scheme="github", secret="gh-secret")
            )
    finally:
        await old.stop()
    both = Runtime(make_settings(db_url, tmp_path, master_keys=f"{k2},{k1}"))
    try:
        result = await reencrypt_all(both, columns=ENCRYPTED_COLUMNS)
        assert (result.reencrypted, result.remaining, result.failed) == (1, 0, [])
    finally:
        await both.stop()
    new_only = Runtime(make_settings(db_url, tmp_path, master_keys=k2))
    try:
        async with new_only.db.unit_of_work(write=False) as session:
            loaded = await load_for_receiver(session, new_only.keyring, row.id)
            assert await count_by_key_id(session, ENCRYPTED_COLUMNS) == {"k2": 1}
        assert loaded is not None and loaded.secrets == ["gh-secret"]
    finally:
        await new_only.stop()


async def test_connection_must_belong_to_the_tenant(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    connection = {
        "providerKey": "zendesk",
        "name": "support desk",
        "authType": "BASIC",
        "config": {"subdomain": "acme"},
        "credentials": {"username": "agent@acme.example", "password": "zd-password"},
    }
    made = await client.post("/v1/connections", json=connection, headers=admin_headers)
    assert made.status_code == 201, made.text
    connection_id = made.json()["id"]
    source = await make_source(
        client, admin_headers, scheme="hmac", schemeOptions={"header": "X-Sig"}, connectionId=connection_id
    )
    assert source["connectionId"] == connection_id
    other = await client.post("/v1/tenants", json={"name": "Other"}, headers=admin_headers)
    as_other = {**admin_headers, "X-Tenant-Id": other.json()["id"]}
    refused = await client.post(
        "/v1/inbound-sources",
        json={"name": "x", "scheme": "github", "connectionId": connection_id},
        headers=as_other,
    )
    assert "connectionId" in [e["field"] for e in assert_problem(refused, 422)["errors"]]
    body = b'{"n":1}'
    signature = hmac.new(source["signingSecret"]["secret"].encode(), body, hashlib.sha256).hexdigest()
    accepted = await client.post(source["receivePath"], content=body, headers={"X-Sig": signature})
    assert accepted.status_code == 200, accepted.text
    [event] = await events_of(runtime, source["id"])
    assert event.event_type == "inbound.received"
    assert event.meta is not None and event.meta["inbound"]["connectionId"] == connection_id
