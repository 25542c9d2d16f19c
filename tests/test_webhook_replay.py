"""Replays over REST, the SDK and the CLI, on SQLite and PostgreSQL, against a real receiver.

Every request the receiver gets is verified with the ``standardwebhooks`` package; a replayed
delivery carries the same ``webhook-id`` (the event id) as the original.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.client import (
    AsyncInterlinkClient,
    ConflictError,
    InterlinkClient,
    NotFoundError,
    ValidationError,
)
from interlink.core import clock
from interlink.core.enums import DeliveryStatus
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from interlink.webhooks import delivery as engine
from interlink.webhooks import replay
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker
from interlink.webhooks.models import WebhookDelivery
from tests.api_helpers import assert_problem, make_tenant
from tests.conftest import LiveServer, auth, make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)
from tests.test_webhook_events_sdk import cli, cli_json, eventually

LOCAL = ["127.0.0.0/8"]
UNKNOWN = {"del": "del_01HZZZZZZZZZZZZZZZZZZZZZZZ", "evt": "evt_01HZZZZZZZZZZZZZZZZZZZZZZZ"}
UNKNOWN_EP = "ep_01HZZZZZZZZZZZZZZZZZZZZZZZ"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=LOCAL)


@pytest.fixture
def live_server_settings_overrides() -> dict[str, object]:
    return {"allowed_target_networks": LOCAL}


@pytest.fixture
async def worker(runtime: Runtime) -> AsyncIterator[DeliveryWorker]:
    config = DeliveryConfig(concurrency=8, batch_size=8, lease_seconds=30, poll_interval=0.05)
    yield DeliveryWorker(runtime.db, runtime.keyring, runtime.transport, config)


class Api:
    """REST calls of one tenant, with the receiver verifying every endpoint's signatures."""

    def __init__(self, client: httpx.AsyncClient, headers: dict[str, str], receiver: Receiver) -> None:
        self.client, self.headers, self.receiver = client, headers, receiver

    async def endpoint(self, path: str, *answers: Answer, **fields: Any) -> str:
        url = self.receiver.script(path, *answers)
        made = await self.client.post("/v1/endpoints", json={"url": url, **fields}, headers=self.headers)
        assert made.status_code == 201, made.text
        secret = await self.client.get(f"/v1/endpoints/{made.json()['id']}/secret", headers=self.headers)
        assert secret.status_code == 200, secret.text
        self.receiver.secrets[path] = [secret.json()["key"]]
        return str(made.json()["id"])

    async def event(self, event_type: str = "invoice.paid", **body: Any) -> dict[str, Any]:
        body.setdefault("payload", {"n": 1})
        sent = await self.client.post("/v1/events", json={"type": event_type, **body}, headers=self.headers)
        assert sent.status_code == 201, sent.text
        event: dict[str, Any] = sent.json()
        return event

    async def replay(self, status: int = 201, **body: Any) -> dict[str, Any]:
        made = await self.client.post("/v1/replays", json=body, headers=self.headers)
        assert made.status_code == status, made.text
        result: dict[str, Any] = made.json()
        return result

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        got = await self.client.get(f"/v1/deliveries/{delivery_id}", headers=self.headers)
        assert got.status_code == 200, got.text
        result: dict[str, Any] = got.json()
        return result


@pytest.fixture
def api(client: httpx.AsyncClient, admin_headers: dict[str, str], receiver: Receiver) -> Api:
    return Api(client, admin_headers, receiver)


def verified_ids(receiver: Receiver, path: str) -> list[str]:
    """``webhook-id`` of every request to ``path``, after checking each signature."""
    got = receiver.received(path)
    assert all(r.verified is True for r in got), [r.verify_error for r in got]
    return [r.webhook_id for r in got]


async def rows(runtime: Runtime, **where: Any) -> dict[str, WebhookDelivery]:
    async with runtime.db.unit_of_work(write=False) as session:
        found = await session.scalars(sa.select(WebhookDelivery).filter_by(**where))
        return {d.id: d for d in found.all()}


# -- the three forms ---------------------------------------------------------------------------------


