"""The delivery engine against a real HTTP receiver on 127.0.0.1, on SQLite and PostgreSQL.

Every request the receiver gets is verified with the ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.actor import Actor, system_actor
from interlink.core.enums import DeliveryStatus
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from interlink.webhooks import delivery as engine
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker
from interlink.webhooks.endpoints import Endpoints, EndpointSpec, active_secrets
from interlink.webhooks.ingest import EventSpec, ingest, ingest_batch
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.conftest import free_port, make_settings
from tests.receiver import Answer, Receiver, receiver_fixture  # noqa: F401  (fixture)

LOCAL = ["127.0.0.0/8"]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=LOCAL)


@pytest.fixture
def actor(admin: BootstrapResult) -> Actor:
    return system_actor(admin.tenant_id)


@pytest.fixture
async def worker(runtime: Runtime) -> AsyncIterator[DeliveryWorker]:
    config = DeliveryConfig(concurrency=8, batch_size=8, lease_seconds=30, poll_interval=0.05)
    yield DeliveryWorker(runtime.db, runtime.keyring, runtime.transport, config)


async def add_endpoint(runtime: Runtime, actor: Actor, url: str, **fields: Any) -> tuple[str, list[str]]:
    """An endpoint through the endpoints service; returns its id and active signing secrets."""
    service = Endpoints(runtime.keyring, runtime.allowed_target_networks)
    async with runtime.db.unit_of_work() as session:
        row = await service.create(session, actor, EndpointSpec(url=url, **fields))
    async with runtime.db.unit_of_work(write=False) as session:
        return row.id, await active_secrets(session, runtime.keyring, row.id)


async def send_event(runtime: Runtime, actor: Actor, event_type: str = "invoice.paid", **payload: Any) -> str:
    async with runtime.db.unit_of_work() as session:
        result = await ingest(session, actor, EventSpec(type=event_type, payload=payload or {"n": 1}))
    return result.event.id


async def deliveries(runtime: Runtime, **where: Any) -> list[WebhookDelivery]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = sa.select(WebhookDelivery).filter_by(**where).order_by(WebhookDelivery.id)
        return list((await session.scalars(stmt)).all())


async def attempts(runtime: Runtime, delivery_id: str) -> list[WebhookAttempt]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = (
            sa.select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.attempt_number)
        )
        return list((await session.scalars(stmt)).all())


def assert_all_verified(receiver: Receiver) -> None:
    assert receiver.requests
    bad = [(r.path, r.verify_error) for r in receiver.requests if r.verified is not True]
    assert not bad, bad


async def test_delivers_a_signed_envelope(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/ok", Answer(200, {"X-Seen": "yes"}, "thanks"))
    endpoint_id, secrets = await add_endpoint(runtime, actor, url, headers={"X-Custom": "abc"})
    receiver.secrets["/ok"] = secrets
    event_id = await send_event(runtime, actor, amount=42)

    await worker.drain()

    [request] = receiver.received("/ok")
    assert request.verified is True, request.verify_error
    assert request.webhook_id == event_id
    assert request.headers["x-custom"] == "abc"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["type"] == "invoice.paid"
    assert body["data"] == {"amount": 42}
    assert body["timestamp"].startswith(str(clock.utcnow().year))
    [row] = await deliveries(runtime, endpoint_id=endpoint_id)
    assert row.status is DeliveryStatus.DELIVERED
    assert row.attempts == 1 and row.delivered_at is not None and row.locked_by is None
    [attempt] = await attempts(runtime, row.id)
    assert attempt.succeeded and attempt.response_status == 200
    assert attempt.response_body == "thanks"
    assert attempt.response_headers is not None and attempt.response_headers["X-Seen"] == "yes"
    assert attempt.request_headers["webhook-id"] == event_id
    assert attempt.duration_ms is not None and attempt.duration_ms >= 0


async def test_retries_follow_the_schedule_and_retry_after(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script(
        "/flaky",
        Answer(500, body="boom"),
        Answer(429, {"Retry-After": "7"}),
        Answer(200),
    )
    _endpoint_id, secrets = await add_endpoint(runtime, actor, url, retry_schedule=[100, 200, 300])
    receiver.secrets["/flaky"] = secrets
    await send_event(runtime, actor)

    await worker.drain()
    [row] = await deliveries(runtime)
    assert row.status is DeliveryStatus.RETRYING and row.attempts == 1
    assert row.last_status_code == 500 and row.last_error_class == "http_5xx"
    wait = (row.next_attempt_at - clock.utcnow()).total_seconds()
    assert 75 <= wait <= 125, wait  # 100 s ± 20 % jitter

    await worker.drain()  # not due yet: nothing is sent
    assert len(receiver.received("/flaky")) == 1

    clock.shift(timedelta(seconds=121))
    await worker.drain()
    [row] = await deliveries(runtime)
    assert row.status is DeliveryStatus.RETRYING and row.attempts == 2
    assert row.last_status_code == 429 and row.last_error_class == "http_4xx"
    wait = (row.next_attempt_at - clock.utcnow()).total_seconds()
    assert 5 <= wait <= 7.5, wait  # Retry-After, not the schedule's 200 s

    clock.shift(timedelta(seconds=8))
    await worker.drain()
    [row] = await deliveries(runtime)
    assert row.status is DeliveryStatus.DELIVERED and row.attempts == 3
    assert [a.response_status for a in await attempts(runtime, row.id)] == [500, 429, 200]
    assert len(receiver.received("/flaky")) == 3
    assert_all_verified(receiver)
    # Every attempt carries the same webhook-id, so a receiver can deduplicate.
    assert len({r.webhook_id for r in receiver.received("/flaky")}) == 1


async def test_exhausted_retries_fail_the_delivery(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/bad", Answer(400, body="nope"))
    endpoint_id, _ = await add_endpoint(runtime, actor, url, retry_schedule=[1, 1])
    await send_event(runtime, actor)
    for _ in range(3):
        await worker.drain()
        clock.shift(timedelta(seconds=2))
    [row] = await deliveries(runtime)
    assert row.status is DeliveryStatus.FAILED
    assert row.attempts == 3
    assert {a.error_class for a in await attempts(runtime, row.id)} == {"http_4xx"}
    clock.shift(timedelta(days=2))
    await worker.drain()
    assert len(receiver.received("/bad")) == 3
    async with runtime.db.unit_of_work(write=False) as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
    assert endpoint is not None and endpoint.consecutive_failures == 3 and endpoint.failing_since is not None


async def test_410_disables_the_endpoint(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/gone", Answer(410))
    endpoint_id, _ = await add_endpoint(runtime, actor, url)
    other_url = receiver.script("/fine", Answer(200))
    other_id, _ = await add_endpoint(runtime, actor, other_url)
    await send_event(runtime, actor)
    await worker.drain()

    [row] = await deliveries(runtime, endpoint_id=endpoint_id)
    assert row.status is DeliveryStatus.FAILED and row.last_status_code == 410
    async with runtime.db.unit_of_work(write=False) as session:
        endpoint = await session.get(WebhookEndpoint, endpoint_id)
        assert endpoint is not None
        assert endpoint.enabled is False and endpoint.disabled_reason and "410" in endpoint.disabled_reason
        audit_rows = (
            await session.scalars(sa.select(AuditEvent).where(AuditEvent.resource_id == endpoint_id))
        ).all()
    assert "endpoint.disabled" in {a.action for a in audit_rows}
    [fine] = await deliveries(runtime, endpoint_id=other_id)
    assert fine.status is DeliveryStatus.DELIVERED
    # A disabled endpoint gets no new deliveries.
    await send_event(runtime, actor)
    await worker.drain()
    assert len(await deliveries(runtime, endpoint_id=endpoint_id)) == 1
    assert len(receiver.received("/gone")) == 1
    assert len(receiver.received("/fine")) == 2


async def test_transport_failures_are_classified(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    hang_id, _ = await add_endpoint(
        runtime, actor, receiver.script("/hang", Answer(hang=True)), timeout_seconds=1
    )
    reset_id, _ = await add_endpoint(runtime, actor, receiver.script("/reset", Answer(reset=True)))
    closed_id, _ = await add_endpoint(runtime, actor, f"http://127.0.0.1:{free_port()}/nobody")
    redirect_id, _ = await add_endpoint(
        runtime, actor, receiver.script("/moved", Answer(302, {"Location": receiver.url + "/elsewhere"}))
    )
    slow_id, _ = await add_endpoint(runtime, actor, receiver.script("/slow", Answer(delay=0.3)))
    await send_event(runtime, actor)
    await worker.drain()

    classes = {}
    for endpoint_id in (hang_id, reset_id, closed_id, redirect_id, slow_id):
        [row] = await deliveries(runtime, endpoint_id=endpoint_id)
        classes[endpoint_id] = (row.status, row.last_error_class)
    assert classes[hang_id] == (DeliveryStatus.RETRYING, "timeout")
    assert classes[reset_id] == (DeliveryStatus.RETRYING, "connect")
    assert classes[closed_id] == (DeliveryStatus.RETRYING, "connect")
    assert classes[redirect_id] == (DeliveryStatus.RETRYING, "http_3xx")
    assert classes[slow_id] == (DeliveryStatus.DELIVERED, None)
    assert receiver.received("/elsewhere") == []  # redirects are not followed
    [row] = await deliveries(runtime, endpoint_id=hang_id)
    [attempt] = await attempts(runtime, row.id)
    assert attempt.error_class == "timeout" and attempt.response_status is None and attempt.error_message


async def test_target_refused_without_allowed_network(
    db_url: str, tmp_path: Path, actor: Actor, runtime: Runtime, receiver: Receiver
) -> None:
    url = receiver.script("/private", Answer(200))
    endpoint_id, _ = await add_endpoint(runtime, actor, url)
    await send_event(runtime, actor)
    strict = make_settings(db_url, tmp_path / "strict")
    other = Runtime(strict)
    try:
        await DeliveryWorker(other.db, other.keyring, other.transport).drain()
    finally:
        await other.stop()
    [row] = await deliveries(runtime, endpoint_id=endpoint_id)
    assert row.status is DeliveryStatus.RETRYING and row.last_error_class == "refused"
    assert receiver.received("/private") == []


async def test_a_slow_endpoint_does_not_delay_others(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    slow_url = receiver.script("/slow", Answer(gated=True))
    fast_url = receiver.script("/fast", Answer(200))
    slow_id, slow_secrets = await add_endpoint(runtime, actor, slow_url, max_in_flight=2, timeout_seconds=60)
    fast_id, fast_secrets = await add_endpoint(runtime, actor, fast_url)
    receiver.secrets.update({"/slow": slow_secrets, "/fast": fast_secrets})
    for n in range(12):
        await send_event(runtime, actor, n=n)

    task = asyncio.create_task(worker.run())
    try:
        await receiver.wait_for(lambda: len(receiver.received("/fast")) == 12)
        for _ in range(200):
            fast = await deliveries(runtime, endpoint_id=fast_id)
            if all(d.status is DeliveryStatus.DELIVERED for d in fast):
                break
            await asyncio.sleep(0.05)
        # Every fast delivery is done while the slow endpoint still holds its first two requests.
        assert all(d.status is DeliveryStatus.DELIVERED for d in fast)
        assert len(receiver.received("/slow")) == 2
        assert receiver.in_progress["/slow"] == 2
        slow = await deliveries(runtime, endpoint_id=slow_id)
        assert sum(d.status is DeliveryStatus.DELIVERED for d in slow) == 0

        receiver.release("/slow")
        await receiver.wait_for(lambda: len(receiver.received("/slow")) == 12)
        for _ in range(200):
            slow = await deliveries(runtime, endpoint_id=slow_id)
            if all(d.status is DeliveryStatus.DELIVERED for d in slow):
                break
            await asyncio.sleep(0.05)
        assert all(d.status is DeliveryStatus.DELIVERED for d in slow)
        assert receiver.max_in_progress["/slow"] == 2  # the endpoint's max_in_flight
    finally:
        worker.stop()
        await task
    assert_all_verified(receiver)


async def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/ok", Answer(200))
    await add_endpoint(runtime, actor, url)
    await send_event(runtime, actor)
    [stale] = await engine.claim(runtime.db, runtime.keyring, "crashed-worker", 10, lease_seconds=30)
    await worker.drain()
    assert receiver.received("/ok") == []  # held by the other worker's lease
    [row] = await deliveries(runtime)
    assert row.status is DeliveryStatus.SENDING and row.locked_by == "crashed-worker"

    clock.shift(timedelta(seconds=31))
    await worker.drain()
    [row] = await deliveries(runtime)
    assert row.status is DeliveryStatus.DELIVERED and row.locked_by is None
    # The old owner comes back with a failure: its write is fenced off.
    late = engine.Outcome(
        stale,
        {**engine._attempt_row(stale, clock.utcnow(), {}), "error_class": "timeout"},
        DeliveryStatus.RETRYING,
        clock.utcnow(),
        None,
        "timeout",
        False,
    )
    await engine.record(runtime.db, "crashed-worker", [late])
    [row] = await deliveries(runtime)
    assert row.status is DeliveryStatus.DELIVERED


async def test_a_transformation_shapes_the_body(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/shaped", Answer(200))
    _, secrets = await add_endpoint(
        runtime, actor, url, transformation='{"kind": type, "total": payload.amount * 2}'
    )
    receiver.secrets["/shaped"] = secrets
    await send_event(runtime, actor, amount=21)
    await worker.drain()
    [request] = receiver.received("/shaped")
    assert request.json() == {"kind": "invoice.paid", "total": 42}
    assert_all_verified(receiver)


async def test_a_sigkilled_worker_process_loses_no_delivery(
    runtime: Runtime, actor: Actor, receiver: Receiver, settings: Settings, tmp_path: Path
) -> None:
    """``interlink worker`` killed with SIGKILL mid-batch: every event still arrives at least once;
    duplicates are bounded by the deliveries the dead worker held: its sends in flight and those
    answered but not yet recorded, at most twice its concurrency."""
    concurrency, total = 16, 1000
    url = receiver.script("/crash", Answer(200, delay=0.005))
    await add_endpoint(runtime, actor, url)
    event_ids: list[str] = []
    for start in range(0, total, 100):
        async with runtime.db.unit_of_work() as session:
            specs = [EventSpec(type="load.test", payload={"n": n}) for n in range(start, start + 100)]
            event_ids += [r.event.id for r in await ingest_batch(session, actor, specs)]

    env = {
        **os.environ,
        "INTERLINK_DATABASE_URL": runtime.db.url,
        "INTERLINK_DATA_DIR": str(tmp_path / "victim"),
        "INTERLINK_MASTER_KEYS": settings.master_keys,
        "INTERLINK_KEY_PEPPER": settings.key_pepper,
        "INTERLINK_ALLOWED_TARGET_NETWORKS": json.dumps(LOCAL),
        "INTERLINK_DELIVERY_CONCURRENCY": str(concurrency),
        "INTERLINK_DELIVERY_BATCH_SIZE": str(concurrency),
        "INTERLINK_DELIVERY_LEASE_SECONDS": "2",
        "INTERLINK_WORKER_POLL_SECONDS": "0.1",
        "INTERLINK_LOG_LEVEL": "WARNING",
    }
    victim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlink",
        "worker",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await receiver.wait_for(lambda: len(receiver.received("/crash")) >= 300, timeout=60)
    finally:
        victim.send_signal(signal.SIGKILL)
        await victim.wait()
    before_restart = len(receiver.received("/crash"))
    assert before_restart < total, "the worker finished before it could be killed"
    held = await deliveries(runtime, status=DeliveryStatus.SENDING)
    assert len(held) <= 2 * concurrency

    clock.shift(timedelta(seconds=3))  # the dead worker's leases expire
    config = DeliveryConfig(concurrency=32, batch_size=64, lease_seconds=30, poll_interval=0.05)
    await DeliveryWorker(runtime.db, runtime.keyring, runtime.transport, config).drain(max_seconds=120)

    rows = await deliveries(runtime)
    assert len(rows) == total and {d.status for d in rows} == {DeliveryStatus.DELIVERED}
    received = [r.webhook_id for r in receiver.received("/crash")]
    assert set(received) == set(event_ids)  # every event at least once
    duplicates = len(received) - total
    print(f"crash test: killed after {before_restart} requests; {len(held)} held; {duplicates} duplicates")
    assert 0 <= duplicates <= len(held)


async def test_unstorable_answers_are_recorded_cleaned(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    """A NUL in the body (PostgreSQL text refuses it) must not block recording the attempt."""
    url = receiver.script("/nul", Answer(500, {"X-Odd": "ok"}, "bad\x00body"))
    endpoint_id, secrets = await add_endpoint(runtime, actor, url)
    receiver.secrets["/nul"] = secrets
    await send_event(runtime, actor)

    await worker.drain()

    [row] = await deliveries(runtime, endpoint_id=endpoint_id)
    assert row.status is DeliveryStatus.RETRYING and row.locked_by is None
    [attempt] = await attempts(runtime, row.id)
    assert attempt.response_status == 500
    assert attempt.response_body == "bad\ufffdbody"


def test_storable_text_cleans_nul_and_lone_surrogates() -> None:
    from interlink.webhooks.delivery import storable_text

    assert storable_text("plain") == "plain"
    assert storable_text("a\x00b") == "a\ufffdb"
    undecodable = b"a\xffb".decode("utf-8", "surrogateescape")
    cleaned = storable_text(undecodable)
    cleaned.encode("utf-8")  # does not raise
    assert cleaned.startswith("a") and cleaned.endswith("b")


async def test_a_worker_process_serves_its_delivery_metrics(
    runtime: Runtime, actor: Actor, receiver: Receiver, settings: Settings, tmp_path: Path
) -> None:
    """A dedicated ``interlink worker --metrics-port`` exposes the attempts it made to Prometheus."""
    import re

    import httpx

    url = receiver.script("/metered", Answer(200))
    await add_endpoint(runtime, actor, url)
    await send_event(runtime, actor)
    port = free_port()
    env = {
        **os.environ,
        "INTERLINK_DATABASE_URL": runtime.db.url,
        "INTERLINK_DATA_DIR": str(tmp_path / "metered"),
        "INTERLINK_MASTER_KEYS": settings.master_keys,
        "INTERLINK_KEY_PEPPER": settings.key_pepper,
        "INTERLINK_ALLOWED_TARGET_NETWORKS": json.dumps(LOCAL),
        "INTERLINK_WORKER_POLL_SECONDS": "0.1",
        "INTERLINK_LOG_LEVEL": "WARNING",
    }
    worker_process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "interlink",
        "worker",
        "--metrics-port",
        str(port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    success = re.compile(
        r'^interlink_webhook_attempts_total\{[^}]*outcome="success"[^}]*\} 1\.0$', re.MULTILINE
    )
    text = ""
    try:
        await receiver.wait_for(lambda: len(receiver.received("/metered")) == 1, timeout=30)
        async with httpx.AsyncClient() as client:
            for _ in range(100):  # the count appears once the attempt is recorded
                try:
                    text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    text = ""
                if success.search(text):
                    break
                await asyncio.sleep(0.1)
    finally:
        worker_process.send_signal(signal.SIGTERM)
        await worker_process.wait()
    assert success.search(text), text[-2000:]
