"""The delivery engine's limits across workers, batch delivery and deleted endpoints, on SQLite and
PostgreSQL, against the real receiver of tests/receiver.py (every request verified with the
``standardwebhooks`` package where secrets are set)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.actor import Actor, system_actor
from interlink.core.enums import DeliveryStatus
from interlink.core.settings import Settings
from interlink.outbound.transport import HttpTransport, TransportError
from interlink.runtime import Runtime
from interlink.webhooks import delivery as engine
from interlink.webhooks import ingest as ingest_module
from interlink.webhooks import ssrf
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker, RateGate
from interlink.webhooks.endpoints import Endpoints, EndpointSpec, active_secrets
from interlink.webhooks.ingest import EventSpec, ingest, ingest_batch
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery
from tests.conftest import make_settings
from tests.receiver import Answer, Received, Receiver, receiver_fixture  # noqa: F401  (fixture)

LOCAL = ["127.0.0.0/8"]
JITTER = 1.0
"""How far requests may bunch up on the way from their claim to the receiver. The rate limit itself
is proven on the claims' own times (strictly); under a loaded suite a batch of sends can stall for
more than half a second and arrive together with the next claims' requests."""


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path / "data", allowed_target_networks=LOCAL)


@pytest.fixture
def actor(admin: BootstrapResult) -> Actor:
    return system_actor(admin.tenant_id)


def new_worker(runtime: Runtime, name: str, **config: Any) -> DeliveryWorker:
    values: dict[str, Any] = {"concurrency": 16, "batch_size": 16, "lease_seconds": 30, "poll_interval": 0.02}
    values.update(config)
    return DeliveryWorker(
        runtime.db, runtime.keyring, runtime.transport, DeliveryConfig(**values), worker_id=name
    )


@pytest.fixture
async def worker(runtime: Runtime) -> AsyncIterator[DeliveryWorker]:
    yield new_worker(runtime, "worker-a")


async def add_endpoint(runtime: Runtime, actor: Actor, url: str, **fields: Any) -> tuple[str, list[str]]:
    service = Endpoints(runtime.keyring, runtime.allowed_target_networks)
    async with runtime.db.unit_of_work() as session:
        row = await service.create(session, actor, EndpointSpec(url=url, **fields))
    async with runtime.db.unit_of_work(write=False) as session:
        return row.id, await active_secrets(session, runtime.keyring, row.id)


async def delete_endpoint(runtime: Runtime, actor: Actor, endpoint_id: str) -> None:
    service = Endpoints(runtime.keyring, runtime.allowed_target_networks)
    async with runtime.db.unit_of_work() as session:
        await service.delete(session, actor, endpoint_id)


async def send_events(runtime: Runtime, actor: Actor, count: int, **fields: Any) -> list[str]:
    """``count`` events ``{"n": 0..count-1, **fields}`` in one ingest; their ids in order."""
    specs = [EventSpec(type="order.created", payload={"n": n, **fields}) for n in range(count)]
    async with runtime.db.unit_of_work() as session:
        return [r.event.id for r in await ingest_batch(session, actor, specs)]


async def deliveries(runtime: Runtime, **where: Any) -> list[WebhookDelivery]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = sa.select(WebhookDelivery).filter_by(**where).order_by(WebhookDelivery.id)
        return list((await session.scalars(stmt)).all())


async def attempts(runtime: Runtime) -> list[WebhookAttempt]:
    async with runtime.db.unit_of_work(write=False) as session:
        stmt = sa.select(WebhookAttempt).order_by(WebhookAttempt.started_at, WebhookAttempt.id)
        return list((await session.scalars(stmt)).all())


async def eventually(predicate: Callable[[], Any], timeout: float = 20.0) -> None:
    """Poll an async or sync predicate until it holds (a wait, never a timing assertion)."""
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.02)


async def sending(runtime: Runtime, endpoint_id: str) -> int:
    return len(await deliveries(runtime, endpoint_id=endpoint_id, status=DeliveryStatus.SENDING))


