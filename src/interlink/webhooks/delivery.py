"""The delivery engine: claim due deliveries in batches, send them signed, record every attempt.

The ``webhook_deliveries`` row is the job. Contracts:

* **Claim.** One claim at a time across all workers: PostgreSQL claims hold a transaction-level
  advisory lock (:data:`CLAIM_LOCK`), SQLite claims run under ``BEGIN IMMEDIATE``. A claim reads
  the due deliveries (PENDING/RETRYING with ``next_attempt_at`` passed; partial index
  ``ix_webhook_deliveries_queued``) of endpoints that are enabled, not deleted, without an open
  circuit, within their rate and with a free slot, ranks them per endpoint with ``row_number()
  over (partition by endpoint_id order by priority, next_attempt_at)`` and keeps at most
  ``max_in_flight`` minus the endpoint's SENDING rows in every worker (a batch counts once; the
  claiming worker's rows whose request is over but not recorded yet do not count, so the flush
  linger holds no slot); then it takes the chosen rows with one ``UPDATE … RETURNING`` that
  checks their status again.
  Because claims are serialised, ``max_in_flight`` and the rate limit hold across any number of
  workers, and a claim never takes rows only to hand them back. When an endpoint's circuit
  cooldown is over it gets one delivery, its probe (:mod:`interlink.webhooks.health`). The event,
  endpoint and signing secrets of everything claimed are read in the claiming transaction.
* **Leases.** A claim leases its rows to the worker; the worker's heartbeat extends the lease. SENDING
  rows whose lease expired (a dead or stalled worker) are put back in the queue, due at once, by
  :func:`take_over_expired` (a separate, cheap statement each worker runs about once a second);
  the next claim takes them like any other row.
* **Rate limits.** ``rate_limit_per_second`` is enforced in the claim by GCRA over
  ``webhook_endpoints.rate_next_at`` (:class:`RateGate`): after a pause an endpoint may get a burst
  of ``max(1, rate × RATE_BURST_SECONDS)`` deliveries, then ``rate`` per second; over any
  interval ``t`` at most ``burst + rate × t`` are claimed, whichever workers claim them. Held-back
  deliveries stay in the queue untouched: no attempt, no retry used, and an endpoint without
  allowance is left out of the claim query (it does not crowd others out).
* **At least once.** A delivery is finished only after its attempt was recorded; a worker that
  dies mid-batch leaves SENDING rows whose lease expires, and another worker sends them again (the
  only source of duplicates, bounded by what it held: its sends in flight and those answered but
  not yet recorded, at most twice its ``concurrency`` sends). Receivers deduplicate on
  ``webhook-id``, which is the event id and the same on every attempt (a batch's id for batches).
* **Isolation.** A slow or hanging endpoint holds only its own ``max_in_flight`` slots and never
  delays deliveries to other endpoints; a saturated endpoint is left out of the claim query.
* **Batched writes.** Attempts, delivery states and endpoint health are written in one
  transaction per flush, never one round trip per delivery: on PostgreSQL one ``INSERT … SELECT
  FROM jsonb_to_recordset`` for the attempts and one ``UPDATE … FROM jsonb_to_recordset`` for the
  deliveries (fixed statement texts, so they stay prepared), ``executemany`` on SQLite. The worker
  lingers ``flush_linger`` before a flush so more outcomes share it. Writes are fenced by
  ``locked_by``: a worker whose lease expired cannot overwrite the newer owner's state.
* **Deleted endpoints.** Nothing is sent to a deleted endpoint (``deleted_at``): the delete
  cancels what waits, and every path that would put a delivery back in the queue (recording a
  retry, a lease takeover, a hand-back at shutdown) writes CANCELLED instead once the endpoint is
  deleted. These paths lock the endpoint rows first, so a concurrent delete either is seen or
  waits and then cancels what they requeued. Ingest cancels deliveries it wrote for an endpoint
  deleted meanwhile (:mod:`interlink.webhooks.ingest`).
* **Immediate sends** (:func:`deliver_now`) claim through the same path: limits apply; what
  cannot go now is left to the queue, due at once. Their lease is the slowest endpoint's timeout
  (which bounds the whole send, name resolution included) plus :data:`LEASE_MARGIN_SECONDS`.
* **Outcomes.** 2xx: DELIVERED. 410: FAILED and the endpoint is disabled (reason recorded, audited).
  Anything else (3xx, 4xx, 5xx, timeout, dns, connect, tls, refused) schedules a retry after the
  endpoint's ``retry_schedule``, else the tenant's (``webhook_configs``), else
  :data:`DEFAULT_RETRY_SCHEDULE` (±20 % jitter), or after
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

Batches
-------
An endpoint with ``batch_config`` ``{"maxCount", "maxBytes", "maxWaitSeconds"}`` (WEBHOOK channel
only) receives its events bundled. Ingest makes a new delivery due ``maxWaitSeconds`` after the
event was accepted (``immediate`` does not apply); when ``maxCount`` first deliveries wait, the
oldest ``maxCount`` are due at once. A claim that takes a due delivery of a batch endpoint takes
with it up to ``maxCount − 1`` more waiting first deliveries of that endpoint, whatever their
``next_attempt_at`` (and makes the next ``maxCount`` due when that many wait behind them). The
set goes as one signed request (:func:`send_batch`)::

    {"type": "batch", "timestamp": "<sent, ISO 8601>", "data": [<document>, ...]}

with one document per event in claim order (the endpoint's transformation applied to that event,
else its envelope above), split into several requests when the next document would make the body
exceed ``maxBytes`` (a single larger document goes alone). ``webhook-id`` is the batch id
(``bat_…``); every delivery of the request gets its own attempt row with that ``batch_id`` and the
same outcome, so the batch succeeds or fails as a whole and a failed batch is retried later as
the same set under the same id. A batch counts as one send for ``max_in_flight``, the rate limit
and the worker's concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final, cast

import sqlalchemy as sa
import structlog
from pydantic_core import PydanticSerializationError, to_json
from sqlalchemy.dialects import postgresql

from interlink.core import pg_listen
from interlink.core.clock import utcnow
from interlink.core.context import correlation_id_var
from interlink.core.crypto import Keyring
from interlink.core.db import Database, UTCDateTime, json_text, sqlite_datetime_text
from interlink.core.enums import DeliveryChannel, DeliveryStatus
from interlink.core.ids import new_id
from interlink.jobs.worker import default_worker_id
from interlink.outbound.transport import HttpTransport
from interlink.webhooks import endpoints, health
from interlink.webhooks.channels import (
    Channel,
    ChannelAttempt,
    OutboundMessage,
    SmtpConfig,
    build_channels,
)
from interlink.webhooks.ingest import NOTIFY_CHANNEL, BatchSettings, batch_settings, filter_document
from interlink.webhooks.metrics import observe_outcomes
from interlink.webhooks.models import (
    TenantWebhookConfig,
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
    channel_config: dict[str, Any] = field(default_factory=dict)
    """EMAIL: ``{"to", "subjectTemplate"?}``; SLACK: ``{"username"?, "iconEmoji"?}``."""
    batch_config: dict[str, Any] | None = None
    """``{"maxCount", "maxBytes", "maxWaitSeconds"}`` of a batch endpoint."""


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
    retry_base: int = 0
    """Attempts made before the delivery was last requeued by hand: the schedule restarts there."""
    batch_id: str | None = None
    """Set when the delivery was claimed with others of its batch endpoint, to go in one request."""


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
    batch_id: str | None = None
    """The batch request this attempt was part of (``webhook-id`` of that request)."""


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


# -- claiming ------------------------------------------------------------------------------------

CLAIM_LOCK: Final = 0x1D_E11_7E5
"""``pg_advisory_xact_lock`` key held by every claim on PostgreSQL: claims run one at a time, so
each sees the deliveries in flight and the rate state the previous one committed."""
RATE_BURST_SECONDS: Final = 1.0
"""A rate-limited endpoint may receive ``max(1, rate × this)`` deliveries at once after a pause."""
LEASE_MARGIN_SECONDS: Final = 15.0
"""Immediate sends: the lease is the slowest endpoint's timeout plus this (transformation,
recording)."""
PICK_WINDOW_MIN: Final = 64
"""The claim ranks at least this many due rows more than it asks for (see :func:`claim`)."""
VIEW_TTL_SECONDS: Final = 1.0
"""How long a worker signs and sends with an endpoint's view, unchanged, before reading the
endpoint and its secrets again (see :class:`EndpointViews`)."""
STATISTICS_MIN_PAGES: Final = 256
"""PostgreSQL: the size (8 KB pages, about 2 MB) ``webhook_deliveries`` must reach, and twice
what its statistics last saw, before a worker refreshes them itself (see
:func:`refresh_queue_statistics`)."""
STATISTICS_INTERVAL_SECONDS: Final = 10.0
"""A worker runs that ANALYZE at most this often."""

_T_ENDPOINT = cast(sa.Table, WebhookEndpoint.__table__)
_T_EVENT = cast(sa.Table, WebhookEvent.__table__)
_T_CONFIG = cast(sa.Table, TenantWebhookConfig.__table__)


def _status(status: DeliveryStatus) -> sa.ColumnElement[Any]:
    """A status as an SQL literal (so the planner can match the partial indexes' predicate)."""
    return sa.literal_column(f"'{status.value}'")


def _queued(t: sa.Table = _T_DELIVERY) -> sa.ColumnElement[bool]:
    """``status IN ('PENDING', 'RETRYING')``, written as the partial indexes' predicate."""
    return t.c.status.in_([_status(DeliveryStatus.PENDING), _status(DeliveryStatus.RETRYING)])


@dataclass(frozen=True)
class RateGate:
    """GCRA over one endpoint's ``rate_next_at`` (the earliest time its next delivery may be claimed).

    At most ``burst = max(1, rate × RATE_BURST_SECONDS)`` deliveries go at once after a pause and
    ``rate`` per second after that: over any interval ``t`` at most ``burst + rate × t`` are claimed.
    """

    per_second: float
    next_at: datetime | None

    @property
    def burst(self) -> float:
        return max(1.0, self.per_second * RATE_BURST_SECONDS)

    def _tat(self, now: datetime) -> datetime:
        """The theoretical arrival time: when the bucket would be empty again."""
        if self.next_at is None:
            return now
        tat = self.next_at + timedelta(seconds=(self.burst - 1) / self.per_second)
        return max(tat, now)

    def allowance(self, now: datetime) -> int:
        """How many deliveries may be claimed at ``now``."""
        ahead = (self._tat(now) - now).total_seconds()
        return max(0, math.floor(self.burst - ahead * self.per_second + 1e-9))

    def advanced(self, now: datetime, taken: int) -> datetime:
        """The new ``rate_next_at`` once ``taken`` deliveries were claimed at ``now``."""
        tat = self._tat(now) + timedelta(seconds=taken / self.per_second)
        return tat - timedelta(seconds=(self.burst - 1) / self.per_second)


@dataclass
class _Pick:
    """What one claim takes, decided under the claim lock."""

    ids: list[str] = field(default_factory=list)
    batch_of: dict[str, str] = field(default_factory=dict)
    """delivery id -> batch id, for every delivery claimed as part of a batch"""
    new_batches: dict[str, list[str]] = field(default_factory=dict)
    """batch ids given out by this claim -> their deliveries"""
    rate_next_at: dict[str, datetime] = field(default_factory=dict)
    max_timeout: float = 0.0


def _sendable_endpoints(now: sa.BindParameter[datetime]) -> sa.Select[Any]:
    """Endpoints that may be sent to at all: enabled, and no open circuit
    (:mod:`interlink.webhooks.health`)."""
    return sa.select(WebhookEndpoint.id).where(
        WebhookEndpoint.enabled.is_(True),
        sa.or_(WebhookEndpoint.circuit_open_until.is_(None), WebhookEndpoint.circuit_open_until <= now),
    )


def _one_of(column: sa.ColumnElement[Any], name: str, *, postgres: bool) -> sa.ColumnElement[bool]:
    """``column IN (:name…)``; on PostgreSQL ``column = ANY(:name)`` with one array parameter, so
    the statement text does not vary with the list's length and stays prepared."""
    if postgres:
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String())))
    return column.in_(sa.bindparam(name, expanding=True))