async def test_replay_one_delivery_is_idempotent_per_request_id(
    api: Api, runtime: Runtime, receiver: Receiver, worker: DeliveryWorker
) -> None:
    await api.endpoint("/one")
    event = await api.event()
    [delivery] = event["deliveries"]
    await worker.drain()
    assert verified_ids(receiver, "/one") == [event["id"]]

    made = await api.replay(requestId="r-1", deliveryId=delivery["id"])
    assert made["id"].startswith("rpl_") and made["kind"] == "delivery" and made["created"] is True
    assert made["deliveryIds"] == [delivery["id"]] and made["deliveryCount"] == 1
    assert made["createdCount"] == 0 and made["skipped"] == [] and made["requestId"] == "r-1"
    assert made["request"] == {"requestId": "r-1", "deliveryId": delivery["id"]}
    queued = await api.delivery(delivery["id"])
    assert queued["status"] == "RETRYING" and queued["nextAttemptAt"] is not None
    await worker.drain()
    assert verified_ids(receiver, "/one") == [event["id"], event["id"]]  # the same webhook-id
    assert (await api.delivery(delivery["id"]))["status"] == "DELIVERED"

    again = await api.replay(200, requestId="r-1", deliveryId=delivery["id"])
    assert again["id"] == made["id"] and again["created"] is False
    assert again["deliveryIds"] == made["deliveryIds"]
    await worker.drain()
    assert len(receiver.received("/one")) == 2  # the repeat sent nothing
    assert (await api.delivery(delivery["id"]))["status"] == "DELIVERED"

    other = await api.client.post(
        "/v1/replays", json={"requestId": "r-1", "eventId": event["id"]}, headers=api.headers
    )
    problem = assert_problem(other, 409)
    assert made["id"] in problem["detail"] and problem["reason"] == "request_id_reused"

    shown = await api.client.get(f"/v1/replays/{made['id']}", headers=api.headers)
    assert shown.status_code == 200 and shown.json() == {**made, "created": None}
    second = await api.replay(requestId="r-2", deliveryId=delivery["id"])
    page = await api.client.get("/v1/replays", params={"limit": 1}, headers=api.headers)
    assert [r["id"] for r in page.json()["data"]] == [second["id"]] and page.json()["hasMore"] is True
    rest = await api.client.get(
        "/v1/replays", params={"limit": 1, "after": page.json()["nextCursor"]}, headers=api.headers
    )
    assert [r["id"] for r in rest.json()["data"]] == [made["id"]] and rest.json()["hasMore"] is False

    async with runtime.db.unit_of_work(write=False) as session:
        audited = (
            await session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "replay.created"))
        ).all()
    assert sorted(a.resource_id for a in audited) == sorted([made["id"], second["id"]])
    first_audit = next(a for a in audited if a.resource_id == made["id"])
    assert first_audit.changes["deliveries"]["new"] == 1
    assert first_audit.changes["target"]["new"] == delivery["id"]