@dataclass(frozen=True)
class Claimed:
    """One claim a worker made: it ran between ``before`` and ``after`` (monotonic seconds)."""

    before: float
    after: float
    works: list[engine.Work]

    @property
    def sends(self) -> int:
        return len({w.batch_id or w.delivery_id for w in self.works})


@pytest.fixture
def claims(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Claimed]]:
    """Every claim the workers make, in order."""
    made: list[Claimed] = []
    original = engine.claim

    async def logged(*args: Any, **kwargs: Any) -> list[engine.Work]:
        before = time.monotonic()
        works = await original(*args, **kwargs)
        made.append(Claimed(before, time.monotonic(), works))
        return works

    monkeypatch.setattr(engine, "claim", logged)
    yield made


def assert_verified(requests: list[Received]) -> None:
    assert requests
    bad = [(r.path, r.verify_error) for r in requests if r.verified is not True]
    assert not bad, bad


# -- planner statistics after a burst ------------------------------------------------------------


async def _planner_rows(runtime: Runtime) -> float:
    async with runtime.db.unit_of_work(write=False) as session:
        query = "SELECT reltuples FROM pg_class WHERE oid = 'webhook_deliveries'::regclass"
        return float((await session.execute(sa.text(query))).scalar_one())


async def test_a_burst_of_deliveries_gets_fresh_planner_statistics(
    runtime: Runtime,
    actor: Actor,
    receiver: Receiver,
    worker: DeliveryWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL plans the claim from ``webhook_deliveries``' statistics. After a burst of ingest
    into a small queue the worker's housekeeping ANALYZEs the table (autovacuum would take about a
    minute), once; SQLite has nothing to refresh."""
    monkeypatch.setattr(engine, "STATISTICS_MIN_PAGES", 2)
    url = receiver.script("/burst", Answer(200))
    await add_endpoint(runtime, actor, url)
    if runtime.db.is_sqlite:
        await send_events(runtime, actor, 100)
        await send_events(runtime, actor, 50)
        assert await engine.refresh_queue_statistics(runtime.db) is False
        return
    async with runtime.db.unit_of_work() as session:  # earlier tests' rows do not count
        await session.execute(sa.text("ANALYZE webhook_deliveries"))
    assert await engine.refresh_queue_statistics(runtime.db) is False  # nothing grew since
    await send_events(runtime, actor, 100)
    await send_events(runtime, actor, 50)
    assert await _planner_rows(runtime) < 150  # the planner still sees the table as it was

    await worker.claim_once()  # housekeeping first, then the claim
    assert await _planner_rows(runtime) >= 150
    assert await engine.refresh_queue_statistics(runtime.db) is False  # fresh: not again
    await worker.drain()  # what the claim took is sent and recorded


# -- endpoint views kept between claims ----------------------------------------------------------


async def test_a_worker_reads_an_endpoint_again_only_when_it_changed(
    runtime: Runtime,
    actor: Actor,
    receiver: Receiver,
    worker: DeliveryWorker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker keeps endpoint views between claims: the next claim reads neither the endpoint nor
    its secrets again, but an update or a secret rotation is used by the very next delivery."""
    worker.views.ttl = 3600  # only a change may make the worker read the endpoint again
    loads: list[list[str]] = []
    original = engine._load_secrets

    async def counted(session: Any, keyring: Any, endpoint_ids: Any) -> dict[str, list[str]]:
        wanted = sorted(endpoint_ids)
        loads.append(wanted)
        return await original(session, keyring, wanted)

    monkeypatch.setattr(engine, "_load_secrets", counted)
    url = receiver.script("/cached", Answer(200))
    endpoint_id, secrets = await add_endpoint(runtime, actor, url)
    receiver.secrets["/cached"] = secrets
    for _ in range(2):
        await send_events(runtime, actor, 1)
        await worker.drain()
    assert len(receiver.received("/cached")) == 2
    assert loads == [[endpoint_id]]  # read by the first claim, then served from the worker's views

    service = Endpoints(runtime.keyring, runtime.allowed_target_networks)
    async with runtime.db.unit_of_work() as session:
        await service.update(session, actor, endpoint_id, {"headers": {"X-Changed": "yes"}})
    await send_events(runtime, actor, 1)
    await worker.drain()
    assert receiver.received("/cached")[-1].headers.get("x-changed") == "yes"
    assert len(loads) == 2

    async with runtime.db.unit_of_work() as session:
        rotated = await service.rotate_secret(session, actor, endpoint_id)
    receiver.secrets["/cached"] = [rotated.value]  # only the new secret verifies
    await send_events(runtime, actor, 1)
    await worker.drain()
    last = receiver.received("/cached")[-1]
    assert last.verified is True, last.verify_error
    assert len(loads) == 3
    assert len(receiver.received("/cached")) == 4


