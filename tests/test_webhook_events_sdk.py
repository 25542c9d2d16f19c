"""Events and deliveries through the Python SDK (blocking and asyncio) and the CLI, against a real
server on 127.0.0.1 (with its in-process delivery worker) sending to a real receiver.

Every request the receiver gets is verified with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from interlink.client import (
    AsyncInterlinkClient,
    ConflictError,
    InterlinkClient,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from interlink.core.enums import DeliveryStatus
from interlink.webhooks.delivery_schemas import EventCreate, EventInfo, WebhookDeliveryInfo
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)

T = TypeVar("T")


@pytest.fixture
def live_server_settings_overrides() -> dict[str, object]:
    return {"allowed_target_networks": ["127.0.0.0/8"]}


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[InterlinkClient]:
    with InterlinkClient(live_server.url, live_server.admin_key) as client:
        yield client


async def eventually(probe: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """Call the blocking ``probe`` (in a thread) until ``done`` holds; fail after 20 s."""
    deadline = time.monotonic() + 20
    while True:
        value = await asyncio.to_thread(probe)
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {value!r}")
        await asyncio.sleep(0.05)


async def signed_endpoint(sdk: InterlinkClient, receiver: Receiver, path: str, **fields: Any) -> str:
    """An endpoint at ``receiver`` + ``path`` whose requests the receiver verifies; returns its id."""
    url = receiver.script(path)
    made = await asyncio.to_thread(sdk.endpoints.create, url, **fields)
    secret = await asyncio.to_thread(sdk.endpoints.get_secret, made.id)
    receiver.secrets[path] = [secret.key]
    return made.id


async def test_events_and_deliveries_through_the_blocking_sdk(
    sdk: InterlinkClient, live_server: LiveServer, receiver: Receiver
) -> None:
    endpoint_id = await signed_endpoint(sdk, receiver, "/hooks/paid", event_types=["invoice.paid"])
    other_id = await signed_endpoint(sdk, receiver, "/hooks/other", event_types=["invoice.voided"])

    payload = {"id": "inv_1", "amount": 5}
    event = await asyncio.to_thread(
        sdk.events.send, "invoice.paid", payload, idempotency_key="inv_1-paid", metadata={"region": "eu"}
    )
    assert isinstance(event, EventInfo) and event.created is True
    assert event.tenant_id == live_server.tenant_id and event.priority == "NORMAL"
    assert event.deliveries is not None and [d.endpoint_id for d in event.deliveries] == [endpoint_id]
    delivery_id = event.deliveries[0].id

    await receiver.wait_for(lambda: len(receiver.received("/hooks/paid")) >= 1)
    [got] = receiver.received("/hooks/paid")
    assert got.verified is True, got.verify_error
    assert got.webhook_id == event.id
    sent = got.json()
    assert sent["type"] == "invoice.paid" and sent["data"] == payload and sent["timestamp"]
    assert receiver.received("/hooks/other") == []

    again = await asyncio.to_thread(
        sdk.events.send, "invoice.paid", {"id": "x"}, idempotency_key="inv_1-paid"
    )
    assert again.id == event.id and again.created is False and again.payload == payload

    done = await eventually(
        lambda: sdk.deliveries.get(delivery_id), lambda d: d.status is DeliveryStatus.DELIVERED, "delivery"
    )
    assert isinstance(done, WebhookDeliveryInfo)
    assert done.attempts == 1 and done.last_status_code == 200 and done.next_attempt_at is None
    fetched = sdk.events.get(event.id)
    assert fetched.deliveries is not None and fetched.deliveries[0].status is DeliveryStatus.DELIVERED
    assert fetched.metadata == {"region": "eu"}

    assert [d.id for d in sdk.deliveries.list(event_id=event.id)] == [delivery_id]
    assert [d.id for d in sdk.deliveries.list(endpoint_id=endpoint_id, status="DELIVERED")] == [delivery_id]
    assert list(sdk.deliveries.list(endpoint_id=other_id)) == []
    assert list(sdk.deliveries.list(status=DeliveryStatus.FAILED)) == []
    [attempt] = sdk.deliveries.attempts(delivery_id)
    assert attempt.succeeded and attempt.response_status == 200 and attempt.attempt_number == 1
    assert attempt.request_headers["webhook-id"] == event.id

    requeued = await asyncio.to_thread(sdk.deliveries.retry, delivery_id)
    assert requeued.status is DeliveryStatus.RETRYING
    await receiver.wait_for(lambda: len(receiver.received("/hooks/paid")) >= 2)
    second = receiver.received("/hooks/paid")[1]
    assert second.verified is True and second.webhook_id == event.id
    await eventually(
        lambda: sdk.deliveries.get(delivery_id), lambda d: d.attempts == 2, "second attempt recorded"
    )
    assert [a.attempt_number for a in sdk.deliveries.iter_attempts(delivery_id, page_size=1)] == [2, 1]
    audit = sdk.audit_events.list(action="delivery.retried")
    assert [e.resource_id for e in audit] == [delivery_id]

    batch = await asyncio.to_thread(
        sdk.events.send_batch,
        [
            EventCreate(type="invoice.voided", payload={"id": "inv_2"}, priority="HIGH"),
            {"type": "invoice.paid", "payload": {"id": "inv_3"}, "idempotency_key": "inv_3-paid"},
        ],
    )
    assert [e.type for e in batch] == ["invoice.voided", "invoice.paid"]
    assert batch[0].priority == "HIGH" and batch[1].idempotency_key == "inv_3-paid"
    assert all(e.created for e in batch)
    with pytest.raises(ValidationError) as bad:
        sdk.events.send_batch([{"type": "ok.type", "payload": {}}, {"type": "bad type!", "payload": {}}])
    # the field names the second event's type, as service checks do ("events.1.payload")
    assert [e.field for e in bad.value.errors] == ["events.1.type"]
    assert len(sdk.events.list(limit=10)) == 3  # the refused batch stored nothing

    assert [e.id for e in sdk.events.list(event_type="invoice.voided")] == [batch[0].id]
    assert [e.id for e in sdk.events.iter_all(page_size=1)] == [batch[1].id, batch[0].id, event.id]
    assert {d.event_id for d in sdk.deliveries.iter_all(page_size=1)} == {event.id, batch[0].id, batch[1].id}

    with pytest.raises(ValidationError) as wrong:
        sdk.events.send("invoice paid", {})
    assert [e.field for e in wrong.value.errors] == ["type"]
    with pytest.raises(NotFoundError):
        sdk.events.get("evt_missing")
    with pytest.raises(NotFoundError):
        sdk.deliveries.attempts("del_missing")

    sdk.endpoints.disable(endpoint_id, reason="maintenance")
    with pytest.raises(ConflictError):
        sdk.deliveries.retry(delivery_id)

    writer = sdk.keys.create("producer", ["events:write"])
    with InterlinkClient(sdk.base_url, writer.key) as producer:
        assert producer.events.send("invoice.voided", {"id": "inv_4"}).created
        with pytest.raises(PermissionDeniedError):
            producer.deliveries.list()
        with pytest.raises(PermissionDeniedError):
            producer.events.list()


async def test_async_sdk_immediate_send_and_failed_attempts(
    live_server: LiveServer, receiver: Receiver
) -> None:
    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as client:
        ok_url = receiver.script("/a/ok")
        failing_url = receiver.script("/a/failing", Answer(status=500, body="down"))
        ok = await client.endpoints.create(ok_url, event_types=["order.created"])
        failing = await client.endpoints.create(
            failing_url, event_types=["order.created"], retry_schedule=[3600]
        )
        receiver.secrets["/a/ok"] = [(await client.endpoints.get_secret(ok.id)).key]

        event = await client.events.send(
            "order.created",
            {"id": "ord_1"},
            immediate=True,
            priority="HIGH",
            endpoint_ids=[ok.id, failing.id],
        )
        assert event.created and event.priority == "HIGH"
        # immediate: this request made the first attempts (the queue is held off meanwhile), so
        # the answer already carries their outcome.
        expected = {ok.id: DeliveryStatus.DELIVERED, failing.id: DeliveryStatus.RETRYING}
        assert {d.endpoint_id: d.status for d in event.deliveries or []} == expected
        await receiver.wait_for(lambda: receiver.received("/a/ok") and receiver.received("/a/failing"))
        deadline = time.monotonic() + 20
        while {d.endpoint_id: d.status for d in await client.deliveries.list(event_id=event.id)} != expected:
            assert time.monotonic() < deadline, "deliveries did not settle"
            await asyncio.sleep(0.05)
        [got] = receiver.received("/a/ok")
        assert got.verified is True and got.webhook_id == event.id
        assert len(receiver.received("/a/failing")) == 1

        retrying = [d async for d in client.deliveries.iter_all(status="RETRYING")]
        assert [d.endpoint_id for d in retrying] == [failing.id]
        failed = retrying[0]
        assert failed.last_status_code == 500 and failed.last_error_class == "http_5xx"
        assert failed.next_attempt_at is not None and failed.attempts == 1
        assert (await client.deliveries.get(failed.id)) == failed
        [attempt] = await client.deliveries.attempts(failed.id)
        assert not attempt.succeeded and attempt.response_status == 500 and attempt.response_body == "down"
        assert [a.id async for a in client.deliveries.iter_attempts(failed.id)] == [attempt.id]

        only_ok = await client.events.send("order.created", {"id": "ord_2"}, endpoint_ids=[ok.id])
        assert [d.endpoint_id for d in only_ok.deliveries or []] == [ok.id]
        batch = await client.events.send_batch([{"type": "order.shipped", "payload": {"id": "ord_1"}}])
        assert len(batch) == 1 and batch[0].deliveries == []
        assert (await client.events.get(event.id)).id == event.id
        assert [e.id async for e in client.events.iter_all(event_type="order.created")] == [
            only_ok.id,
            event.id,
        ]
        page = await client.deliveries.list(endpoint_id=ok.id, limit=1)
        assert len(page) == 1 and page.has_more

        receiver.script("/a/failing")  # now answers 200
        requeued = await client.deliveries.retry(failed.id)
        assert requeued.status is DeliveryStatus.RETRYING
        await receiver.wait_for(lambda: len(receiver.received("/a/failing")) >= 2)
        with pytest.raises(NotFoundError):
            await client.deliveries.get("del_missing")


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


async def cli_json(server: LiveServer, *args: str, real: bool = False) -> Any:
    result = await cli(server, *args, "--json", real=real)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_cli(live_server: LiveServer, receiver: Receiver, tmp_path: Path) -> None:
    hook = receiver.script("/cli/hook")
    made = await cli_json(live_server, "endpoints", "create", hook, "--event-type", "invoice.paid")
    secret = await cli_json(live_server, "endpoints", "secret", made["id"])
    receiver.secrets["/cli/hook"] = [secret["key"]]

    payload_file = tmp_path / "payload.json"
    payload_file.write_text(json.dumps({"id": "inv_7", "amount": 12}))
    sent = await cli_json(
        live_server, "events", "send", "--type", "invoice.paid", "--payload", f"@{payload_file}",
        "--idempotency-key", "inv_7", "--priority", "HIGH", "--immediate", "--endpoint", made["id"],
        "--metadata", '{"source": "cli"}',
    )  # fmt: skip
    assert sent["created"] is True and sent["priority"] == "HIGH" and sent["payload"]["amount"] == 12
    assert [d["endpointId"] for d in sent["deliveries"]] == [made["id"]]
    await receiver.wait_for(lambda: len(receiver.received("/cli/hook")) >= 1)
    [got] = receiver.received("/cli/hook")
    assert got.verified is True and got.webhook_id == sent["id"] and got.json()["data"]["id"] == "inv_7"
    delivery_id = sent["deliveries"][0]["id"]

    repeat = await cli(
        live_server,
        "events",
        "send",
        "--type",
        "invoice.paid",
        "--payload",
        "{}",
        "--idempotency-key",
        "inv_7",
    )
    assert repeat.returncode == 0 and "already accepted" in repeat.stdout and sent["id"] in repeat.stdout

    listed = await cli(live_server, "events", "list", "--type", "invoice.paid")
    assert listed.returncode == 0 and sent["id"] in listed.stdout and "inv_7" in listed.stdout
    shown = await cli(live_server, "events", "show", sent["id"])
    assert shown.returncode == 0 and delivery_id in shown.stdout and "DELIVERED" in shown.stdout

    with InterlinkClient(live_server.url, live_server.admin_key) as sdk:
        await eventually(
            lambda: sdk.deliveries.get(delivery_id),
            lambda d: d.status is DeliveryStatus.DELIVERED,
            "delivery",
        )
        assert [d.id for d in sdk.deliveries.list(event_type="invoice.paid").data] == [delivery_id]
        assert list(sdk.deliveries.iter_all(event_type="invoice.voided")) == []
    by_type = await cli_json(live_server, "deliveries", "list", "--type", "invoice.paid")
    assert [d["id"] for d in by_type["data"]] == [delivery_id]
    other_type = await cli(live_server, "deliveries", "list", "--type", "invoice.voided")
    assert other_type.returncode == 0 and "no deliveries" in other_type.stdout
    deliveries = await cli_json(
        live_server,
        "deliveries",
        "list",
        "--endpoint",
        made["id"],
        "--status",
        "DELIVERED",
        "--event",
        sent["id"],
    )
    assert [d["id"] for d in deliveries["data"]] == [delivery_id] and deliveries["hasMore"] is False
    none = await cli(live_server, "deliveries", "list", "--status", "FAILED")
    assert none.returncode == 0 and "no deliveries" in none.stdout
    one = await cli_json(live_server, "deliveries", "show", delivery_id, real=True)
    assert one["status"] == "DELIVERED" and one["lastStatusCode"] == 200
    table = await cli(live_server, "deliveries", "attempts", delivery_id)
    assert table.returncode == 0 and "yes" in table.stdout and "200" in table.stdout
    attempts = await cli_json(live_server, "deliveries", "attempts", delivery_id)
    assert attempts["data"][0]["requestHeaders"]["webhook-id"] == sent["id"]

    retried = await cli(live_server, "deliveries", "retry", delivery_id)
    assert retried.returncode == 0 and f"Requeued {delivery_id}" in retried.stdout
    await receiver.wait_for(lambda: len(receiver.received("/cli/hook")) >= 2)
    assert receiver.received("/cli/hook")[1].verified is True

    bad_json = await cli(live_server, "events", "send", "--type", "a.b", "--payload", "[1]")
    assert bad_json.returncode == 2 and "--payload" in bad_json.stderr
    bad_type = await cli(live_server, "events", "send", "--type", "not valid", "--payload", "{}")
    assert bad_type.returncode == 1 and "422" in bad_type.stderr and "type" in bad_type.stderr
    missing = await cli(live_server, "deliveries", "show", "del_missing")
    assert missing.returncode == 1 and "404" in missing.stderr
    bad_status = await cli(live_server, "deliveries", "list", "--status", "LOST")
    assert bad_status.returncode == 2