def _none_of(column: sa.ColumnElement[Any], name: str, *, postgres: bool) -> sa.ColumnElement[bool]:
    """``column NOT IN (:name…)`` (``column <> ALL(:name)`` on PostgreSQL, see :func:`_one_of`)."""
    if postgres:
        return column != sa.all_(sa.bindparam(name, type_=postgresql.ARRAY(sa.String())))
    return column.not_in(sa.bindparam(name, expanding=True))


@functools.cache
def _candidates(*, immediate: bool, postgres: bool) -> sa.Select[Any]:
    """Due deliveries of endpoints with a free slot, in claim order, at most the endpoint's free
    slots each (``row_number() over (partition by endpoint)`` ≤ ``max_in_flight`` − in flight).

    In flight counts the SENDING rows of every worker (a batch counts once) but ``finished_ids``,
    so ``max_in_flight`` holds across workers. Built once (parameters ``now``, ``window``,
    ``only_ids`` for immediate sends, ``exclude_endpoints``, ``exclude_ids``, ``finished_ids``):
    building it costs more than running it."""
    d, e, cfg = _T_DELIVERY, _T_ENDPOINT, _T_CONFIG
    now = sa.bindparam("now", type_=UTCDateTime())
    enabled = _sendable_endpoints(now)
    sending = (
        sa.select(
            d.c.endpoint_id.label("endpoint_id"),
            sa.func.count(sa.distinct(sa.func.coalesce(d.c.batch_id, d.c.id))).label("n"),
        )
        .where(
            d.c.status == _status(DeliveryStatus.SENDING),
            _none_of(d.c.id, "finished_ids", postgres=postgres),
        )
        .group_by(d.c.endpoint_id)
        .cte("sending")
    )
    eligible = enabled.outerjoin(sending, sending.c.endpoint_id == WebhookEndpoint.id).where(
        WebhookEndpoint.deleted_at.is_(None),
        sa.or_(WebhookEndpoint.rate_next_at.is_(None), WebhookEndpoint.rate_next_at <= now),
        sa.func.coalesce(sending.c.n, 0) < WebhookEndpoint.max_in_flight,
    )
    pick = sa.select(
        d.c.id, d.c.endpoint_id, d.c.priority, d.c.next_attempt_at, d.c.status, d.c.batch_id
    ).where(_queued(), d.c.endpoint_id.in_(eligible))
    if immediate:
        pick = pick.where(_one_of(d.c.id, "only_ids", postgres=postgres))
    else:
        pick = pick.where(d.c.next_attempt_at <= now)
    pick = pick.where(
        _none_of(d.c.endpoint_id, "exclude_endpoints", postgres=postgres),
        _none_of(d.c.id, "exclude_ids", postgres=postgres),
    )
    window = sa.bindparam("window", type_=sa.Integer())
    due = pick.order_by(d.c.priority, d.c.next_attempt_at).limit(window).subquery("due")
    rank = (
        sa.func.row_number()
        .over(partition_by=due.c.endpoint_id, order_by=(due.c.priority, due.c.next_attempt_at))
        .label("rn")
    )
    ranked = sa.select(due, rank).subquery("ranked")
    free = e.c.max_in_flight - sa.func.coalesce(sending.c.n, 0)
    return (
        sa.select(
            ranked.c.id,
            ranked.c.endpoint_id,
            ranked.c.status,
            ranked.c.batch_id,
            free.label("free"),
            e.c.rate_limit_per_second,
            e.c.rate_next_at,
            sa.cast(e.c.batch_config, sa.Text()).label("batch_config"),  # parsed once per endpoint
            e.c.channel,
            e.c.timeout_seconds,
            e.c.circuit_open_until,
            e.c.updated_at.label("endpoint_updated_at"),
            e.c.tenant_id.label("endpoint_tenant_id"),
            sa.cast(cfg.c.retry_schedule, sa.Text()).label("tenant_retry_schedule"),
        )
        .select_from(
            ranked.join(e, e.c.id == ranked.c.endpoint_id)
            .outerjoin(sending, sending.c.endpoint_id == ranked.c.endpoint_id)
            .outerjoin(cfg, cfg.c.tenant_id == e.c.tenant_id)
        )
        .where(ranked.c.rn <= free)
        .order_by(ranked.c.priority, ranked.c.next_attempt_at, ranked.c.id)
    )