# -- max_in_flight across workers ----------------------------------------------------------------


async def test_max_in_flight_holds_across_two_workers(
    runtime: Runtime, actor: Actor, receiver: Receiver, claims: list[Claimed]
) -> None:
    """Two workers, one endpoint with maxInFlight 2 that holds every request: the receiver never
    has more than 2 at once, the claims take no more than the free slots (nothing is claimed to be
    handed back), and another endpoint is served meanwhile."""
    slow_url = receiver.script("/slow", Answer(gated=True))
    fast_url = receiver.script("/fast", Answer(200))
    slow_id, slow_secrets = await add_endpoint(runtime, actor, slow_url, max_in_flight=2, timeout_seconds=60)
    _fast_id, fast_secrets = await add_endpoint(runtime, actor, fast_url)
    receiver.secrets.update({"/slow": slow_secrets, "/fast": fast_secrets})
    await send_events(runtime, actor, 12)

    workers = [new_worker(runtime, "worker-a"), new_worker(runtime, "worker-b")]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await receiver.wait_for(lambda: len(receiver.received("/fast")) == 12)
        await receiver.wait_for(lambda: receiver.in_progress.get("/slow", 0) == 2)
        claims_before = len(claims)
        # Both workers keep claiming while the slow endpoint is full; none gets a third slot.
        await eventually(lambda: len(claims) >= claims_before + 20)
        assert receiver.in_progress["/slow"] == 2
        assert await sending(runtime, slow_id) == 2
        assert all(w.in_flight <= 2 for w in workers)

        receiver.release("/slow")
        await receiver.wait_for(lambda: len(receiver.received("/slow")) == 12)
        await eventually(
            lambda: _all_delivered(runtime, slow_id),
        )
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
    assert receiver.max_in_progress["/slow"] == 2
    assert len({r.webhook_id for r in receiver.received("/slow")}) == 12  # no duplicates
    assert_verified(receiver.requests)
    assert len(await attempts(runtime)) == 24  # one attempt each: nothing was released and re-sent


async def _all_delivered(runtime: Runtime, endpoint_id: str) -> bool:
    rows = await deliveries(runtime, endpoint_id=endpoint_id)
    return bool(rows) and all(d.status is DeliveryStatus.DELIVERED for d in rows)