async def test_replay_an_event_to_all_or_listed_endpoints(
    api: Api, runtime: Runtime, receiver: Receiver, worker: DeliveryWorker
) -> None:
    everything = await api.endpoint("/all")
    other_type = await api.endpoint("/other", eventTypes=["invoice.voided"])
    big_only = await api.endpoint("/big", filter={"payload.amount": {"$gte": 100}})
    paused = await api.endpoint("/paused")
    event = await api.event(payload={"amount": 5})
    assert {d["endpointId"] for d in event["deliveries"]} == {everything, paused}
    await worker.drain()
    late = await api.endpoint("/late")  # created after the event: it never had a delivery
    off = await api.client.post(f"/v1/endpoints/{paused}/disable", json={}, headers=api.headers)
    assert off.status_code == 200, off.text

    made = await api.replay(requestId="event-1", eventId=event["id"])
    assert made["kind"] == "event" and made["createdCount"] == 1 and made["deliveryCount"] == 2
    by_endpoint = {d["endpointId"]: d["id"] for d in event["deliveries"]}
    assert by_endpoint[everything] in made["deliveryIds"]
    assert made["skipped"] == [
        {
            "endpointId": paused,
            "eventId": event["id"],
            "deliveryId": by_endpoint[paused],
            "reason": "endpoint_disabled",
        }
    ]
    await worker.drain()
    assert verified_ids(receiver, "/all") == [event["id"], event["id"]]
    assert verified_ids(receiver, "/late") == [event["id"]]
    assert len(receiver.received("/paused")) == 1
    assert receiver.received("/other") == [] and receiver.received("/big") == []
    shown = await api.client.get(f"/v1/events/{event['id']}", headers=api.headers)
    assert {d["endpointId"]: d["status"] for d in shown.json()["deliveries"]} == {
        everything: "DELIVERED",
        paused: "DELIVERED",
        late: "DELIVERED",
    }

    listed = await api.replay(
        requestId="event-2", eventId=event["id"], endpointIds=[late, other_type, big_only]
    )
    assert listed["request"]["endpointIds"] == sorted([late, other_type, big_only])
    assert listed["createdCount"] == 0 and len(listed["deliveryIds"]) == 1
    assert {(s["endpointId"], s["reason"]) for s in listed["skipped"]} == {
        (other_type, "not_subscribed"),
        (big_only, "filtered_out"),
    }
    await worker.drain()
    assert len(receiver.received("/late")) == 2 and len(receiver.received("/all")) == 2

    missing = await api.client.post(
        "/v1/replays",
        json={"requestId": "event-3", "eventId": event["id"], "endpointIds": [late, UNKNOWN_EP]},
        headers=api.headers,
    )
    assert UNKNOWN_EP in assert_problem(missing, 404)["detail"]
    assert len(await rows(runtime, event_id=event["id"])) == 3


