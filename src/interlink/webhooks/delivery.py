"""The delivery engine: claim due deliveries in batches, send them signed, record every attempt.

The ``webhook_deliveries`` row is the job. Contracts:

* **Claim.** ``UPDATE webhook_deliveries SET status='SENDING', locked_by=…, lease_expires_at=…
  WHERE id IN (SELECT id … ORDER BY priority, next_attempt_at LIMIT n FOR UPDATE SKIP LOCKED)
  RETURNING …`` on PostgreSQL (any number of workers claim disjoint rows without waiting); the same
  statement under ``BEGIN IMMEDIATE`` on SQLite. Due means PENDING/RETRYING with
  ``next_attempt_at`` passed, or SENDING whose lease expired (a crashed worker loses nothing). Only
  deliveries of enabled endpoints are claimed. The event, endpoint and signing secrets of the whole
  batch are read in the claiming transaction.
* **At least once.** A delivery is finished only after its attempt was recorded; a worker that
  dies mid-batch leaves SENDING rows whose lease expires, and another worker sends them again (the
  only source of duplicates, bounded by the batches in flight). Receivers deduplicate on
  ``webhook-id``, which is the event id and the same on every attempt.
* **Isolation.** Each endpoint has at most ``max_in_flight`` deliveries in flight in one worker;
  a saturated endpoint is left out of the next claims, so a slow or hanging endpoint holds only its
  own slots and never delays deliveries to other endpoints.
* **Batched writes.** Attempts, delivery states and endpoint health are written in one
  transaction per flush (executemany), never one round trip per delivery. Writes are fenced by
  ``locked_by``: a worker whose lease expired cannot overwrite the newer owner's state.
* **Outcomes.** 2xx: DELIVERED. 410: FAILED and the endpoint is disabled (reason recorded, audited).
  Anything else (3xx, 4xx, 5xx, timeout, dns, connect, tls, refused) schedules a retry after the
  endpoint's ``retry_schedule`` (default :data:`DEFAULT_RETRY_SCHEDULE`, ±20 % jitter), or after
  ``Retry-After`` (seconds or HTTP date, clamped to 1 s – 1 day) when the answer carries one;
  when the schedule is exhausted the delivery is FAILED. A template that fails on an event
  (``transformation``) fails the delivery at once.

The request
-----------
``POST <endpoint url>`` with ``Content-Type: application/json``, the endpoint's custom headers and
the Standard Webhooks headers ``webhook-id`` (the event id), ``webhook-timestamp`` (sender's wall
clock, Unix seconds) and ``webhook-signature`` (one ``v1,`` signature per active secret). The body
is the endpoint's transformation applied to ``{"type", "payload", "metadata"}`` when one is set,
otherwise the envelope::

    {"type": "invoice.paid", "timestamp": "2026-01-01T12:00:00.123456+00:00", "data": {...payload}}

where ``timestamp`` is when the event was accepted (ISO 8601, UTC) and ``data`` is the payload as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, cast

import sqlalchemy as sa
import structlog

from interlink.core import audit, pg_listen
from interlink.core.actor import system_actor
from interlink.core.clock import utcnow
from interlink.core.context import correlation_id_var
from interlink.core.crypto import Keyring
from interlink.core.db import Database, UTCDateTime
from interlink.core.enums import DeliveryChannel, DeliveryStatus
from interlink.core.ids import new_id
from interlink.jobs.worker import default_worker_id
from interlink.outbound.transport import HttpTransport, TransportError, TransportResponse
from interlink.webhooks import endpoints, signing
from interlink.webhooks.ingest import NOTIFY_CHANNEL, filter_document
from interlink.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from interlink.webhooks.schemas import redacted_headers
from interlink.webhooks.transform import Transformation, TransformationError, compile_transformation

log = structlog.get_logger(__name__)

DEFAULT_RETRY_SCHEDULE: Final = (5, 300, 1800, 7200, 18000, 36000, 36000)
JITTER: Final = 0.2
RETRY_AFTER_MIN: Final = 1.0
RETRY_AFTER_MAX: Final = 86_400.0
MAX_RESPONSE_BODY_CHARS: Final = 20_480
MAX_ERROR_CHARS: Final = 2000
CLAIMABLE: Final = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)

_T_DELIVERY = cast(sa.Table, WebhookDelivery.__table__)
_T_ATTEMPT = cast(sa.Table, WebhookAttempt.__table__)


# -- schedule ------------------------------------------------------------------------------------


def retry_delay(attempt: int, schedule: Sequence[int] | None, *, jitter: float = JITTER) -> float | None:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), or None when exhausted."""
    steps = list(schedule) if schedule else list(DEFAULT_RETRY_SCHEDULE)
    if attempt > len(steps):
        return None
    return float(steps[attempt - 1] * (1 + random.uniform(-jitter, jitter)))


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` (seconds or HTTP date) in seconds, clamped to [1 s, 1 day]; None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    seconds: float
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return min(RETRY_AFTER_MAX, max(RETRY_AFTER_MIN, seconds))


# -- what a claim holds --------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointView:
    """What sending needs of an endpoint, read in the claiming transaction."""

    id: str
    tenant_id: str
    url: str
    channel: DeliveryChannel
    headers: dict[str, str]
    timeout_seconds: float
    retry_schedule: list[int] | None
    max_in_flight: int
    transformation: str | None
    secrets: list[str]


@dataclass(frozen=True)
class EventView:
    id: str
    type: str
    payload: Any
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Work:
    """One claimed delivery with everything needed to send it."""

    delivery_id: str
    tenant_id: str
    attempts: int
    correlation_id: str | None
    event: EventView
    endpoint: EndpointView


@dataclass
class Outcome:
    """The result of one attempt, waiting to be written."""

    work: Work
    attempt: dict[str, Any]
    status: DeliveryStatus
    next_attempt_at: datetime
    status_code: int | None
    error_class: str | None
    succeeded: bool
    disable_reason: str | None = None


async def _load_secrets(session: Any, keyring: Keyring, endpoint_ids: Iterable[str]) -> dict[str, list[str]]:
    """Active signing secrets per endpoint, newest first. An endpoint whose secret cannot be
    decrypted gets none (its deliveries retry with an error) instead of stalling the whole batch."""
    wanted = sorted(set(endpoint_ids))
    try:
        return await endpoints.active_secrets_many(session, keyring, wanted)
    except endpoints.SecretUnreadable:
        out: dict[str, list[str]] = {}
        for endpoint_id in wanted:
            try:
                out[endpoint_id] = await endpoints.active_secrets(session, keyring, endpoint_id)
            except endpoints.SecretUnreadable as exc:
                log.warning("endpoint_secret_unreadable", endpoint_id=endpoint_id, error=str(exc))
                out[endpoint_id] = []
        return out


async def claim(
    db: Database,
    keyring: Keyring,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    *,
    exclude_endpoints: Iterable[str] = (),
    exclude_ids: Iterable[str] = (),
    only_ids: Iterable[str] | None = None,
) -> list[Work]:
    """Claim up to ``limit`` due deliveries for ``worker_id`` and read what sending them needs.

    ``only_ids`` restricts the claim to those deliveries (immediate sends), which are claimed
    whatever their ``next_attempt_at`` (ingest holds them back from the queue); ``exclude_ids`` are
    deliveries the caller still holds (never claimed twice by one worker, even after its lease
    expired)."""
    now = utcnow()
    due = sa.or_(
        sa.and_(
            WebhookDelivery.status.in_(CLAIMABLE),
            sa.true() if only_ids is not None else WebhookDelivery.next_attempt_at <= now,
        ),
        sa.and_(WebhookDelivery.status == DeliveryStatus.SENDING, WebhookDelivery.lease_expires_at < now),
    )
    enabled = sa.select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    pick = sa.select(WebhookDelivery.id).where(due, WebhookDelivery.endpoint_id.in_(enabled))
    if only_ids is not None:
        pick = pick.where(WebhookDelivery.id.in_(sorted(set(only_ids))))
    excluded = sorted(set(exclude_endpoints))
    if excluded:
        pick = pick.where(WebhookDelivery.endpoint_id.not_in(excluded))
    held = sorted(set(exclude_ids))
    if held:
        pick = pick.where(WebhookDelivery.id.not_in(held))
    pick = pick.order_by(WebhookDelivery.priority, WebhookDelivery.next_attempt_at).limit(limit)
    if not db.is_sqlite:
        pick = pick.with_for_update(skip_locked=True, of=WebhookDelivery)
    lease_until = now + timedelta(seconds=lease_seconds)
    stmt = (
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(pick.scalar_subquery()))
        .values(
            status=DeliveryStatus.SENDING, locked_by=worker_id, lease_expires_at=lease_until, updated_at=now
        )
        .returning(
            WebhookDelivery.id,
            WebhookDelivery.tenant_id,
            WebhookDelivery.event_id,
            WebhookDelivery.endpoint_id,
            WebhookDelivery.attempts,
            WebhookDelivery.correlation_id,
            WebhookDelivery.priority,
        )
        .execution_options(synchronize_session=False)
    )
    async with db.unit_of_work() as session:
        rows = (await session.execute(stmt)).all()
        if not rows:
            return []
        events = {
            e.id: e
            for e in (
                await session.scalars(
                    sa.select(WebhookEvent).where(WebhookEvent.id.in_({r.event_id for r in rows}))
                )
            ).all()
        }
        endpoint_rows = {
            e.id: e
            for e in (
                await session.scalars(
                    sa.select(WebhookEndpoint).where(WebhookEndpoint.id.in_({r.endpoint_id for r in rows}))
                )
            ).all()
        }
        secrets = await _load_secrets(session, keyring, endpoint_rows)
    views = {
        e.id: EndpointView(
            id=e.id,
            tenant_id=e.tenant_id,
            url=e.url,
            channel=e.channel,
            headers=dict(e.headers or {}),
            timeout_seconds=float(e.timeout_seconds),
            retry_schedule=list(e.retry_schedule) if e.retry_schedule else None,
            max_in_flight=max(1, int(e.max_in_flight)),
            transformation=e.transformation,
            secrets=secrets.get(e.id, []),
        )
        for e in endpoint_rows.values()
    }
    work = [
        Work(
            delivery_id=r.id,
            tenant_id=r.tenant_id,
            attempts=r.attempts,
            correlation_id=r.correlation_id,
            event=EventView(
                id=events[r.event_id].id,
                type=events[r.event_id].event_type,
                payload=events[r.event_id].payload,
                metadata=dict(events[r.event_id].meta or {}),
                created_at=events[r.event_id].created_at,
            ),
            endpoint=views[r.endpoint_id],
        )
        for r in rows
    ]
    work.sort(key=lambda w: (w.event.id, w.delivery_id))
    return work


# -- sending -------------------------------------------------------------------------------------


class _Templates:
    """Compiled transformations, keyed by template text (bounded)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._cache: dict[str, Transformation] = {}

    def get(self, template: str) -> Transformation:
        compiled = self._cache.get(template)
        if compiled is None:
            if len(self._cache) >= self.size:
                self._cache.pop(next(iter(self._cache)))
            compiled = compile_transformation(template)
            self._cache[template] = compiled
        return compiled


def envelope(event: EventView) -> dict[str, Any]:
    """The default body: ``{"type", "timestamp", "data"}``."""
    return {"type": event.type, "timestamp": event.created_at.isoformat(), "data": event.payload}


def _attempt_row(work: Work, started_at: datetime, request_headers: dict[str, str]) -> dict[str, Any]:
    return {
        "id": new_id("att"),
        "tenant_id": work.tenant_id,
        "delivery_id": work.delivery_id,
        "endpoint_id": work.endpoint.id,
        "attempt_number": work.attempts + 1,
        "started_at": started_at,
        "duration_ms": None,
        "request_headers": request_headers,
        "response_status": None,
        "response_headers": None,
        "response_body": None,
        "error_class": None,
        "error_message": None,
        "succeeded": False,
    }


def storable_text(value: str) -> str:
    """Text every database can store: no NUL characters, no lone surrogates (from undecodable
    header bytes). Whatever a receiver answers, recording the attempt must not fail."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return value


def _failure(
    work: Work,
    row: dict[str, Any],
    error_class: str,
    message: str,
    *,
    retry_after: float | None = None,
    final: bool = False,
    status_code: int | None = None,
) -> Outcome:
    now = utcnow()
    row["error_class"] = error_class
    row["error_message"] = storable_text(message)[:MAX_ERROR_CHARS]
    attempt = work.attempts + 1
    delay = None if final else retry_delay(attempt, work.endpoint.retry_schedule)
    if delay is not None and retry_after is not None:
        delay = retry_after
    if delay is None:
        return Outcome(work, row, DeliveryStatus.FAILED, now, status_code, error_class, False)
    return Outcome(
        work, row, DeliveryStatus.RETRYING, now + timedelta(seconds=delay), status_code, error_class, False
    )


class Sender:
    """Builds, signs and sends one delivery; never raises (every failure becomes an :class:`Outcome`)."""

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport
        self.templates = _Templates()

    def body_of(self, work: Work) -> bytes:
        """The request body (raises TransformationError or ValidationFailed for a bad template)."""
        if work.endpoint.transformation:
            document = filter_document(work.event.type, work.event.payload, work.event.metadata)
            shaped = self.templates.get(work.endpoint.transformation).apply(document)
            return json.dumps(shaped, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        return json.dumps(
            envelope(work.event), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()

    async def send(self, work: Work) -> Outcome:
        started_at = utcnow()
        endpoint = work.endpoint
        row = _attempt_row(work, started_at, {})
        if endpoint.channel is not DeliveryChannel.WEBHOOK:
            return _failure(
                work,
                row,
                "other",
                f"channel {endpoint.channel.value} is not served by this worker",
                final=True,
            )
        try:
            # A transformation may use up to its time bound: keep it off the event loop, where it
            # would stall every other send of this worker.
            body = (
                await asyncio.to_thread(self.body_of, work) if endpoint.transformation else self.body_of(work)
            )
        except TransformationError as exc:
            return _failure(work, row, "transformation", f"transformation failed: {exc}", final=True)
        except Exception as exc:
            return _failure(
                work, row, "transformation", f"transformation failed: {type(exc).__name__}: {exc}", final=True
            )
        if not endpoint.secrets:
            return _failure(work, row, "other", "the endpoint has no active signing secret")
        signed = signing.sign(endpoint.secrets, work.event.id, int(time.time()), body)
        headers = {k: v for k, v in endpoint.headers.items() if not k.lower().startswith("webhook-")}
        headers["Content-Type"] = "application/json"
        headers.update(signed.as_dict())
        recorded = redacted_headers(headers)
        recorded["User-Agent"] = self.transport.user_agent
        row["request_headers"] = recorded
        try:
            response = await self.transport.send(
                "POST", endpoint.url, headers, body, endpoint.timeout_seconds
            )
        except TransportError as exc:
            row["duration_ms"] = round(exc.duration_ms, 3)
            return _failure(work, row, exc.error_class, exc.message)
        except Exception as exc:  # a transport bug must not lose the delivery
            return _failure(work, row, "other", f"{type(exc).__name__}: {exc}")
        return self._answered(work, row, response)

    def _answered(self, work: Work, row: dict[str, Any], response: TransportResponse) -> Outcome:
        now = utcnow()
        row["duration_ms"] = round(response.duration_ms, 3)
        row["response_status"] = response.status
        row["response_headers"] = {storable_text(k): storable_text(v) for k, v in response.headers.items()}
        row["response_body"] = storable_text(response.body.decode("utf-8", errors="replace"))[
            :MAX_RESPONSE_BODY_CHARS
        ]
        status = response.status
        if 200 <= status < 300:
            row["succeeded"] = True
            return Outcome(work, row, DeliveryStatus.DELIVERED, now, status, None, True)
        error_class = f"http_{status // 100}xx"
        if status == 410:
            outcome = _failure(
                work, row, error_class, "the endpoint answered 410 Gone", final=True, status_code=status
            )
            outcome.disable_reason = "the endpoint answered 410 Gone"
            return outcome
        lowered = {k.lower(): v for k, v in response.headers.items()}
        retry_after = parse_retry_after(lowered.get("retry-after"), now)
        return _failure(
            work,
            row,
            error_class,
            f"the endpoint answered HTTP {status}",
            retry_after=retry_after,
            status_code=status,
        )


# -- recording -----------------------------------------------------------------------------------


async def record(
    db: Database, worker_id: str, outcomes: Sequence[Outcome], releases: Sequence[Work] = ()
) -> None:
    """Write attempts, delivery states and endpoint health of many deliveries in one transaction."""
    if not outcomes and not releases:
        return
    now = utcnow()
    updates = [
        {
            "b_id": o.work.delivery_id,
            "b_worker": worker_id,
            "b_status": o.status,
            "b_attempts": o.work.attempts + 1,
            "b_next": o.next_attempt_at,
            "b_code": o.status_code,
            "b_error": o.error_class,
            "b_delivered": now if o.succeeded else None,
            "b_now": now,
        }
        for o in outcomes
    ]
    t = _T_DELIVERY
    async with db.unit_of_work() as session:
        conn = await session.connection()
        if outcomes:
            await conn.execute(sa.insert(_T_ATTEMPT), [o.attempt for o in outcomes])
            await conn.execute(
                sa.update(t)
                .where(
                    t.c.id == sa.bindparam("b_id"),
                    t.c.locked_by == sa.bindparam("b_worker"),
                    t.c.status == DeliveryStatus.SENDING,
                )
                .values(
                    status=sa.bindparam("b_status", type_=t.c.status.type),
                    attempts=sa.bindparam("b_attempts"),
                    next_attempt_at=sa.bindparam("b_next", type_=UTCDateTime()),
                    last_status_code=sa.bindparam("b_code"),
                    last_error_class=sa.bindparam("b_error"),
                    delivered_at=sa.func.coalesce(
                        sa.bindparam("b_delivered", type_=UTCDateTime()), t.c.delivered_at
                    ),
                    locked_by=None,
                    lease_expires_at=None,
                    updated_at=sa.bindparam("b_now", type_=UTCDateTime()),
                ),
                updates,
            )
        if releases:
            await _release(conn, worker_id, [w.delivery_id for w in releases], now)
        await _endpoint_health(session, outcomes, now)


async def _release(conn: Any, worker_id: str, ids: list[str], now: datetime) -> None:
    t = _T_DELIVERY
    await conn.execute(
        sa.update(t)
        .where(t.c.id.in_(ids), t.c.locked_by == worker_id, t.c.status == DeliveryStatus.SENDING)
        .values(
            status=sa.case(
                (t.c.attempts == 0, DeliveryStatus.PENDING.value), else_=DeliveryStatus.RETRYING.value
            ),
            locked_by=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )


async def release(db: Database, worker_id: str, ids: list[str]) -> None:
    """Hand claimed deliveries back unsent (shutdown): due again at once, no attempt counted."""
    if ids:
        async with db.unit_of_work() as session:
            await _release(await session.connection(), worker_id, ids, utcnow())


async def _endpoint_health(session: Any, outcomes: Sequence[Outcome], now: datetime) -> None:
    by_endpoint: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_endpoint.setdefault(o.work.endpoint.id, []).append(o)
    for endpoint_id, items in sorted(by_endpoint.items()):
        tenant_id = items[0].work.tenant_id
        where = (WebhookEndpoint.id == endpoint_id, WebhookEndpoint.tenant_id == tenant_id)
        gone = next((o for o in items if o.disable_reason), None)
        values: dict[str, Any]
        if any(o.succeeded for o in items) and gone is None:
            values = {"last_success_at": now, "consecutive_failures": 0, "failing_since": None}
        else:
            failures = sum(1 for o in items if not o.succeeded)
            values = {
                "consecutive_failures": WebhookEndpoint.consecutive_failures + failures,
                "failing_since": sa.func.coalesce(WebhookEndpoint.failing_since, now),
            }
        if gone is not None:
            values.update(enabled=False, disabled_reason=gone.disable_reason, disabled_at=now, updated_at=now)
            result = await session.execute(
                sa.update(WebhookEndpoint)
                .where(*where, WebhookEndpoint.enabled.is_(True))
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0):
                audit.record(
                    session,
                    system_actor(tenant_id),
                    "endpoint.disabled",
                    "endpoint",
                    endpoint_id,
                    {
                        "enabled": {"old": True, "new": False},
                        "disabledReason": {"old": None, "new": gone.disable_reason},
                        "deliveryId": {"old": None, "new": gone.work.delivery_id},
                    },
                )
            continue
        await session.execute(
            sa.update(WebhookEndpoint)
            .where(*where)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


# -- the worker ----------------------------------------------------------------------------------


@dataclass
class DeliveryConfig:
    concurrency: int = 64
    batch_size: int = 128
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    shutdown_grace: float = 10.0
    listen_dsn: str | None = None


@dataclass
class DeliveryWorker:
    """Sends due deliveries until stopped. See the module contracts."""

    db: Database
    keyring: Keyring
    transport: HttpTransport
    config: DeliveryConfig = field(default_factory=DeliveryConfig)
    worker_id: str = field(default_factory=default_worker_id)

    def __post_init__(self) -> None:
        self.sender = Sender(self.transport)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._claimed: dict[str, Work] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._per_endpoint: Counter[str] = Counter()
        self._max_in_flight: dict[str, int] = {}
        self._results: list[Outcome] = []
        self._releases: list[Work] = []
        self._flush_lock = asyncio.Lock()
        self.delivered = 0
        self.attempted = 0

    # -- public ----------------------------------------------------------------------------

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._results_ready.set()

    def wake(self) -> None:
        """Look for due deliveries now (called after an in-process ingest)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._claimed)

    async def run(self) -> None:
        """Claim, send and record until :meth:`stop`; then finish or hand back work in flight."""
        helpers = [
            asyncio.create_task(self._flush_loop(), name="delivery-flush"),
            asyncio.create_task(self._heartbeat_loop(), name="delivery-heartbeat"),
        ]
        if self.config.listen_dsn:
            helpers.append(
                asyncio.create_task(self._listen_loop(self.config.listen_dsn), name="delivery-listen")
            )
        log.info("delivery_worker_started", worker_id=self.worker_id)
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    wanted, got = await self.claim_once()
                except Exception as exc:
                    log.warning("delivery_claim_failed", error=str(exc), error_type=type(exc).__name__)
                    wanted, got = 1, 0
                if got < wanted or wanted == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.config.poll_interval)
        finally:
            await self._shutdown()
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            log.info("delivery_worker_stopped", worker_id=self.worker_id, delivered=self.delivered)

    async def claim_once(self) -> tuple[int, int]:
        """Claim one batch for the free slots and start sending it. Returns (asked for, claimed)."""
        free = self.config.concurrency - len(self._claimed)
        low_water = max(1, min(self.config.batch_size, self.config.concurrency) // 4)
        if free <= 0 or (free < low_water and self._claimed):
            return 0, 0
        wanted = min(free, self.config.batch_size)
        saturated = [ep for ep, n in self._per_endpoint.items() if n >= self._max_in_flight.get(ep, 1)]
        works = await claim(
            self.db,
            self.keyring,
            self.worker_id,
            wanted,
            self.config.lease_seconds,
            exclude_endpoints=saturated,
            exclude_ids=list(self._claimed),
        )
        overflow: list[Work] = []
        for work in works:
            endpoint = work.endpoint
            self._claimed[work.delivery_id] = work
            self._max_in_flight[endpoint.id] = endpoint.max_in_flight
            if self._per_endpoint[endpoint.id] >= endpoint.max_in_flight:
                overflow.append(work)
                continue
            self._per_endpoint[endpoint.id] += 1
            self._tasks[work.delivery_id] = asyncio.create_task(
                self._send(work), name=f"delivery-{work.delivery_id}"
            )
        if overflow:
            self._releases.extend(overflow)
            self._results_ready.set()
        return wanted, len(works)

    async def drain(self, max_seconds: float = 30.0) -> None:
        """Send until nothing is due and nothing is in flight (tests and one-shot use)."""
        async with asyncio.timeout(max_seconds):
            while True:
                _wanted, got = await self.claim_once()
                if self._tasks:
                    await asyncio.wait(list(self._tasks.values()), return_when=asyncio.FIRST_COMPLETED)
                await self.flush()
                if got == 0 and not self._claimed:
                    return

    async def flush(self) -> int:
        """Write every finished attempt and pending release now. Returns outcomes written."""
        async with self._flush_lock:
            outcomes, self._results = self._results, []
            releases, self._releases = self._releases, []
            if not outcomes and not releases:
                return 0
            try:
                await record(self.db, self.worker_id, outcomes, releases)
            except Exception:
                self._results = outcomes + self._results
                self._releases = releases + self._releases
                raise
            for o in outcomes:
                self._forget(o.work, counted=True)
                self.attempted += 1
                self.delivered += o.succeeded
            for w in releases:
                self._forget(w, counted=False)
        self._wake.set()
        return len(outcomes)

    # -- internals -------------------------------------------------------------------------

    def _forget(self, work: Work, *, counted: bool) -> None:
        self._claimed.pop(work.delivery_id, None)
        if counted:
            self._per_endpoint[work.endpoint.id] -= 1
            if self._per_endpoint[work.endpoint.id] <= 0:
                del self._per_endpoint[work.endpoint.id]

    async def _send(self, work: Work) -> None:
        token = correlation_id_var.set(work.correlation_id)
        try:
            try:
                outcome = await self.sender.send(work)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not strand the delivery in SENDING
                log.error("delivery_send_crashed", delivery_id=work.delivery_id, error=type(exc).__name__)
                outcome = _failure(
                    work, _attempt_row(work, utcnow(), {}), "other", f"internal error: {type(exc).__name__}"
                )
            self._results.append(outcome)
            self._results_ready.set()
        finally:
            correlation_id_var.reset(token)
            self._tasks.pop(work.delivery_id, None)

    async def _flush_loop(self) -> None:
        delay = 0.05
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            try:
                await self.flush()
                delay = 0.05
            except Exception as exc:  # the database is away: keep the results and try again
                log.warning("delivery_record_failed", error=str(exc), error_type=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)
                self._results_ready.set()

    async def _heartbeat_loop(self) -> None:
        interval = max(0.05, self.config.lease_seconds / 3)
        t = _T_DELIVERY
        while True:
            await asyncio.sleep(interval)
            ids = list(self._claimed)
            if not ids:
                continue
            try:
                now = utcnow()
                async with self.db.unit_of_work() as session:
                    await session.execute(
                        sa.update(t)
                        .where(
                            t.c.id.in_(ids),
                            t.c.locked_by == self.worker_id,
                            t.c.status == DeliveryStatus.SENDING,
                        )
                        .values(lease_expires_at=now + timedelta(seconds=self.config.lease_seconds))
                    )
            except Exception as exc:
                log.warning("delivery_heartbeat_failed", error=str(exc))

    async def _listen_loop(self, dsn: str) -> None:
        while not self._stopping.is_set():
            try:
                await pg_listen.listen(
                    dsn, NOTIFY_CHANNEL, lambda _payload: self._wake.set(), should_stop=self._stopping.is_set
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("delivery_listener_lost", error=str(exc))
                await asyncio.sleep(1.0)

    async def _shutdown(self) -> None:
        if self._tasks:
            _done, pending = await asyncio.wait(
                list(self._tasks.values()), timeout=self.config.shutdown_grace
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self.flush()
        except Exception as exc:
            log.warning("delivery_record_failed", error=str(exc))
        # Sent but not recorded (the database refused the write): keep those claimed, so their
        # leases expire and they are retried, rather than handing them back as never sent.
        attempted = {outcome.work.delivery_id for outcome in self._results}
        unsent = [delivery_id for delivery_id in self._claimed if delivery_id not in attempted]
        if attempted:
            log.warning("delivery_outcomes_unrecorded", count=len(attempted))
        if unsent:
            try:
                await release(self.db, self.worker_id, unsent)
                log.info("delivery_worker_released", count=len(unsent))
            except Exception as exc:
                log.warning("delivery_release_failed", error=str(exc))
            self._claimed.clear()
            self._per_endpoint.clear()


async def deliver_now(
    db: Database,
    keyring: Keyring,
    transport: HttpTransport,
    delivery_ids: Sequence[str],
    *,
    lease_seconds: float = 60.0,
) -> list[Outcome]:
    """Make the first attempt of these deliveries right away (``immediate`` ingest).

    Deliveries another worker holds already are skipped; failures are scheduled for retry as usual.
    """
    if not delivery_ids:
        return []
    worker_id = f"immediate:{default_worker_id()}"
    works = await claim(db, keyring, worker_id, len(delivery_ids), lease_seconds, only_ids=delivery_ids)
    if not works:
        return []
    sender = Sender(transport)
    outcomes = list(await asyncio.gather(*(sender.send(w) for w in works)))
    await record(db, worker_id, outcomes)
    return outcomes