async def test_a_sent_delivery_frees_its_endpoint_slot_before_its_outcome_is_recorded(
    runtime: Runtime, actor: Actor, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """maxInFlight counts requests in flight: once a worker's request is answered, the endpoint's
    slot is free for its next claim even while the outcome waits to be recorded (the flush
    lingers to share a transaction). Nothing is sent twice."""
    recording = asyncio.Event()
    original = engine.record

    async def held(*args: Any, **kwargs: Any) -> None:
        await recording.wait()
        await original(*args, **kwargs)

    monkeypatch.setattr(engine, "record", held)
    url = receiver.script("/one-slot", Answer(200))
    endpoint_id, secrets = await add_endpoint(runtime, actor, url, max_in_flight=1)
    receiver.secrets["/one-slot"] = secrets
    await send_events(runtime, actor, 3)
    worker = new_worker(runtime, "worker-a")
    task = asyncio.create_task(worker.run())
    try:
        # All three are sent one after the other while no outcome has been recorded yet.
        await receiver.wait_for(lambda: len(receiver.received("/one-slot")) == 3)
        assert receiver.max_in_progress["/one-slot"] == 1
        assert await sending(runtime, endpoint_id) == 3
        recording.set()
        await eventually(lambda: _all_delivered(runtime, endpoint_id))
    finally:
        recording.set()
        worker.stop()
        await task
    assert len({r.webhook_id for r in receiver.received("/one-slot")}) == 3
    assert len(await attempts(runtime)) == 3
    assert_verified(receiver.requests)


async def test_a_backlog_on_a_single_slot_endpoint_is_claimed_one_at_a_time(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker, claims: list[Claimed]
) -> None:
    """maxInFlight 1 with a backlog: each claim takes the one free slot, not a full batch."""
    url = receiver.script("/one", Answer(200))
    endpoint_id, _ = await add_endpoint(runtime, actor, url, max_in_flight=1)
    await send_events(runtime, actor, 10)
    await worker.drain()
    assert len(receiver.received("/one")) == 10
    assert max(c.sends for c in claims) == 1
    assert receiver.max_in_progress["/one"] == 1
    assert await _all_delivered(runtime, endpoint_id)


# -- rate limits ---------------------------------------------------------------------------------


def test_rate_gate_allows_burst_then_rate() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    gate = RateGate(5.0, None)
    assert gate.burst == 5 and gate.allowance(now) == 5
    after = gate.advanced(now, 5)
    assert after == now + timedelta(seconds=0.2)  # the next delivery in 1/rate
    gate = RateGate(5.0, after)
    assert gate.allowance(now) == 0
    assert gate.allowance(now + timedelta(seconds=0.2)) == 1
    assert gate.allowance(now + timedelta(seconds=0.6)) == 3
    assert gate.allowance(now + timedelta(hours=1)) == 5  # a pause refills only up to the burst
    slow = RateGate(0.5, None)  # below one per second: the burst is still one
    assert slow.allowance(now) == 1
    assert slow.advanced(now, 1) == now + timedelta(seconds=2)


async def test_rate_limit_spaces_deliveries_across_workers(
    runtime: Runtime, actor: Actor, receiver: Receiver, claims: list[Claimed]
) -> None:
    """5/s with 20 events: a burst of 5, then 5 per second, whichever worker claims; held-back
    deliveries are not attempts; an endpoint without a limit is not slowed down."""
    rate, burst, total = 5.0, 5, 20
    limited_id, limited_secrets = await add_endpoint(
        runtime, actor, receiver.script("/limited", Answer(200)), rate_limit_per_second=rate
    )
    _free_id, free_secrets = await add_endpoint(runtime, actor, receiver.script("/free", Answer(200)))
    receiver.secrets.update({"/limited": limited_secrets, "/free": free_secrets})
    await send_events(runtime, actor, total)

    workers = [new_worker(runtime, "worker-a"), new_worker(runtime, "worker-b")]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        await receiver.wait_for(lambda: len(receiver.received("/free")) == total)
        limited_when_free_done = len(receiver.received("/limited"))
        await receiver.wait_for(lambda: len(receiver.received("/limited")) == total, timeout=30)
        await eventually(lambda: _all_delivered(runtime, limited_id))
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)

    # The claims (whichever worker made them) never took more than burst + rate × t over any
    # stretch of time t; a claim's own time lies between its ``before`` and ``after``.
    taken = [c for c in claims if any(w.endpoint.id == limited_id for w in c.works)]
    counts = [sum(w.endpoint.id == limited_id for w in c.works) for c in taken]
    assert sum(counts) == total and max(counts) <= burst
    for i in range(len(taken)):
        for j in range(i, len(taken)):
            stretch = taken[j].after - min(c.before for c in taken[i : j + 1])
            assert sum(counts[i : j + 1]) <= burst + rate * stretch, (i, j, counts)
    arrivals = [r.at for r in receiver.received("/limited")]
    # Over any stretch of time t, at most burst + rate × t requests; the arrivals may bunch up by
    # the scheduling jitter between a claim and its request reaching the receiver (JITTER).
    for i in range(len(arrivals)):
        for j in range(i, len(arrivals)):
            allowed = burst + rate * (arrivals[j] - arrivals[i] + JITTER)
            assert j - i + 1 <= allowed, (i, j, [round(a - arrivals[0], 3) for a in arrivals])
    assert taken[-1].after - taken[0].before >= (total - burst) / rate - 0.01
    assert arrivals[-1] - arrivals[0] >= (total - burst) / rate - JITTER
    assert limited_when_free_done < total  # the free endpoint finished while the limited one waited
    rows = await deliveries(runtime, endpoint_id=limited_id)
    assert [d.attempts for d in rows] == [1] * total
    assert len([a for a in await attempts(runtime) if a.endpoint_id == limited_id]) == total
    assert_verified(receiver.requests)