async def test_bulk_recovery_touches_only_failed_deliveries_of_the_endpoint_in_range(
    api: Api, runtime: Runtime, receiver: Receiver, worker: DeliveryWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /flaky fails both attempts of the first event, answers 200 to the next one (in range), then
    # fails again; /down always fails. Each failing delivery makes two attempts (schedule [1]).
    flaky = await api.endpoint(
        "/flaky", Answer(500), Answer(500), Answer(200), Answer(500), retrySchedule=[1]
    )
    down = await api.endpoint("/down", Answer(500), retrySchedule=[1])

    async def failed_event(name: str) -> str:
        event = await api.event(payload={"name": name})
        for _ in range(2):
            await worker.drain()
            clock.shift(timedelta(seconds=2))
        await worker.drain()
        return str(event["id"])

    before = await failed_event("before")
    clock.shift(timedelta(hours=1))
    since = clock.utcnow()
    delivered = await failed_event("delivered")
    inside = [await failed_event("inside-1"), await failed_event("inside-2")]
    until = clock.utcnow() + timedelta(seconds=1)
    clock.shift(timedelta(hours=1))
    after = await failed_event("after")

    states = {(d.event_id, d.endpoint_id): d for d in (await rows(runtime)).values()}
    assert states[(delivered, flaky)].status is DeliveryStatus.DELIVERED
    for event_id in (before, *inside, after):
        assert states[(event_id, flaky)].status is DeliveryStatus.FAILED
        assert states[(event_id, down)].status is DeliveryStatus.FAILED
    wanted = sorted(states[(e, flaky)].id for e in inside)
    window = {"since": since.isoformat(), "until": until.isoformat()}

    monkeypatch.setattr(replay, "MAX_REPLAY_DELIVERIES", 1)
    too_many = await api.client.post(
        "/v1/replays", json={"requestId": "range-0", "endpointId": flaky, **window}, headers=api.headers
    )
    body = assert_problem(too_many, 422)
    assert body["errors"][0]["field"] == "until" and "split" in body["detail"]
    monkeypatch.undo()
    assert {d.id: d.updated_at for d in (await rows(runtime)).values()} == {
        d.id: d.updated_at for d in states.values()
    }

    made = await api.replay(requestId="range-1", endpointId=flaky, **window)
    assert made["kind"] == "endpoint" and made["request"]["statuses"] == ["FAILED"]
    assert sorted(made["deliveryIds"]) == wanted and made["skipped"] == []
    now = {d.id: d for d in (await rows(runtime)).values()}
    for key, old in states.items():
        if old.id in wanted:
            assert now[old.id].status is DeliveryStatus.RETRYING and now[old.id].retry_base == 2
        else:  # everything else is exactly as it was
            assert (now[old.id].status, now[old.id].updated_at) == (old.status, old.updated_at), key

    receiver.script("/flaky", Answer(200))
    seen = len(receiver.received("/flaky"))
    await worker.drain()
    resent = verified_ids(receiver, "/flaky")[seen:]
    assert sorted(resent) == sorted(inside)
    assert all(
        now.status is DeliveryStatus.DELIVERED
        for now in (await rows(runtime, endpoint_id=flaky)).values()
        if now.id in wanted
    )

    delivered_again = await api.replay(
        requestId="range-2", endpointId=flaky, statuses=["DELIVERED"], **window
    )
    assert sorted(delivered_again["deliveryIds"]) == sorted([states[(delivered, flaky)].id, *wanted])


async def test_a_requeued_delivery_gets_the_whole_schedule_again(
    api: Api, runtime: Runtime, receiver: Receiver, worker: DeliveryWorker
) -> None:
    await api.endpoint("/failing", Answer(500), retrySchedule=[100, 200])
    event = await api.event()
    [delivery_id] = [d["id"] for d in event["deliveries"]]

    async def exhaust() -> None:
        """Attempts until FAILED: the first, then one after each of the two steps."""
        await worker.drain()
        for step in (100, 200):
            found = await api.delivery(delivery_id)
            assert found["status"] == "RETRYING", found
            clock.shift(timedelta(seconds=step * 1.21))
            await worker.drain()
        assert (await api.delivery(delivery_id))["status"] == "FAILED"

    def wait(found: dict[str, Any]) -> float:
        return (datetime.fromisoformat(found["nextAttemptAt"]) - clock.utcnow()).total_seconds()

    await exhaust()
    assert (await api.delivery(delivery_id))["attempts"] == 3
    await api.replay(requestId="again", deliveryId=delivery_id)
    await worker.drain()
    found = await api.delivery(delivery_id)
    # Without the restart the fourth attempt would have been the last (FAILED).
    assert found["status"] == "RETRYING" and found["attempts"] == 4, found
    assert 75 <= wait(found) <= 125, found  # the first step again: 100 s ± 20 %
    clock.shift(timedelta(seconds=121))
    await worker.drain()
    found = await api.delivery(delivery_id)
    assert found["status"] == "RETRYING" and 150 <= wait(found) <= 250, found
    clock.shift(timedelta(seconds=242))
    await worker.drain()
    assert (await api.delivery(delivery_id))["status"] == "FAILED"

    # A manual retry restarts the schedule the same way.
    retried = await api.client.post(f"/v1/deliveries/{delivery_id}/retry", headers=api.headers)
    assert retried.status_code == 200, retried.text
    await worker.drain()
    found = await api.delivery(delivery_id)
    assert found["status"] == "RETRYING" and found["attempts"] == 7 and 75 <= wait(found) <= 125, found
    assert len(receiver.received("/failing")) == 7


# -- refusals --------------------------------------------------------------------------------------


MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({"deliveryId": UNKNOWN["del"]}, "requestId"),
    ({"requestId": "x"}, "deliveryId"),
    ({"requestId": "x", "deliveryId": "not-an-id"}, "deliveryId"),
    ({"requestId": "x", "deliveryId": UNKNOWN["evt"]}, "deliveryId"),
    ({"requestId": "x", "deliveryId": UNKNOWN["del"], "eventId": UNKNOWN["evt"]}, "eventId"),
    ({"requestId": "x", "deliveryId": UNKNOWN["del"], "since": "2030-01-01T00:00:00Z"}, "since"),
    ({"requestId": "x", "eventId": UNKNOWN["evt"], "endpointIds": []}, "endpointIds"),
    ({"requestId": "x", "eventId": UNKNOWN["evt"], "endpointIds": ["nope"]}, "endpointIds"),
    ({"requestId": "x", "eventId": UNKNOWN["evt"], "until": "2030-01-01T00:00:00Z"}, "until"),
    ({"requestId": "x", "endpointId": UNKNOWN_EP, "until": "2030-01-01T00:00:00Z"}, "since"),
    ({"requestId": "x", "endpointId": UNKNOWN_EP, "since": "2030-01-01T00:00:00Z"}, "until"),
    (
        {
            "requestId": "x",
            "endpointId": UNKNOWN_EP,
            "since": "2030-01-02T00:00:00Z",
            "until": "2030-01-01T00:00:00Z",
        },
        "until",
    ),
    (
        {
            "requestId": "x",
            "endpointId": UNKNOWN_EP,
            "since": "2030-01-01T00:00:00Z",
            "until": "2030-01-02T00:00:00",
        },
        "until",
    ),
    (
        {
            "requestId": "x",
            "endpointId": UNKNOWN_EP,
            "since": "2030-01-01T00:00:00Z",
            "until": "2030-01-02T00:00:00Z",
            "statuses": ["RETRYING"],
        },
        "statuses",
    ),
    ({"requestId": "x", "endpointId": UNKNOWN_EP, "endpointIds": [UNKNOWN_EP]}, "endpointIds"),
    ({"requestId": "has space", "deliveryId": UNKNOWN["del"]}, "requestId"),
    ({"requestId": "x", "deliveryId": UNKNOWN["del"], "everything": True}, "everything"),
]