async def _batch_members(
    session: Any, seed: Any, settings: BatchSettings, taken: set[str], now: datetime
) -> tuple[str, list[str], bool]:
    """The deliveries that go with ``seed`` in one request: the same set again when ``seed`` was
    sent in a batch before (a retry), else ``seed`` and up to ``maxCount − 1`` waiting first
    deliveries of its endpoint, whatever their ``next_attempt_at``; when another ``maxCount`` wait
    behind those, they are made due now (their batch is full). Returns (batch id, ids, new)."""
    d = _T_DELIVERY
    if seed.batch_id is not None:
        rows = await session.execute(
            sa.select(d.c.id)
            .where(d.c.endpoint_id == seed.endpoint_id, _queued(), d.c.batch_id == seed.batch_id)
            .order_by(d.c.priority, d.c.next_attempt_at, d.c.id)
        )
        others = [i for (i,) in rows.all() if i != seed.id and i not in taken]
        return seed.batch_id, [seed.id, *others], False
    if settings.max_count <= 1:
        return new_id("bat"), [seed.id], True
    waiting = (
        sa.select(d.c.id)
        .where(
            d.c.endpoint_id == seed.endpoint_id,
            _queued(),
            d.c.status == _status(DeliveryStatus.PENDING),
            d.c.batch_id.is_(None),
            d.c.id != seed.id,
        )
        .order_by(d.c.priority, d.c.next_attempt_at, d.c.id)
        .limit(2 * settings.max_count - 1 + len(taken))
    )
    others = [i for (i,) in (await session.execute(waiting)).all() if i not in taken]
    members, behind = others[: settings.max_count - 1], others[settings.max_count - 1 :]
    if len(behind) >= settings.max_count:
        await session.execute(
            sa.update(d)
            .where(d.c.id.in_(behind[: settings.max_count]), d.c.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
    return new_id("bat"), [seed.id, *members], True


async def _pick(
    session: Any, candidates: Sequence[Any], limit: int, now: datetime, *, immediate: bool
) -> _Pick:
    """Choose, in claim order, up to ``limit`` sends (a batch is one send) within each endpoint's
    free slots, rate allowance and circuit probe."""
    pick = _Pick()
    batching_of: dict[str, BatchSettings | None] = {}
    budget: dict[str, int] = {}
    used: Counter[str] = Counter()
    gates: dict[str, RateGate] = {}
    taken: set[str] = set()
    sends = 0
    for row in candidates:
        if sends >= limit:
            break
        if row.id in taken:
            continue
        endpoint_id = row.endpoint_id
        if endpoint_id not in budget:
            allowed = int(row.free)
            if row.rate_limit_per_second:
                gates[endpoint_id] = RateGate(float(row.rate_limit_per_second), row.rate_next_at)
                allowed = min(allowed, gates[endpoint_id].allowance(now))
            if row.circuit_open_until is not None:
                allowed = min(allowed, 1)  # a cooled-down circuit sends one probe
            budget[endpoint_id] = allowed
        if used[endpoint_id] >= budget[endpoint_id]:
            continue
        if endpoint_id not in batching_of:
            config = json.loads(row.batch_config) if row.batch_config else None
            batching_of[endpoint_id] = batch_settings(config, row.channel)
        batching = batching_of[endpoint_id]
        if batching is not None:
            if immediate:
                continue  # a batch endpoint's deliveries wait for their batch
            if row.circuit_open_until is not None:  # the probe of a batch endpoint: one delivery
                batching = dataclasses.replace(batching, max_count=1)
            batch_id, members, new = await _batch_members(session, row, batching, taken, now)
            for member in members:
                pick.batch_of[member] = batch_id
            if new:
                pick.new_batches[batch_id] = members
        else:
            members = [row.id]
        pick.ids.extend(members)
        taken.update(members)
        used[endpoint_id] += 1
        sends += 1
        pick.max_timeout = max(pick.max_timeout, float(row.timeout_seconds))
    for endpoint_id, gate in gates.items():
        if used[endpoint_id]:
            pick.rate_next_at[endpoint_id] = gate.advanced(now, used[endpoint_id])
    return pick


@functools.cache
def _take_statement(*, postgres: bool) -> sa.Executable:
    """The claiming ``UPDATE … RETURNING`` (parameters ``ids``, ``worker``, ``lease``, ``now``),
    built once. On PostgreSQL it is a CTE joined to ``webhook_events``, so each row also carries
    its event (``event_type``, ``payload``, ``meta``, ``created_at``): one round trip less."""
    d, ev = _T_DELIVERY, _T_EVENT
    taken = (
        sa.update(d)
        .where(_one_of(d.c.id, "ids", postgres=postgres), _queued())
        .values(
            status=DeliveryStatus.SENDING,
            locked_by=sa.bindparam("worker"),
            lease_expires_at=sa.bindparam("lease", type_=UTCDateTime()),
            updated_at=sa.bindparam("now", type_=UTCDateTime()),
        )
        .returning(
            d.c.id,
            d.c.tenant_id,
            d.c.event_id,
            d.c.endpoint_id,
            d.c.attempts,
            d.c.retry_base,
            d.c.correlation_id,
            d.c.priority,
        )
    )
    if not postgres:
        return taken
    rows = taken.cte("taken")
    return sa.select(
        rows,
        ev.c.event_type,
        ev.c.payload,
        ev.c.metadata.label("meta"),
        ev.c.created_at,
    ).join_from(rows, ev, ev.c.id == rows.c.event_id)


async def _take(
    session: Any, pick: _Pick, worker_id: str, now: datetime, lease_seconds: float, *, postgres: bool
) -> list[Any]:
    """Mark the picked deliveries SENDING for ``worker_id`` and advance the endpoints' rate state
    (:func:`_take_statement`: on PostgreSQL the rows carry their events).

    Rows that left the queue meanwhile (cancelled by a delete) are not taken: the UPDATE checks
    the status again on the row it locks."""
    d, e = _T_DELIVERY, _T_ENDPOINT
    conn = await session.connection()
    if pick.rate_next_at:  # endpoint rows first, in id order (the order every writer locks them)
        await conn.execute(
            sa.update(e)
            .where(e.c.id == sa.bindparam("b_id"))
            .values(rate_next_at=sa.bindparam("b_at", type_=UTCDateTime())),
            [{"b_id": k, "b_at": v} for k, v in sorted(pick.rate_next_at.items())],
        )
    params = {
        "ids": pick.ids,
        "worker": worker_id,
        "lease": now + timedelta(seconds=lease_seconds),
        "now": now,
    }
    rows = (await conn.execute(_take_statement(postgres=postgres), params)).all()
    for batch_id, members in pick.new_batches.items():
        await conn.execute(sa.update(d).where(d.c.id.in_(members)).values(batch_id=batch_id))
    return list(rows)


async def _unhold(session: Any, ids: Sequence[str], now: datetime) -> None:
    """Immediate deliveries that could not be sent now (endpoint busy or rate-limited): the queue
    takes them at once instead of after the ingest hold. Batch endpoints' keep their batch time."""
    d, e = _T_DELIVERY, _T_ENDPOINT
    rows = await session.execute(
        sa.select(d.c.id, e.c.batch_config, e.c.channel)
        .select_from(d.join(e, e.c.id == d.c.endpoint_id))
        .where(d.c.id.in_(ids), d.c.status == _status(DeliveryStatus.PENDING), d.c.next_attempt_at > now)
    )
    held = [r.id for r in rows.all() if batch_settings(r.batch_config, r.channel) is None]
    if held:
        await session.execute(
            sa.update(d)
            .where(d.c.id.in_(held), d.c.status == _status(DeliveryStatus.PENDING))
            .values(next_attempt_at=now)
        )


async def _lock_endpoints(conn: Any, endpoint_ids: Iterable[str], *, exclusive: bool) -> set[str]:
    """Lock endpoint rows (in id order) and return those deleted. Taken before deliveries go back
    to the queue: a concurrent :meth:`Endpoints.delete` either committed before (its deletion is
    seen here) or waits until after (its cancel sees the requeued rows)."""
    e = _T_ENDPOINT
    wanted = sorted(set(endpoint_ids))
    if not wanted:
        return set()
    stmt = sa.select(e.c.id, e.c.deleted_at).where(e.c.id.in_(wanted)).order_by(e.c.id)
    stmt = stmt.with_for_update() if exclusive else stmt.with_for_update(read=True, key_share=True)
    rows = (await conn.execute(stmt)).all()
    return {r.id for r in rows if r.deleted_at is not None}


def _requeued_status(t: sa.Table = _T_DELIVERY) -> sa.ColumnElement[Any]:
    """The status a SENDING delivery goes back to unsent: CANCELLED when its endpoint is deleted,
    PENDING before its first attempt, else RETRYING."""
    e = _T_ENDPOINT
    deleted = sa.exists().where(e.c.id == t.c.endpoint_id, e.c.deleted_at.is_not(None))
    return sa.case(
        (deleted, DeliveryStatus.CANCELLED.value),
        (t.c.attempts == 0, DeliveryStatus.PENDING.value),
        else_=DeliveryStatus.RETRYING.value,
    )


async def take_over_expired(db: Database) -> int:
    """Put SENDING deliveries whose lease expired (their worker died or stalled) back in the queue,
    due at once; those of deleted endpoints are CANCELLED. Returns how many."""
    d = _T_DELIVERY
    now = utcnow()
    expired = (
        sa.select(d.c.id, d.c.endpoint_id)
        .where(d.c.status == _status(DeliveryStatus.SENDING), d.c.lease_expires_at < now)
        .limit(1000)
    )
    async with db.unit_of_work() as session:
        conn = await session.connection()
        rows = (await conn.execute(expired)).all()
        if not rows:
            return 0
        await _lock_endpoints(conn, {r.endpoint_id for r in rows}, exclusive=False)
        result = await conn.execute(
            sa.update(d)
            .where(
                d.c.id.in_([r.id for r in rows]),
                d.c.status == _status(DeliveryStatus.SENDING),
                d.c.lease_expires_at < now,
            )
            .values(
                status=_requeued_status(),
                next_attempt_at=sa.case((d.c.next_attempt_at > now, now), else_=d.c.next_attempt_at),
                locked_by=None,
                lease_expires_at=None,
                updated_at=now,
            )
        )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.info("delivery_leases_taken_over", count=count)
    return count


class EndpointViews:
    """A worker's endpoint views, kept between claims so a claim reads only the endpoints it has
    not seen (the endpoint and secret queries and the target's decryption, saved on most claims).

    A view (its own ``retry_schedule`` only; the tenant's is read on every claim) is used again
    while the endpoint's ``updated_at`` (which the claim query reads with every due row, and which
    a secret rotation moves) is unchanged, for at most ``ttl`` seconds: a change to the endpoint or
    its secrets is seen by the next claim; a secret passing its expiry within ``ttl`` (it only
    adds a signature that no longer verifies). Whether an endpoint may be sent to at all (enabled,
    not deleted, circuit, slots, rate) is decided by the claim query every time, never here."""

    def __init__(self, ttl: float = VIEW_TTL_SECONDS, size: int = 4096) -> None:
        self.ttl = ttl
        self.size = size
        self._views: dict[str, tuple[datetime, float, EndpointView]] = {}

    def get(self, endpoint_id: str, updated_at: datetime) -> EndpointView | None:
        entry = self._views.get(endpoint_id)
        if entry is None or entry[0] != updated_at or entry[1] <= time.monotonic():
            return None
        return entry[2]

    def put(self, endpoint_id: str, updated_at: datetime, view: EndpointView) -> None:
        if len(self._views) >= self.size and endpoint_id not in self._views:
            self._views.pop(next(iter(self._views)))
        self._views[endpoint_id] = (updated_at, time.monotonic() + self.ttl, view)


_QUEUE_SIZE = sa.text(
    "SELECT relpages, pg_relation_size(oid) / current_setting('block_size')::int AS pages "
    "FROM pg_class WHERE oid = to_regclass('webhook_deliveries')"
)


async def refresh_queue_statistics(db: Database) -> bool:
    """PostgreSQL: ANALYZE ``webhook_deliveries`` when it has at least :data:`STATISTICS_MIN_PAGES`
    pages and at least twice the pages its statistics were taken at (a burst of ingest into a
    queue that was small). Returns whether it ran. Nothing on SQLite.

    The claim and record statements are planned from these statistics. Autovacuum takes them about
    a minute after such a burst; until then PostgreSQL plans for the small table it last saw (the
    claim read every due row of each endpoint and sorted them, about 10 ms a claim with 20,000
    waiting, against under 2 ms with fresh statistics). The table's size is read from its file, so
    the check does not wait for the statistics collector (whose row counts lag by up to seconds).
    ``SKIP_LOCKED``: a worker never waits for another's ANALYZE (or autovacuum's) of the table."""
    if db.is_sqlite:
        return False
    async with db.unit_of_work() as session:
        row = (await session.execute(_QUEUE_SIZE)).first()
        if row is None:
            return False
        seen, pages = max(0, int(row.relpages or 0)), int(row.pages or 0)
        if pages < STATISTICS_MIN_PAGES or pages < 2 * seen:
            return False
        await session.execute(sa.text("ANALYZE (SKIP_LOCKED) webhook_deliveries"))
    log.info("delivery_queue_statistics_refreshed", pages=pages, pages_last_seen=seen)
    return True


async def claim(
    db: Database,
    keyring: Keyring,
    worker_id: str,
    limit: int,
    lease_seconds: float | None = None,
    *,
    exclude_endpoints: Iterable[str] = (),
    exclude_ids: Iterable[str] = (),
    finished_ids: Iterable[str] = (),
    only_ids: Iterable[str] | None = None,
    views: EndpointViews | None = None,
) -> list[Work]:
    """Claim up to ``limit`` sends of due deliveries for ``worker_id`` and read what they need.

    A send is one delivery, or for a batch endpoint one batch (its deliveries share
    :attr:`Work.batch_id`). Each endpoint gets at most its free slots (``max_in_flight`` minus the
    sends in flight in every worker), its rate allowance (:class:`RateGate`) and, when its circuit
    cooled down, one probe. Claims hold :data:`CLAIM_LOCK` (PostgreSQL) or ``BEGIN IMMEDIATE``
    (SQLite), so these limits hold across workers. Expired leases are not taken here (see
    :func:`take_over_expired`).

    ``only_ids`` restricts the claim to those deliveries (immediate sends), which are claimed
    whatever their ``next_attempt_at`` (ingest holds them back from the queue); those that cannot
    go now are handed to the queue at once, except on batch endpoints, where they wait for their
    batch. ``exclude_ids`` are deliveries the caller still holds (never claimed twice by one worker,
    even after its lease expired). ``finished_ids`` are the caller's SENDING deliveries whose request
    is over but whose outcome is not recorded yet: they no longer take a slot of their endpoint, so
    recording (which lingers to share a transaction) does not hold back the next sends.
    ``lease_seconds`` None sizes the lease from the endpoints'
    timeouts (plus :data:`LEASE_MARGIN_SECONDS`), for callers without a heartbeat. ``views`` (a
    worker's) serves endpoints read by an earlier claim (see :class:`EndpointViews`); without it
    every claimed endpoint, its secrets and its tenant's retry schedule are read."""
    now = utcnow()
    wanted = sorted(set(only_ids)) if only_ids is not None else None
    postgres = not db.is_sqlite
    candidates = _candidates(immediate=wanted is not None, postgres=postgres)
    params: dict[str, Any] = {
        "now": now,
        "window": max(2 * limit, limit + PICK_WINDOW_MIN),
        "only_ids": wanted or [],
        "exclude_endpoints": sorted(set(exclude_endpoints)),
        "exclude_ids": sorted(set(exclude_ids)),
        "finished_ids": sorted(set(finished_ids)),
    }
    async with db.unit_of_work() as session:
        if not db.is_sqlite:
            await session.execute(sa.select(sa.func.pg_advisory_xact_lock(CLAIM_LOCK)))
        found = (await session.execute(candidates, params)).all()
        pick = await _pick(session, found, limit, now, immediate=wanted is not None)
        if wanted is not None and len(pick.ids) < len(wanted):
            await _unhold(session, sorted(set(wanted) - set(pick.ids)), now)
        if not pick.ids:
            return []
        lease = lease_seconds if lease_seconds is not None else pick.max_timeout + LEASE_MARGIN_SECONDS
        rows = await _take(session, pick, worker_id, now, lease, postgres=postgres)
        if not rows:
            return []
        events: dict[str, Any]
        if postgres:  # the claiming statement brought them
            events = {r.event_id: r for r in rows}
        else:
            ev = _T_EVENT
            events = {
                e.id: e
                for e in (
                    await session.execute(
                        sa.select(
                            ev.c.id,
                            ev.c.event_type,
                            ev.c.payload,
                            ev.c.metadata.label("meta"),
                            ev.c.created_at,
                        ).where(_one_of(ev.c.id, "ids", postgres=False)),
                        {"ids": sorted({r.event_id for r in rows})},
                    )
                ).all()
            }
        seen = {c.endpoint_id: c for c in found}
        views_of: dict[str, EndpointView] = {}
        for endpoint_id in {r.endpoint_id for r in rows}:
            cached = views.get(endpoint_id, seen[endpoint_id].endpoint_updated_at) if views else None
            if cached is not None:
                views_of[endpoint_id] = cached
        missing = sorted({r.endpoint_id for r in rows} - views_of.keys())
        endpoint_rows: dict[str, WebhookEndpoint] = {}
        secrets: dict[str, list[str]] = {}
        if missing:
            endpoint_rows = {
                e.id: e
                for e in (
                    await session.scalars(sa.select(WebhookEndpoint).where(WebhookEndpoint.id.in_(missing)))
                ).all()
            }
            secrets = await _load_secrets(session, keyring, endpoint_rows)
        # The tenants' retry schedules come with the claim query (never cached): a change applies
        # to the next delivery.
        schedules: dict[str, list[int]] = {}
        for c in seen.values():
            if c.tenant_retry_schedule and c.endpoint_tenant_id not in schedules:
                schedule = json.loads(c.tenant_retry_schedule)
                if schedule:
                    schedules[c.endpoint_tenant_id] = [int(n) for n in schedule]
        cooled = {
            endpoint_id
            for endpoint_id, c in seen.items()
            if c.circuit_open_until is not None and c.circuit_open_until <= now
        }
        rows = await _admit_probes(session, worker_id, rows, cooled, now, lease)
    for e in endpoint_rows.values():
        view = EndpointView(
            id=e.id,
            tenant_id=e.tenant_id,
            url=endpoints.delivery_target(keyring, e),
            channel=e.channel,
            headers=dict(e.headers or {}),
            timeout_seconds=float(e.timeout_seconds),
            retry_schedule=list(e.retry_schedule) if e.retry_schedule else None,
            max_in_flight=max(1, int(e.max_in_flight)),
            transformation=e.transformation,
            secrets=secrets.get(e.id, []),
            channel_config=dict(e.channel_config or {}),
            batch_config=dict(e.batch_config) if e.batch_config else None,
        )
        views_of[e.id] = view
        if views is not None:
            views.put(e.id, e.updated_at, view)
    for endpoint_id, view in views_of.items():
        if view.retry_schedule is None and view.tenant_id in schedules:
            views_of[endpoint_id] = dataclasses.replace(view, retry_schedule=schedules[view.tenant_id])
    work = [
        Work(
            delivery_id=r.id,
            tenant_id=r.tenant_id,
            attempts=r.attempts,
            retry_base=r.retry_base,
            correlation_id=r.correlation_id,
            event=EventView(
                id=r.event_id,
                type=events[r.event_id].event_type,
                payload=events[r.event_id].payload,
                metadata=dict(events[r.event_id].meta or {}),
                created_at=events[r.event_id].created_at,
            ),
            endpoint=views_of[r.endpoint_id],
            batch_id=pick.batch_of.get(r.id),
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
    attempt = work.attempts + 1 - work.retry_base  # counted from the last manual requeue
    delay = None if final else retry_delay(attempt, work.endpoint.retry_schedule)
    if delay is not None and retry_after is not None:
        delay = retry_after
    if delay is None:
        return Outcome(work, row, DeliveryStatus.FAILED, now, status_code, error_class, False)
    return Outcome(
        work, row, DeliveryStatus.RETRYING, now + timedelta(seconds=delay), status_code, error_class, False
    )


class Sender:
    """Builds one delivery's body and hands it to the endpoint's channel; never raises (every
    failure becomes an :class:`Outcome`).

    Channels (:mod:`interlink.webhooks.channels`) only send and describe what happened; every
    attempt, whatever its channel, becomes an :class:`Outcome` here, through :func:`_failure` or
    the success path, so retries, ``Retry-After``, attempt rows and error classes are the same
    on every channel."""

    def __init__(self, transport: HttpTransport, smtp: SmtpConfig | None = None) -> None:
        self.transport = transport
        self.templates = _Templates()
        self.channels: dict[DeliveryChannel, Channel] = build_channels(transport, smtp)

    def document_of(self, work: Work) -> Any:
        """What is sent: the transformation's output, else the envelope (raises TransformationError
        or ValidationFailed for a bad template)."""
        if work.endpoint.transformation:
            document = filter_document(work.event.type, work.event.payload, work.event.metadata)
            return self.templates.get(work.endpoint.transformation).apply(document)
        return envelope(work.event)

    def body_of(self, work: Work) -> bytes:
        """The request body: :meth:`document_of` as compact JSON."""
        return _compact(self.document_of(work))

    async def _message(self, work: Work) -> OutboundMessage:
        if work.endpoint.transformation:
            # A transformation may use up to its time bound: keep it off the event loop, where it
            # would stall every other send of this worker.
            document = await asyncio.to_thread(self.document_of, work)
            return OutboundMessage(work, document, _compact(document), transformed=True)
        document = envelope(work.event)
        return OutboundMessage(work, document, _compact(document), transformed=False)

    async def send(self, work: Work) -> Outcome:
        endpoint = work.endpoint
        row = _attempt_row(work, utcnow(), {})
        channel = self.channels.get(endpoint.channel)
        if channel is None:
            return _failure(
                work, row, "other", f"channel {endpoint.channel} is not served by this worker", final=True
            )
        try:
            message = await self._message(work)
        except TransformationError as exc:
            return _failure(work, row, "transformation", f"transformation failed: {exc}", final=True)
        except Exception as exc:
            return _failure(
                work, row, "transformation", f"transformation failed: {type(exc).__name__}: {exc}", final=True
            )
        try:
            attempt = await channel.send(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a channel bug must not lose the delivery
            return _failure(work, row, "other", channel.scrub(f"{type(exc).__name__}: {exc}", endpoint))
        return self._answered(work, row, attempt)

    def _answered(self, work: Work, row: dict[str, Any], attempt: ChannelAttempt) -> Outcome:
        """The attempt row and outcome of what a channel did (the one path for every channel)."""
        now = utcnow()
        row["request_headers"] = {
            storable_text(k): storable_text(v) for k, v in redacted_headers(attempt.request_headers).items()
        }
        if attempt.duration_ms is not None:
            row["duration_ms"] = round(attempt.duration_ms, 3)
        row["response_status"] = attempt.status
        if attempt.response_headers is not None:
            row["response_headers"] = {
                storable_text(k): storable_text(v) for k, v in attempt.response_headers.items()
            }
        if attempt.response_body is not None:
            row["response_body"] = storable_text(attempt.response_body)[:MAX_RESPONSE_BODY_CHARS]
        if attempt.succeeded:
            row["succeeded"] = True
            if attempt.message:  # delivered, with something worth recording (a partial refusal)
                row["error_message"] = storable_text(attempt.message)[:MAX_ERROR_CHARS]
            return Outcome(work, row, DeliveryStatus.DELIVERED, now, attempt.status, None, True)
        error_class = attempt.error_class or "other"
        retry_after = None
        if attempt.response_headers:
            lowered = {k.lower(): v for k, v in attempt.response_headers.items()}
            retry_after = parse_retry_after(lowered.get("retry-after"), now)
        outcome = _failure(
            work,
            row,
            error_class,
            attempt.message or f"the attempt failed ({error_class})",
            retry_after=retry_after,
            final=attempt.final,
            status_code=attempt.status,
        )
        if attempt.disable_reason:
            outcome.disable_reason = attempt.disable_reason
        return outcome


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# -- batches -------------------------------------------------------------------------------------

BATCH_TYPE: Final = "batch"


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


async def send_batch(sender: Sender, works: Sequence[Work]) -> list[Outcome]:
    """Send deliveries claimed together for a batch endpoint; one :class:`Outcome` per delivery.

    Each event becomes its document (the endpoint's transformation applied to it alone, else its
    envelope); a document that fails the transformation fails its own delivery. The documents go,
    in claim order, into requests ``{"type": "batch", "timestamp", "data": [document, ...]}`` of
    at most ``maxBytes`` (a single larger document goes alone), sent one after the other. The first
    request carries the claim's batch id, the others new ones; ``webhook-id`` is the batch id, and
    every delivery of a request shares its attempt result (one attempt row each, with the
    ``batch_id``), so a failed request is retried later as the same set under the same id."""
    first = works[0]
    endpoint = first.endpoint
    settings = batch_settings(endpoint.batch_config, endpoint.channel)
    max_bytes = settings.max_bytes if settings is not None else 0
    outcomes: list[Outcome] = []
    documents: list[tuple[Work, Any, int]] = []
    for work in works:
        row = _attempt_row(work, utcnow(), {})
        try:
            if endpoint.transformation:
                document = await asyncio.to_thread(sender.document_of, work)
            else:
                document = envelope(work.event)
            size = len(_json_bytes(document))
        except TransformationError as exc:
            message = f"transformation failed: {exc}"
            outcomes.append(_failure(work, row, "transformation", message, final=True))
            continue
        except Exception as exc:
            message = f"transformation failed: {type(exc).__name__}: {exc}"
            outcomes.append(_failure(work, row, "transformation", message, final=True))
            continue
        documents.append((work, document, size))
    timestamp = utcnow()
    size = len(_json_bytes({"type": BATCH_TYPE, "timestamp": timestamp.isoformat(), "data": []}))
    parts: list[list[tuple[Work, Any, int]]] = []
    for item in documents:
        extra = item[2] + (1 if parts and parts[-1] else 0)
        if not parts or (max_bytes and parts[-1] and size + extra > max_bytes):
            parts.append([])
            size = len(_json_bytes({"type": BATCH_TYPE, "timestamp": timestamp.isoformat(), "data": []}))
            extra = item[2]
        parts[-1].append(item)
        size += extra
    for index, part in enumerate(parts):
        batch_id = first.batch_id if index == 0 and first.batch_id else new_id("bat")
        outcomes.extend(await _send_part(sender, batch_id, timestamp, part))
    return outcomes


async def _send_part(
    sender: Sender, batch_id: str, timestamp: datetime, part: Sequence[tuple[Work, Any, int]]
) -> list[Outcome]:
    """One batch request, through the endpoint's channel like any delivery: the batch is sent as
    an event whose id is the batch id and whose payload is the list of documents."""
    head = part[0][0]
    carrier = dataclasses.replace(
        head,
        delivery_id=batch_id,
        event=EventView(batch_id, BATCH_TYPE, [doc for _work, doc, _size in part], {}, timestamp),
        endpoint=dataclasses.replace(head.endpoint, transformation=None),
        batch_id=batch_id,
    )
    sent = await sender.send(carrier)
    outcomes = []
    for work, _doc, _size in part:
        row = {
            **sent.attempt,
            "id": new_id("att"),
            "tenant_id": work.tenant_id,
            "delivery_id": work.delivery_id,
            "endpoint_id": work.endpoint.id,
            "attempt_number": work.attempts + 1,
        }
        outcomes.append(dataclasses.replace(sent, work=work, attempt=row, batch_id=batch_id))
    return outcomes


# -- recording -----------------------------------------------------------------------------------


async def record(
    db: Database, worker_id: str, outcomes: Sequence[Outcome], releases: Sequence[Work] = ()
) -> None:
    """Write attempts, delivery states and endpoint health of many deliveries in one transaction.

    The endpoints are locked before the deliveries are written (in id order, as the health update
    locks them): a delivery whose endpoint was deleted meanwhile is CANCELLED instead of RETRYING
    (its attempt is kept), and a delete that comes later waits, then cancels what is requeued."""
    if not outcomes and not releases:
        return
    now = utcnow()
    async with db.unit_of_work() as session:
        conn = await session.connection()
        if outcomes:
            attempts = [{**o.attempt, "batch_id": o.batch_id} for o in outcomes]
            await _insert_attempts(conn, attempts, postgres=not db.is_sqlite)
        deleted = await _lock_endpoints(
            conn,
            [o.work.endpoint.id for o in outcomes] + [w.endpoint.id for w in releases],
            exclusive=True,
        )
        for o in outcomes:
            if o.status is DeliveryStatus.RETRYING and o.work.endpoint.id in deleted:
                o.status = DeliveryStatus.CANCELLED
        if outcomes and not db.is_sqlite:
            await _update_outcomes_pg(conn, worker_id, outcomes, now)
        elif outcomes:
            await _update_outcomes_sqlite(conn, worker_id, outcomes, now)
        if releases:
            await _release(conn, worker_id, [w.delivery_id for w in releases], now)
        await _endpoint_health(session, outcomes, now)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _rows_json(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as one JSON array (one parameter, parsed by PostgreSQL with ``jsonb_to_recordset``):
    pydantic-core's encoder (a third of ``json.dumps``' time; times as ISO 8601 with ``Z``); text
    it cannot encode (a lone surrogate) goes through ``json.dumps``, which escapes it."""
    try:
        return to_json(rows).decode()
    except PydanticSerializationError:
        return json.dumps(rows, default=_json_default, separators=(",", ":"))


@functools.lru_cache(maxsize=16)
def _attempts_sql(columns: tuple[str, ...]) -> sa.TextClause:
    """PostgreSQL: ``INSERT … SELECT … FROM jsonb_to_recordset(:rows)`` for these columns."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    names = ", ".join(columns)
    types = ", ".join(f"{name} {_T_ATTEMPT.c[name].type.compile(dialect=dialect)}" for name in columns)
    return sa.text(
        f"INSERT INTO webhook_attempts ({names}) SELECT {names} "  # noqa: S608 - names from the model
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS x ({types})"
    )


async def _insert_attempts(conn: Any, rows: list[dict[str, Any]], *, postgres: bool) -> None:
    """Insert attempt rows: on PostgreSQL one statement whatever their number (the rows travel as
    one JSON parameter; the text is the same every time, so it stays prepared), on SQLite
    ``executemany`` of the driver's own statement (:func:`_sqlite_attempts_insert`)."""
    columns = tuple(sorted(set().union(*rows)))
    if postgres:
        normalised = [{c: r.get(c) for c in columns} for r in rows]
        await conn.execute(_attempts_sql(columns), {"rows": _rows_json(normalised)})
        return
    if len(columns) != len(_T_ATTEMPT.columns):  # a column left to its default: the model's way
        await conn.execute(sa.insert(_T_ATTEMPT), [{c: r.get(c) for c in columns} for r in rows])
        return
    sql, converters = _sqlite_attempts_insert(columns)
    await conn.exec_driver_sql(
        sql,
        [
            tuple(
                value if convert is None else convert(value)
                for value, convert in zip([r.get(c) for c in columns], converters, strict=True)
            )
            for r in rows
        ],
    )


def _sqlite_time(value: datetime | None) -> str | None:
    return None if value is None else sqlite_datetime_text(value)


def _sqlite_flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


@functools.lru_cache(maxsize=16)
def _sqlite_attempts_insert(
    columns: tuple[str, ...],
) -> tuple[str, tuple[Callable[[Any], Any] | None, ...]]:
    """SQLite: the INSERT of attempt rows with these columns, and each value's conversion to what
    the column's type would bind (times as :class:`UTCDateTime` text, JSON as text, flags as 0/1).
    Bound by the driver, the rows skip SQLAlchemy's per-row parameter processing."""
    converters: list[Callable[[Any], Any] | None] = []
    for name in columns:
        column_type = _T_ATTEMPT.c[name].type
        if isinstance(column_type, UTCDateTime):
            converters.append(_sqlite_time)
        elif isinstance(column_type, sa.JSON):
            converters.append(json_text)
        elif isinstance(column_type, sa.Boolean):
            converters.append(_sqlite_flag)
        else:
            converters.append(None)
    marks = ", ".join("?" * len(columns))
    sql = f"INSERT INTO webhook_attempts ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - model names
    return sql, tuple(converters)


_SQLITE_OUTCOMES: Final = (
    "UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, "
    "last_status_code = ?, last_error_class = ?, delivered_at = COALESCE(?, delivered_at), "
    "batch_id = ?, locked_by = NULL, lease_expires_at = NULL, updated_at = ? "
    "WHERE id = ? AND locked_by = ? AND status = 'SENDING'"
)
"""SQLite: one outcome per row of an ``executemany`` bound by the driver, fenced like the
PostgreSQL form (the worker's lease, still SENDING)."""


async def _update_outcomes_sqlite(
    conn: Any, worker_id: str, outcomes: Sequence[Outcome], now: datetime
) -> None:
    now_text = sqlite_datetime_text(now)
    await conn.exec_driver_sql(
        _SQLITE_OUTCOMES,
        [
            (
                o.status.value,
                o.work.attempts + 1,
                _sqlite_time(o.next_attempt_at),
                o.status_code,
                o.error_class,
                now_text if o.succeeded else None,
                o.batch_id,
                now_text,
                o.work.delivery_id,
                worker_id,
            )
            for o in outcomes
        ],
    )


_OUTCOMES_SQL: Final = sa.text(
    "UPDATE webhook_deliveries AS d SET status = v.status, attempts = v.attempts, "
    "next_attempt_at = v.next_at, last_status_code = v.code, last_error_class = v.error, "
    "delivered_at = COALESCE(v.delivered, d.delivered_at), batch_id = v.batch, "
    "locked_by = NULL, lease_expires_at = NULL, updated_at = :now "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v (id varchar, status varchar, "
    "attempts integer, next_at timestamptz, code integer, error varchar, delivered timestamptz, "
    "batch varchar) "
    "WHERE d.id = v.id AND d.locked_by = :worker AND d.status = 'SENDING'"
)
"""PostgreSQL: every outcome of a flush in one ``UPDATE … FROM`` (the rows as one JSON parameter,
so the statement text is always the same and stays prepared), fenced like the per-row form."""


async def _update_outcomes_pg(conn: Any, worker_id: str, outcomes: Sequence[Outcome], now: datetime) -> None:
    rows = [
        {
            "id": o.work.delivery_id,
            "status": o.status.value,
            "attempts": o.work.attempts + 1,
            "next_at": o.next_attempt_at,
            "code": o.status_code,
            "error": o.error_class,
            "delivered": now if o.succeeded else None,
            "batch": o.batch_id,
        }
        for o in outcomes
    ]
    await conn.execute(_OUTCOMES_SQL, {"rows": _rows_json(rows), "worker": worker_id, "now": now})


async def _release(conn: Any, worker_id: str, ids: list[str], now: datetime) -> None:
    """Hand claimed deliveries back unsent (no attempt counted); see :func:`_requeued_status`."""
    t = _T_DELIVERY
    owners = await conn.execute(sa.select(t.c.endpoint_id).where(t.c.id.in_(ids)).distinct())
    await _lock_endpoints(conn, [r.endpoint_id for r in owners.all()], exclusive=False)
    await conn.execute(
        sa.update(t)
        .where(t.c.id.in_(ids), t.c.locked_by == worker_id, t.c.status == DeliveryStatus.SENDING)
        .values(status=_requeued_status(), locked_by=None, lease_expires_at=None, updated_at=now)
    )


async def release(db: Database, worker_id: str, ids: list[str]) -> None:
    """Hand claimed deliveries back unsent (shutdown): due again at once, no attempt counted."""
    if ids:
        async with db.unit_of_work() as session:
            await _release(await session.connection(), worker_id, ids, utcnow())


async def _endpoint_health(session: Any, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Fold the outcomes into each endpoint's health in the recording transaction: counters,
    410, auto-disable, circuit breaker and operational events (:mod:`interlink.webhooks.health`)."""
    by_endpoint: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_endpoint.setdefault(o.work.endpoint.id, []).append(o)
    results = []
    for endpoint_id, items in by_endpoint.items():
        gone = next((o for o in items if o.disable_reason), None)
        results.append(
            health.EndpointResults(
                endpoint_id=endpoint_id,
                tenant_id=items[0].work.tenant_id,
                succeeded=sum(1 for o in items if o.succeeded),
                failed=sum(
                    1 for o in items if not o.succeeded and o.error_class not in health.NOT_ENDPOINT_FAILURES
                ),
                gone_reason=gone.disable_reason if gone else None,
                gone_delivery_id=gone.work.delivery_id if gone else None,
            )
        )
    await health.record(session, results, now)


async def _admit_probes(
    session: Any, worker_id: str, rows: Sequence[Any], cooled: set[str], now: datetime, lease_seconds: float
) -> list[Any]:
    """Claimed rows minus those a circuit holds back: an endpoint of ``cooled`` (its cooldown is
    over) gets one delivery (the probe, if this claim wins it); the others claimed for it are
    handed back unsent."""
    cooled = cooled & {r.endpoint_id for r in rows}
    if not cooled:
        return list(rows)
    admitted = await health.admit_probes(session, sorted(cooled), now, lease_seconds)
    keep: list[Any] = []
    back: list[str] = []
    for r in sorted(rows, key=lambda r: (r.priority, r.id)):
        if r.endpoint_id not in cooled:
            keep.append(r)
        elif r.endpoint_id in admitted:
            admitted.discard(r.endpoint_id)
            keep.append(r)
        else:
            back.append(r.id)
    if back:
        await _release(await session.connection(), worker_id, back, now)
    return keep


# -- the worker ----------------------------------------------------------------------------------


@dataclass
class DeliveryConfig:
    """``concurrency``: sends in flight (a batch request is one); ``batch_size``: most sends per
    claim; ``flush_linger``: how long finished attempts wait for others before they are recorded
    together; ``takeover_interval``: how often expired leases are looked for."""

    concurrency: int = 64
    batch_size: int = 128
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    shutdown_grace: float = 10.0
    listen_dsn: str | None = None
    flush_linger: float = 0.01
    takeover_interval: float = 1.0


@dataclass
class DeliveryWorker:
    """Sends due deliveries until stopped. See the module contracts."""

    db: Database
    keyring: Keyring
    transport: HttpTransport
    config: DeliveryConfig = field(default_factory=DeliveryConfig)
    worker_id: str = field(default_factory=default_worker_id)
    smtp: SmtpConfig | None = None
    """The SMTP server of EMAIL deliveries (unset: they fail with error class ``unconfigured``)."""

    def __post_init__(self) -> None:
        self.sender = Sender(self.transport, self.smtp)
        self.views = EndpointViews()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._results_ready = asyncio.Event()
        self._claimed: dict[str, Work] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._next_takeover = datetime.min.replace(tzinfo=UTC)
        self._next_statistics = datetime.min.replace(tzinfo=UTC)
        self._results: list[Outcome] = []
        self._releases: list[Work] = []
        self._flush_lock = asyncio.Lock()
        self._low_water = max(1, min(self.config.batch_size, self.config.concurrency) // 4)
        """Free send slots worth a claim while sends are running."""
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
        """Claim sends for the free slots and start them. Returns (sends asked for, claimed)."""
        # Sends running, and at most twice that held in all (sent, outcome not yet recorded): what
        # a crashed worker leaves to be sent again stays bounded.
        free = min(
            self.config.concurrency - len(self._tasks),
            2 * self.config.concurrency - len({w.batch_id or i for i, w in self._claimed.items()}),
        )
        if free <= 0 or (free < self._low_water and self._tasks):
            return 0, 0
        now = utcnow()
        if now >= self._next_takeover:
            self._next_takeover = now + timedelta(seconds=self.config.takeover_interval)
            try:
                await take_over_expired(self.db)
            except Exception as exc:
                log.warning("delivery_takeover_failed", error=str(exc), error_type=type(exc).__name__)
            if now >= self._next_statistics:
                try:
                    if await refresh_queue_statistics(self.db):
                        self._next_statistics = now + timedelta(seconds=STATISTICS_INTERVAL_SECONDS)
                except Exception as exc:
                    log.warning("delivery_statistics_failed", error=str(exc), error_type=type(exc).__name__)
                    self._next_statistics = now + timedelta(seconds=STATISTICS_INTERVAL_SECONDS)
        wanted = min(free, self.config.batch_size)
        works = await claim(
            self.db,
            self.keyring,
            self.worker_id,
            wanted,
            self.config.lease_seconds,
            exclude_ids=list(self._claimed),
            finished_ids=[i for i, w in self._claimed.items() if (w.batch_id or i) not in self._tasks],
            views=self.views,
        )
        sends: dict[str, list[Work]] = {}
        for work in works:
            self._claimed[work.delivery_id] = work
            sends.setdefault(work.batch_id or work.delivery_id, []).append(work)
        for key, group in sends.items():
            self._tasks[key] = asyncio.create_task(self._send(key, group), name=f"delivery-{key}")
        return wanted, len(sends)

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
                self._claimed.pop(o.work.delivery_id, None)
                self.attempted += 1
                self.delivered += o.succeeded
            for w in releases:
                self._claimed.pop(w.delivery_id, None)
        observe_outcomes(outcomes)
        self._wake.set()
        return len(outcomes)

    # -- internals -------------------------------------------------------------------------

    async def _send(self, key: str, works: list[Work]) -> None:
        """One send: a delivery, or the deliveries of one batch (:func:`send_batch`)."""
        token = correlation_id_var.set(works[0].correlation_id)
        try:
            try:
                if works[0].batch_id is not None:
                    outcomes = await send_batch(self.sender, works)
                else:
                    outcomes = [await self.sender.send(works[0])]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not strand the delivery in SENDING
                log.error("delivery_send_crashed", delivery_id=key, error=type(exc).__name__)
                message = f"internal error: {type(exc).__name__}"
                outcomes = [_failure(w, _attempt_row(w, utcnow(), {}), "other", message) for w in works]
            self._results.extend(outcomes)
            self._results_ready.set()
        finally:
            correlation_id_var.reset(token)
            self._tasks.pop(key, None)
            # This send's slots (its endpoint's too, see claim's finished_ids) are free now, not
            # only once its outcome is recorded: claim again as soon as enough are free.
            if self.config.concurrency - len(self._tasks) >= self._low_water:
                self._wake.set()

    async def _flush_loop(self) -> None:
        delay = 0.05
        enough = max(1, min(self.config.batch_size, self.config.concurrency) // 2)
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            if (
                self.config.flush_linger > 0
                and self._tasks
                and len(self._results) < enough
                and not self._stopping.is_set()
            ):
                # Sends still running: let more finish, so one transaction records many of them.
                await asyncio.sleep(self.config.flush_linger)
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


async def deliver_now(
    db: Database,
    keyring: Keyring,
    transport: HttpTransport,
    delivery_ids: Sequence[str],
    *,
    lease_seconds: float | None = None,
    smtp: SmtpConfig | None = None,
) -> list[Outcome]:
    """Make the first attempt of these deliveries right away (``immediate`` ingest).

    Deliveries another worker holds already are skipped; failures are scheduled for retry as usual.
    The endpoints' limits apply: what cannot go now (``max_in_flight``, rate limit) is left to the
    queue, due at once; batch endpoints' deliveries wait for their batch. There is no heartbeat:
    the lease (``lease_seconds`` None) is the slowest endpoint's timeout, which bounds the whole
    send including name resolution, plus :data:`LEASE_MARGIN_SECONDS`.
    """
    if not delivery_ids:
        return []
    worker_id = f"immediate:{default_worker_id()}"
    works = await claim(db, keyring, worker_id, len(delivery_ids), lease_seconds, only_ids=delivery_ids)
    if not works:
        return []
    sender = Sender(transport, smtp)
    outcomes = list(await asyncio.gather(*(sender.send(w) for w in works)))
    await record(db, worker_id, outcomes)
    observe_outcomes(outcomes)
    return outcomes