# -- batches -------------------------------------------------------------------------------------


def batch_bodies(requests: list[Received]) -> list[dict[str, Any]]:
    bodies = [r.json() for r in requests]
    for request, body in zip(requests, bodies, strict=True):
        assert request.webhook_id.startswith("bat_"), request.webhook_id
        assert body["type"] == "batch" and isinstance(body["data"], list)
        assert datetime.fromisoformat(body["timestamp"]).tzinfo is not None
    return bodies


async def test_batch_endpoint_bundles_events_into_signed_requests(
    runtime: Runtime,
    actor: Actor,
    receiver: Receiver,
    worker: DeliveryWorker,
    client: httpx.AsyncClient,
    admin_headers: dict[str, str],
) -> None:
    """maxCount 5 and 12 events: two full batches go at once, the last two after maxWait; each
    request is one signed Standard Webhooks message whose data holds the events' envelopes."""
    url = receiver.script("/batch", Answer(200))
    endpoint_id, secrets = await add_endpoint(
        runtime, actor, url, batch_config={"maxCount": 5, "maxBytes": 1_000_000, "maxWaitSeconds": 60}
    )
    receiver.secrets["/batch"] = secrets
    event_ids = await send_events(runtime, actor, 12)

    await worker.drain()
    assert [len(b["data"]) for b in batch_bodies(receiver.received("/batch"))] == [5, 5]
    waiting = await deliveries(runtime, endpoint_id=endpoint_id, status=DeliveryStatus.PENDING)
    assert len(waiting) == 2

    clock.shift(timedelta(seconds=61))  # the oldest waiting event has waited maxWaitSeconds
    await worker.drain()
    requests = receiver.received("/batch")
    bodies = batch_bodies(requests)
    assert [len(b["data"]) for b in bodies] == [5, 5, 2]
    assert_verified(requests)
    items = [item for body in bodies for item in body["data"]]
    assert [item["data"]["n"] for item in items] == list(range(12))
    assert {item["type"] for item in items} == {"order.created"}

    rows = await deliveries(runtime, endpoint_id=endpoint_id)
    assert {d.status for d in rows} == {DeliveryStatus.DELIVERED}
    by_event = {d.event_id: d for d in rows}
    batch_ids = [r.webhook_id for r in requests]
    assert [by_event[e].batch_id for e in event_ids] == [batch_ids[0]] * 5 + [batch_ids[1]] * 5 + [
        batch_ids[2]
    ] * 2
    rows_attempts = await attempts(runtime)
    assert len(rows_attempts) == 12  # one attempt row per delivery
    assert {a.batch_id for a in rows_attempts} == set(batch_ids)
    assert all(a.succeeded and a.request_headers["webhook-id"] == a.batch_id for a in rows_attempts)
    listed = await client.get(f"/v1/deliveries/{by_event[event_ids[0]].id}/attempts", headers=admin_headers)
    assert listed.status_code == 200, listed.text
    assert [a["batchId"] for a in listed.json()["data"]] == [batch_ids[0]]