async def test_malformed_requests_name_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    for body, field in MALFORMED:
        response = await client.post("/v1/replays", json=body, headers=admin_headers)
        problem = assert_problem(response, 422)
        assert [e["field"] for e in problem["errors"]] == [field], (body, problem)
    listed = await client.get("/v1/replays", headers=admin_headers)
    assert listed.json()["data"] == []


async def test_unknown_and_other_tenants_ids_are_404(
    api: Api, client: httpx.AsyncClient, admin_headers: dict[str, str], worker: DeliveryWorker
) -> None:
    other = await make_tenant(client, admin_headers, "Other")
    theirs = Api(client, auth(headers_key(admin_headers), other), api.receiver)
    their_endpoint = await theirs.endpoint("/theirs")
    their_event = await theirs.event()
    their_delivery = their_event["deliveries"][0]["id"]
    their_replay = await theirs.replay(requestId="theirs", deliveryId=their_delivery)
    mine = await api.endpoint("/mine")
    window = {"since": "2020-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"}
    for body in (
        {"deliveryId": UNKNOWN["del"]},
        {"eventId": UNKNOWN["evt"]},
        {"endpointId": UNKNOWN_EP, **window},
        {"deliveryId": their_delivery},
        {"eventId": their_event["id"]},
        {"endpointId": their_endpoint, **window},
    ):
        response = await client.post("/v1/replays", json={"requestId": "mine", **body}, headers=admin_headers)
        assert_problem(response, 404)
    mine_event = await api.event()
    response = await client.post(
        "/v1/replays",
        json={"requestId": "mine", "eventId": mine_event["id"], "endpointIds": [mine, their_endpoint]},
        headers=admin_headers,
    )
    assert their_endpoint in assert_problem(response, 404)["detail"]
    assert_problem(await client.get(f"/v1/replays/{their_replay['id']}", headers=admin_headers), 404)
    assert (await client.get("/v1/replays", headers=admin_headers)).json()["data"] == []
    # The request id is per tenant: the same one is free here.
    made = await api.replay(requestId="theirs", eventId=mine_event["id"])
    assert made["created"] is True and made["id"] != their_replay["id"]