async def test_batch_waits_for_max_wait_when_not_full(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/wait", Answer(200))
    await add_endpoint(
        runtime, actor, url, batch_config={"maxCount": 10, "maxBytes": 1_000_000, "maxWaitSeconds": 30}
    )
    await send_events(runtime, actor, 3)
    await worker.drain()
    assert receiver.received("/wait") == []
    # Well inside the 30 s (the real seconds the test itself takes count too, and a loaded
    # machine can spend a few of them between the events and this drain).
    clock.shift(timedelta(seconds=20))
    await worker.drain()
    assert receiver.received("/wait") == []
    clock.shift(timedelta(seconds=11))
    await worker.drain()
    [request] = receiver.received("/wait")
    assert [item["data"]["n"] for item in request.json()["data"]] == [0, 1, 2]


async def test_batch_is_split_at_max_bytes(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    """Envelopes of about 400 bytes and maxBytes 1024: two per request, none over the limit."""
    url = receiver.script("/small", Answer(200))
    _endpoint_id, secrets = await add_endpoint(
        runtime, actor, url, batch_config={"maxCount": 10, "maxBytes": 1024, "maxWaitSeconds": 60}
    )
    receiver.secrets["/small"] = secrets
    await send_events(runtime, actor, 10, pad="x" * 300)
    await worker.drain()  # ten waiting events fill maxCount: due at once
    requests = receiver.received("/small")
    assert_verified(requests)
    assert all(len(r.body) <= 1024 for r in requests), [len(r.body) for r in requests]
    bodies = batch_bodies(requests)
    assert [len(b["data"]) for b in bodies] == [2] * 5
    assert [item["data"]["n"] for b in bodies for item in b["data"]] == list(range(10))
    assert len({r.webhook_id for r in requests}) == 5


async def test_a_failed_batch_is_retried_as_the_same_set(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/flaky", Answer(503), Answer(200))
    endpoint_id, secrets = await add_endpoint(
        runtime,
        actor,
        url,
        retry_schedule=[60],
        batch_config={"maxCount": 3, "maxBytes": 1_000_000, "maxWaitSeconds": 60},
    )
    receiver.secrets["/flaky"] = secrets
    await send_events(runtime, actor, 3)
    await worker.drain()
    rows = await deliveries(runtime, endpoint_id=endpoint_id)
    assert {d.status for d in rows} == {DeliveryStatus.RETRYING}
    assert len({d.next_attempt_at for d in rows}) == 1  # one schedule for the whole batch
    assert len({d.batch_id for d in rows}) == 1
    await send_events(runtime, actor, 2)  # newer events do not join the failed batch

    clock.shift(timedelta(seconds=73))
    await worker.drain()
    first, *later = receiver.received("/flaky")
    [again] = [r for r in later if r.webhook_id == first.webhook_id]  # receivers can deduplicate
    assert again.json()["data"] == first.json()["data"]
    [newer] = [r for r in later if r.webhook_id != first.webhook_id]
    assert [item["data"]["n"] for item in newer.json()["data"]] == [0, 1]
    assert_verified([first, *later])
    rows = await deliveries(runtime, endpoint_id=endpoint_id)
    retried = [d for d in rows if d.batch_id == first.webhook_id]
    assert len(retried) == 3 and all(
        d.status is DeliveryStatus.DELIVERED and d.attempts == 2 for d in retried
    )


async def test_a_manually_retried_batch_member_goes_out_under_a_new_batch_id(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    """Receivers deduplicate on ``webhook-id``: a resend of one member under the old batch's id
    would be dropped as already seen, so a requeued delivery is bundled afresh."""
    from interlink.webhooks.deliveries import retry_delivery

    url = receiver.script("/again", Answer(200), Answer(200))
    endpoint_id, secrets = await add_endpoint(
        runtime, actor, url, batch_config={"maxCount": 2, "maxBytes": 1_000_000, "maxWaitSeconds": 60}
    )
    receiver.secrets["/again"] = secrets
    await send_events(runtime, actor, 2)
    await worker.drain()
    rows = await deliveries(runtime, endpoint_id=endpoint_id)
    assert {d.status for d in rows} == {DeliveryStatus.DELIVERED}
    async with runtime.db.unit_of_work() as session:
        await retry_delivery(session, actor, rows[0].id)
    clock.shift(timedelta(seconds=61))  # the lone member waits at most maxWaitSeconds for company
    await worker.drain()
    first, second = receiver.received("/again")
    assert_verified([first, second])
    assert second.webhook_id != first.webhook_id and len(second.json()["data"]) == 1


async def test_transformations_apply_per_event_in_a_batch(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/shaped", Answer(200))
    _endpoint_id, secrets = await add_endpoint(
        runtime,
        actor,
        url,
        transformation='{"number": payload.n * 10}',
        batch_config={"maxCount": 3, "maxBytes": 1_000_000, "maxWaitSeconds": 60},
    )
    receiver.secrets["/shaped"] = secrets
    await send_events(runtime, actor, 3)
    await worker.drain()
    [request] = receiver.received("/shaped")
    assert_verified([request])
    assert request.json()["data"] == [{"number": 0}, {"number": 10}, {"number": 20}]


# -- deleted endpoints ---------------------------------------------------------------------------


async def test_a_delivery_in_flight_when_its_endpoint_is_deleted_is_cancelled(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/doomed", Answer(500, gated=True))
    endpoint_id, _ = await add_endpoint(runtime, actor, url)
    await send_events(runtime, actor, 1)
    task = asyncio.create_task(worker.run())
    try:
        await receiver.wait_for(lambda: receiver.in_progress.get("/doomed", 0) == 1)
        await delete_endpoint(runtime, actor, endpoint_id)
        receiver.release("/doomed")  # the attempt fails: it would be retried, but nothing will go
        await eventually(lambda: _status_is(runtime, endpoint_id, DeliveryStatus.CANCELLED))
    finally:
        worker.stop()
        await task
    [row] = await deliveries(runtime, endpoint_id=endpoint_id)
    assert row.attempts == 1 and row.locked_by is None
    [attempt] = await attempts(runtime)
    assert attempt.response_status == 500  # the attempt is kept


async def _status_is(runtime: Runtime, endpoint_id: str, status: DeliveryStatus) -> bool:
    rows = await deliveries(runtime, endpoint_id=endpoint_id)
    return bool(rows) and all(d.status is status for d in rows)


async def test_an_expired_lease_of_a_deleted_endpoint_is_cancelled(
    runtime: Runtime, actor: Actor, receiver: Receiver, worker: DeliveryWorker
) -> None:
    url = receiver.script("/gone", Answer(200))
    endpoint_id, _ = await add_endpoint(runtime, actor, url)
    await send_events(runtime, actor, 1)
    [held] = await engine.claim(runtime.db, runtime.keyring, "crashed-worker", 10, lease_seconds=30)
    await delete_endpoint(runtime, actor, endpoint_id)
    clock.shift(timedelta(seconds=31))
    await worker.drain()
    [row] = await deliveries(runtime, endpoint_id=endpoint_id)
    assert row.id == held.delivery_id and row.status is DeliveryStatus.CANCELLED
    assert receiver.received("/gone") == []


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_ingest_racing_a_delete_cancels_what_it_wrote(
    runtime: Runtime, actor: Actor, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL (SQLite runs one writer at a time): the ingest read the endpoint before the
    delete committed and inserts its deliveries after the delete's cancel ran."""
    endpoint_id, _ = await add_endpoint(runtime, actor, receiver.script("/raced", Answer(200)))
    original = ingest_module._candidate_endpoints

    async def then_delete(*args: Any, **kwargs: Any) -> Any:
        found = await original(*args, **kwargs)
        await delete_endpoint(runtime, actor, endpoint_id)  # commits while the ingest is open
        return found

    monkeypatch.setattr(ingest_module, "_candidate_endpoints", then_delete)
    async with runtime.db.unit_of_work() as session:
        result = await ingest(session, actor, EventSpec(type="order.created", payload={"n": 1}))
    [created] = result.deliveries
    assert created.status is DeliveryStatus.CANCELLED
    [row] = await deliveries(runtime, endpoint_id=endpoint_id)
    assert row.status is DeliveryStatus.CANCELLED


# -- immediate sends -----------------------------------------------------------------------------


async def test_immediate_sends_respect_max_in_flight_and_size_their_lease(
    runtime: Runtime, actor: Actor, receiver: Receiver
) -> None:
    """deliver_now on an endpoint with one free slot sends one and hands the other to the queue at
    once (not after the ingest hold); its lease follows the endpoint's timeout, not 60 s."""
    url = receiver.script("/now", Answer(200, gated=True))
    endpoint_id, _ = await add_endpoint(runtime, actor, url, max_in_flight=1, timeout_seconds=5)
    async with runtime.db.unit_of_work() as session:
        results = await ingest_batch(
            session,
            actor,
            [EventSpec(type="order.created", payload={"n": n}, immediate=True) for n in range(2)],
        )
    ids = [d.id for r in results for d in r.deliveries]
    held_until = min(d.next_attempt_at for r in results for d in r.deliveries)
    assert held_until > clock.utcnow() + timedelta(seconds=20)  # the ingest hold

    task = asyncio.create_task(engine.deliver_now(runtime.db, runtime.keyring, runtime.transport, ids))
    try:
        await receiver.wait_for(lambda: receiver.in_progress.get("/now", 0) == 1)
        [busy] = await deliveries(runtime, endpoint_id=endpoint_id, status=DeliveryStatus.SENDING)
        assert busy.lease_expires_at is not None
        lease = (busy.lease_expires_at - busy.updated_at).total_seconds()
        assert lease == pytest.approx(5 + engine.LEASE_MARGIN_SECONDS)
        [queued] = await deliveries(runtime, endpoint_id=endpoint_id, status=DeliveryStatus.PENDING)
        assert queued.next_attempt_at <= clock.utcnow()  # due now: the queue takes it
    finally:
        receiver.release("/now")
        outcomes = await task
    assert [o.status for o in outcomes] == [DeliveryStatus.DELIVERED]


async def test_name_resolution_counts_against_the_send_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that hangs longer than the timeout ends the attempt as ``dns``."""

    async def slow_check(url: str, allowed: Any) -> list[Any]:
        await asyncio.sleep(5)
        return []

    monkeypatch.setattr(ssrf, "check_target", slow_check)
    transport = HttpTransport()
    try:
        with pytest.raises(TransportError) as caught:
            await transport.send("POST", "http://hangs.example/hook", {}, b"{}", 0.2)
    finally:
        await transport.close()
    assert caught.value.error_class == "dns"
    assert "did not finish" in caught.value.message


def test_batch_body_is_compact_json() -> None:
    """The size check counts exactly what is sent: compact JSON, UTF-8."""
    document = {"type": "t", "data": {"name": "é"}}
    assert (
        engine._json_bytes(document)
        == json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
    )


def test_sqlite_recording_binds_what_the_column_types_would() -> None:
    """On SQLite, attempts and outcomes are bound by the driver (no SQLAlchemy parameter
    processing): each value must be what the model's column type would have bound, so that rows
    compare and read back the same (times as naive UTC text to the microsecond, flags 0/1, JSON
    as JSON text, ``None`` in a JSON column as ``null``)."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()  # type: ignore[no-untyped-call]
    table = WebhookAttempt.__table__
    started = datetime(2026, 11, 26, 21, 5, 6, 789, tzinfo=UTC)
    row: dict[str, Any] = {
        "id": "att_1",
        "tenant_id": "ten_1",
        "delivery_id": "dlv_1",
        "endpoint_id": "ep_1",
        "attempt_number": 2,
        "started_at": started.astimezone(timezone(timedelta(hours=-5))),  # any zone: stored as UTC
        "duration_ms": 12.5,
        "request_headers": {"content-type": "application/json", "webhook-id": "msg_1"},
        "response_status": None,
        "response_headers": None,
        "response_body": "Zoë ✓",
        "error_class": "connect",
        "error_message": "refused",
        "succeeded": True,
        "batch_id": None,
    }
    columns = tuple(sorted(row))
    assert len(columns) == len(table.columns)
    sql, converters = engine._sqlite_attempts_insert(columns)
    assert sql.startswith("INSERT INTO webhook_attempts (")
    for name, convert in zip(columns, converters, strict=True):
        column_type = table.c[name].type
        process = column_type._cached_bind_processor(dialect)  # what SQLAlchemy would bind
        expected = process(row[name]) if process is not None else row[name]
        actual = convert(row[name]) if convert is not None else row[name]
        if isinstance(column_type, sa.JSON):
            assert json.loads(actual) == json.loads(expected), name
        else:
            assert actual == expected and type(actual) is type(expected), name
    assert engine._sqlite_time(started) == "2026-11-26 21:05:06.000789"
    assert engine._sqlite_time(None) is None