def headers_key(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_conflicts_and_skips(
    api: Api, runtime: Runtime, receiver: Receiver, worker: DeliveryWorker
) -> None:
    paused = await api.endpoint("/paused")
    event = await api.event()
    [delivery_id] = [d["id"] for d in event["deliveries"]]
    await worker.drain()
    off = await api.client.post(f"/v1/endpoints/{paused}/disable", json={}, headers=api.headers)
    assert off.status_code == 200
    refused = await api.client.post(
        "/v1/replays", json={"requestId": "p-1", "deliveryId": delivery_id}, headers=api.headers
    )
    assert paused in assert_problem(refused, 409)["detail"]
    window = {"since": "2020-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z", "statuses": ["DELIVERED"]}
    ranged = await api.client.post(
        "/v1/replays", json={"requestId": "p-1", "endpointId": paused, **window}, headers=api.headers
    )
    assert "disabled" in assert_problem(ranged, 409)["detail"]
    # Nothing was recorded: the same request id works once the endpoint is back.
    on = await api.client.post(f"/v1/endpoints/{paused}/enable", headers=api.headers)
    assert on.status_code == 200, on.text
    made = await api.replay(requestId="p-1", deliveryId=delivery_id)
    assert made["deliveryIds"] == [delivery_id]
    await worker.drain()

    # A delivery being sent right now is skipped and reported.
    await api.replay(requestId="p-2", deliveryId=delivery_id)
    [held] = await engine.claim(runtime.db, runtime.keyring, "test-holder", 10, 60)
    assert held.delivery_id == delivery_id
    busy = await api.replay(requestId="p-3", deliveryId=delivery_id)
    assert busy["deliveryIds"] == [] and busy["skipped"] == [
        {"endpointId": paused, "eventId": event["id"], "deliveryId": delivery_id, "reason": "sending"}
    ]
    busy_event = await api.replay(requestId="p-4", eventId=event["id"])
    assert [s["reason"] for s in busy_event["skipped"]] == ["sending"]
    await engine.release(runtime.db, "test-holder", [delivery_id])
    assert (await api.delivery(delivery_id))["status"] == "RETRYING"


# -- SDK and CLI -----------------------------------------------------------------------------------


async def test_replays_through_the_sdks_and_the_cli(live_server: LiveServer, receiver: Receiver) -> None:
    sdk = InterlinkClient(live_server.url, live_server.admin_key)
    try:
        url = receiver.script("/sdk")
        endpoint = await asyncio.to_thread(sdk.endpoints.create, url)
        receiver.secrets["/sdk"] = [(await asyncio.to_thread(sdk.endpoints.get_secret, endpoint.id)).key]
        event = await asyncio.to_thread(sdk.events.send, "order.created", {"id": "ord_1"})
        assert event.deliveries is not None
        delivery_id = event.deliveries[0].id
        await receiver.wait_for(lambda: len(receiver.received("/sdk")) >= 1)
        # Replay only once the attempt is recorded: a delivery still being sent would be skipped.
        await eventually(
            lambda: sdk.deliveries.get(delivery_id), lambda d: d.status is DeliveryStatus.DELIVERED, "sent"
        )

        made = await asyncio.to_thread(sdk.replays.create, "sdk-1", delivery_id=delivery_id)
        assert made.created is True and made.delivery_ids == [delivery_id] and made.kind == "delivery"
        await receiver.wait_for(lambda: len(receiver.received("/sdk")) >= 2)
        again = await asyncio.to_thread(sdk.replays.create, "sdk-1", delivery_id=delivery_id)
        assert again.id == made.id and again.created is False
        with pytest.raises(ConflictError):
            sdk.replays.create("sdk-1", event_id=event.id)
        with pytest.raises(ValidationError) as bad:
            sdk.replays.create("sdk-2", delivery_id="nope")
        assert [e.field for e in bad.value.errors] == ["deliveryId"]
        with pytest.raises(NotFoundError):
            sdk.replays.get("rpl_01HZZZZZZZZZZZZZZZZZZZZZZZ")
        assert sdk.replays.get(made.id).delivery_ids == [delivery_id]
        assert [r.id for r in sdk.replays.list()] == [made.id]
        assert [r.id for r in sdk.replays.iter_all(page_size=1)] == [made.id]
        await eventually(
            lambda: sdk.deliveries.get(delivery_id), lambda d: d.status is DeliveryStatus.DELIVERED, "resent"
        )

        async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as aclient:
            by_event = await aclient.replays.create("async-1", event_id=event.id, endpoint_ids=[endpoint.id])
            assert by_event.kind == "event" and by_event.delivery_ids == [delivery_id]
            await receiver.wait_for(lambda: len(receiver.received("/sdk")) >= 3)
            await eventually(
                lambda: sdk.deliveries.get(delivery_id),
                lambda d: d.status is DeliveryStatus.DELIVERED,
                "resent",
            )
            ranged = await aclient.replays.create(
                "async-2",
                endpoint_id=endpoint.id,
                since=event.created_at - timedelta(seconds=1),
                until=event.created_at + timedelta(seconds=1),
                statuses=[DeliveryStatus.DELIVERED],
            )
            assert ranged.kind == "endpoint" and ranged.delivery_ids == [delivery_id]
            assert (await aclient.replays.get(ranged.id)).id == ranged.id
            assert [r.id async for r in aclient.replays.iter_all(page_size=2)] == [
                ranged.id,
                by_event.id,
                made.id,
            ]
            assert len(await aclient.replays.list(limit=1)) == 1
        await receiver.wait_for(lambda: len(receiver.received("/sdk")) >= 4)
        await eventually(
            lambda: sdk.deliveries.get(delivery_id), lambda d: d.status is DeliveryStatus.DELIVERED, "resent"
        )

        by_cli = await cli_json(
            live_server, "replays", "create", "--delivery", delivery_id, "--request-id", "cli-1"
        )
        assert by_cli["deliveryIds"] == [delivery_id] and by_cli["created"] is True
        await receiver.wait_for(lambda: len(receiver.received("/sdk")) >= 5)
        repeat = await cli(
            live_server, "replays", "create", "--delivery", delivery_id, "--request-id", "cli-1"
        )
        assert repeat.returncode == 0 and "already made" in repeat.stdout and by_cli["id"] in repeat.stdout
        await eventually(
            lambda: sdk.deliveries.get(delivery_id), lambda d: d.status is DeliveryStatus.DELIVERED, "resent"
        )
        listed_event = await cli(
            live_server, "replays", "create", "--event", event.id, "--endpoint", endpoint.id
        )
        assert listed_event.returncode == 0, listed_event.stderr
        assert "1 delivery(ies) queued (0 new), 0 skipped" in listed_event.stdout
        await receiver.wait_for(lambda: len(receiver.received("/sdk")) >= 6)
        await eventually(
            lambda: sdk.deliveries.get(delivery_id), lambda d: d.status is DeliveryStatus.DELIVERED, "resent"
        )
        window = [
            "--since",
            (event.created_at - timedelta(seconds=1)).isoformat(),
            "--until",
            (event.created_at + timedelta(seconds=1)).isoformat(),
        ]
        ranged_cli = await cli_json(
            live_server, "replays", "create", "--endpoint", endpoint.id, *window, "--status", "DELIVERED"
        )
        assert ranged_cli["kind"] == "endpoint" and ranged_cli["deliveryIds"] == [delivery_id]
        await receiver.wait_for(lambda: len(receiver.received("/sdk")) >= 7)
        assert set(verified_ids(receiver, "/sdk")) == {event.id}

        listed = await cli(live_server, "replays", "list")
        assert listed.returncode == 0 and by_cli["id"] in listed.stdout and made.id in listed.stdout
        shown = await cli(live_server, "replays", "show", by_cli["id"])
        assert shown.returncode == 0 and delivery_id in shown.stdout
        everything = await cli_json(live_server, "replays", "list", "--all", "--limit", "2")
        assert len(everything["data"]) == 6

        for args in (
            ["replays", "create"],
            ["replays", "create", "--delivery", delivery_id, "--event", event.id],
            ["replays", "create", "--endpoint", endpoint.id],
            ["replays", "create", "--endpoint", endpoint.id, "--endpoint", endpoint.id, *window],
            ["replays", "create", "--delivery", delivery_id, "--status", "FAILED"],
            ["replays", "create", "--endpoint", endpoint.id, "--since", "yesterday", "--until", "today"],
        ):
            usage = await cli(live_server, *args)
            assert usage.returncode == 2, (args, usage.stdout, usage.stderr)
        missing = await cli(live_server, "replays", "create", "--event", UNKNOWN["evt"])
        assert missing.returncode == 1 and "404" in missing.stderr
    finally:
        sdk.close()
