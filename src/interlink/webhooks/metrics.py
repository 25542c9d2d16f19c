"""Delivery metrics (the guide's WebhookDeliveryMetrics) and the delivery engine's Prometheus metrics.

REST figures (:func:`endpoint_metrics`, :func:`tenant_metrics`)
----------------------------------------------------------------
Computed on request from ``webhook_deliveries`` and ``webhook_attempts`` over a window
``[since, until)`` (default: the last 24 hours; at most :data:`MAX_WINDOW`):

* **Deliveries created in the window**: counts by current status, ``successRate`` =
  delivered / (delivered + failed), ``attemptsPerDelivery`` = the deliveries' attempt counters
  summed / the deliveries with at least one attempt. The window is matched on ``created_at``; the
  query also bounds the time-ordered delivery id (an id carries its creation time to the
  millisecond, see :func:`interlink.core.ids.min_id_at`), so it is a range scan of the existing
  ``(tenant_id, id)`` and ``(tenant_id, endpoint_id, id)`` indexes, widened by
  :data:`ID_CLOCK_SLACK` on each side. This relies on ingest taking ``created_at`` once and then
  making the ids from the same clock: an id's time is at or just after its ``created_at``.
* **Attempts started in the window**: count, latency percentiles of ``duration_ms``,
  ``throughputPerMinute`` (attempts / minutes of the window elapsed so far) and ``errorsByClass``;
  range scans of ``(tenant_id, started_at)`` and ``(tenant_id, endpoint_id, started_at)``.
* **The queue now**: ``queueDepth`` (PENDING + RETRYING) and ``oldestPendingAgeSeconds`` (now minus
  the ``created_at`` of the oldest waiting delivery: how long the oldest undelivered event has been
  waiting, retries included), from the partial index ``ix_webhook_deliveries_waiting``.

Percentiles are continuous (``percentile_cont``): for fraction ``p`` over ``n`` sorted durations,
the value at rank ``p·(n−1)``, interpolated linearly between the two closest ranks. PostgreSQL
computes them with ``percentile_cont(ARRAY[...]) WITHIN GROUP (ORDER BY duration_ms)``. SQLite has
no percentile function: one query numbers the durations with ``row_number() OVER (ORDER BY
duration_ms)`` inside SQLite (which sorts in its own bounded cache and spills to temporary storage)
and returns only the rows at the two ranks around each percentile (at most six rows); the
interpolation is then the same arithmetic as PostgreSQL's. Both databases give the same numbers,
and no durations are ever loaded into this process.

Prometheus
----------
:func:`observe_outcomes` is called by the delivery worker after every recorded batch of attempts:
``interlink_webhook_attempts_total{channel,outcome,error_class}``,
``interlink_webhook_attempt_duration_seconds{channel}`` and
``interlink_webhook_deliveries_finished_total{status}``. :data:`QUEUE_GAUGES` serves the
database-wide gauges ``interlink_webhook_queue_depth{status}``,
``interlink_webhook_oldest_pending_seconds`` and ``interlink_webhook_queue_lag_seconds`` (how
overdue the most overdue due delivery of an enabled endpoint is: the "workers are behind" signal,
unlike the oldest age, which also grows while an endpoint fails) from one query, cached for a few
seconds and waited for briefly; :meth:`QueueGauges.refresh` never raises, so a scrape still
succeeds while the database is away (the gauges are then left out). No tenant or endpoint ids are
used as labels: per-endpoint figures come from the REST API. The counters are per process: a
worker run with ``interlink worker`` has no HTTP listener, so only workers inside
``interlink serve`` (and ``immediate`` sends) show up in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
import weakref
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
import structlog
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.clock import as_utc, utcnow
from interlink.core.db import Database
from interlink.core.enums import DeliveryStatus
from interlink.core.errors import NotFound, ValidationFailed
from interlink.core.ids import min_id_at
from interlink.webhooks import endpoints as endpoint_service
from interlink.webhooks.metrics_schemas import (
    DeliveryCounts,
    EndpointMetricsSummary,
    WebhookDeliveryMetrics,
)
from interlink.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from interlink.webhooks.delivery import Outcome

log = structlog.get_logger(__name__)

DEFAULT_WINDOW: Final = timedelta(hours=24)
MAX_WINDOW: Final = timedelta(days=90)
DEFAULT_TOP: Final = 10
MAX_TOP: Final = 100
PERCENTILES: Final = (0.5, 0.95, 0.99)
WAITING: Final = (DeliveryStatus.PENDING, DeliveryStatus.RETRYING)
_WAITING_SQL: Final = "webhook_deliveries.status IN ('PENDING', 'RETRYING')"
"""The predicate of the partial index ``ix_webhook_deliveries_waiting``, written as literal SQL so
the planner can use that index for prepared statements too (a bound parameter would not prove it)."""
ID_CLOCK_SLACK: Final = timedelta(minutes=10)
"""How far a delivery's id time may be from its ``created_at`` (an ingest transaction takes its
time once, then makes ids): the id bounds are widened by this much, ``created_at`` decides."""

_D = WebhookDelivery
_A = WebhookAttempt


# -- the window ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    since: datetime
    until: datetime
    now: datetime

    @property
    def elapsed_minutes(self) -> float:
        """Minutes of the window that have passed (a window may end in the future)."""
        return max(0.0, (min(self.until, self.now) - self.since).total_seconds() / 60.0)


def resolve_window(since: datetime | None, until: datetime | None, now: datetime | None = None) -> Window:
    """The window ``[since, until)``: ``until`` defaults to now, ``since`` to 24 hours before
    ``until``. 422 (naming the field) when ``since`` is not before ``until``, when ``since`` is in
    the future, or when the window spans more than 90 days."""
    now = now or utcnow()
    end = as_utc(until) if until is not None else now
    start = as_utc(since) if since is not None else shifted(end, -DEFAULT_WINDOW)
    if start > now:
        raise ValidationFailed("since must not be in the future", field="since")
    if start >= end:
        raise ValidationFailed("since must be before until", field="since")
    if end - start > MAX_WINDOW:
        raise ValidationFailed(
            f"the window may span at most {MAX_WINDOW.days} days (since to until)", field="since"
        )
    return Window(start, end, now)


def shifted(when: datetime, delta: timedelta) -> datetime:
    """``when + delta``, held at the ends of the calendar (a window may start in year 1)."""
    try:
        return when + delta
    except OverflowError:
        return (datetime.max if delta > timedelta(0) else datetime.min).replace(tzinfo=UTC)


def check_top(top: int) -> int:
    if not 1 <= top <= MAX_TOP:
        raise ValidationFailed(f"top must be between 1 and {MAX_TOP}", field="top")
    return top


# -- figures -------------------------------------------------------------------------------------


@dataclass
class _Figures:
    """Everything measured for one scope (the tenant, or one endpoint)."""

    counts: Tally[str] = field(default_factory=Tally)
    attempts_made: int = 0
    attempted: int = 0
    window_attempts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    percentiles: tuple[float | None, ...] = (None,) * len(PERCENTILES)
    queue_depth: int = 0
    oldest_created: datetime | None = None

    def stats(self, window: Window) -> dict[str, Any]:
        """Keyword arguments of :class:`DeliveryStats`."""
        delivered = self.counts[DeliveryStatus.DELIVERED.value]
        failed = self.counts[DeliveryStatus.FAILED.value]
        p50, p95, p99 = self.percentiles
        minutes = window.elapsed_minutes
        age = None
        if self.oldest_created is not None:
            age = max(0.0, round((window.now - self.oldest_created).total_seconds(), 3))
        return {
            "deliveries": DeliveryCounts(
                total=sum(self.counts.values()),
                delivered=delivered,
                failed=failed,
                pending=self.counts[DeliveryStatus.PENDING.value],
                retrying=self.counts[DeliveryStatus.RETRYING.value],
                sending=self.counts[DeliveryStatus.SENDING.value],
                cancelled=self.counts[DeliveryStatus.CANCELLED.value],
            ),
            "success_rate": delivered / (delivered + failed) if delivered + failed else None,
            "attempts_per_delivery": self.attempts_made / self.attempted if self.attempted else None,
            "attempts": self.window_attempts,
            "latency_samples": self.samples,
            "p50_ms": p50,
            "p95_ms": p95,
            "p99_ms": p99,
            "throughput_per_minute": self.window_attempts / minutes if minutes > 0 else 0.0,
            "errors_by_class": dict(sorted(self.errors.items())),
            "queue_depth": self.queue_depth,
            "oldest_pending_age_seconds": age,
        }


Key = str | None
"""Figures are keyed by endpoint id, or ``None`` for the whole tenant."""


def _scope(column: Any, endpoint_ids: Sequence[str] | None) -> list[Any]:
    if endpoint_ids is None:
        return []
    if len(endpoint_ids) == 1:
        return [column == endpoint_ids[0]]
    return [column.in_(list(endpoint_ids))]


def _cohort_where(tenant_id: str, window: Window) -> list[Any]:
    return [
        _D.tenant_id == tenant_id,
        _D.id >= min_id_at("del", shifted(window.since, -ID_CLOCK_SLACK)),
        _D.id < min_id_at("del", shifted(window.until, ID_CLOCK_SLACK)),
        _D.created_at >= window.since,
        _D.created_at < window.until,
    ]


def _cohort_columns() -> list[Any]:
    return [
        sa.func.count().label("n"),
        sa.func.coalesce(sa.func.sum(_D.attempts), 0).label("made"),
        sa.func.coalesce(sa.func.sum(sa.case((_D.attempts > 0, 1), else_=0)), 0).label("tried"),
    ]


def _status_value(value: Any) -> str:
    return str(getattr(value, "value", value))


async def _endpoint_cohort(
    session: AsyncSession, tenant_id: str, window: Window, endpoint_id: str, into: _Figures
) -> None:
    stmt = (
        sa.select(_D.status, *_cohort_columns())
        .where(*_cohort_where(tenant_id, window), _D.endpoint_id == endpoint_id)
        .group_by(_D.status)
    )
    for row in (await session.execute(stmt)).all():
        into.counts[_status_value(row.status)] += int(row.n)
        into.attempts_made += int(row.made)
        into.attempted += int(row.tried)


async def _tenant_cohort(
    session: AsyncSession, tenant_id: str, window: Window, top: int
) -> dict[Key, _Figures]:
    """The tenant's totals and those of its ``top`` busiest endpoints, from one scan of the
    window's deliveries (grouped by endpoint and status, then ranked)."""
    per = (
        sa.select(_D.endpoint_id, _D.status, *_cohort_columns())
        .where(*_cohort_where(tenant_id, window))
        .group_by(_D.endpoint_id, _D.status)
        .cte("per_endpoint")
    )
    volume = sa.func.sum(per.c.n)
    busiest = (
        sa.select(per.c.endpoint_id)
        .group_by(per.c.endpoint_id)
        .order_by(volume.desc(), per.c.endpoint_id)
        .limit(top)
    )
    ranked = sa.select(per.c.endpoint_id, per.c.status, per.c.n, per.c.made, per.c.tried).where(
        per.c.endpoint_id.in_(busiest.scalar_subquery())
    )
    totals = sa.select(
        sa.literal(None, sa.String()).label("endpoint_id"),
        per.c.status,
        sa.func.sum(per.c.n),
        sa.func.sum(per.c.made),
        sa.func.sum(per.c.tried),
    ).group_by(per.c.status)
    out: dict[Key, _Figures] = {None: _Figures()}
    for endpoint_id, status, n, made, tried in (await session.execute(sa.union_all(ranked, totals))).all():
        figures = out.setdefault(endpoint_id, _Figures())
        figures.counts[_status_value(status)] += int(n)
        figures.attempts_made += int(made)
        figures.attempted += int(tried)
    return out


async def _attempt_classes(
    session: AsyncSession,
    tenant_id: str,
    window: Window,
    endpoint_ids: Sequence[str] | None,
    out: dict[Key, _Figures],
) -> None:
    """Attempts started in the window, by error class (``None``: succeeded)."""
    group: list[Any] = [_A.error_class] if endpoint_ids is None else [_A.endpoint_id, _A.error_class]
    stmt = (
        sa.select(*group, sa.func.count().label("n"))
        .where(
            _A.tenant_id == tenant_id,
            *_scope(_A.endpoint_id, endpoint_ids),
            _A.started_at >= window.since,
            _A.started_at < window.until,
        )
        .group_by(*group)
    )
    for row in (await session.execute(stmt)).all():
        key: Key = None if endpoint_ids is None else row.endpoint_id
        figures = out.setdefault(key, _Figures())
        figures.window_attempts += int(row.n)
        if row.error_class is not None:
            figures.errors[row.error_class] = figures.errors.get(row.error_class, 0) + int(row.n)


def percentile_cont(fraction: float, n: int, at: dict[int, float]) -> float:
    """PostgreSQL's ``percentile_cont`` from the values ``at`` the ranks around ``fraction·(n−1)``."""
    position = fraction * (n - 1)
    first, second = math.floor(position), math.ceil(position)
    low = at[first]
    return low + (position - first) * (at[second] - low)


def percentile_ranks(fraction: float, n: int) -> tuple[int, int]:
    position = fraction * (n - 1)
    return math.floor(position), math.ceil(position)


async def _latency(
    session: AsyncSession,
    tenant_id: str,
    window: Window,
    endpoint_ids: Sequence[str] | None,
    out: dict[Key, _Figures],
) -> None:
    """p50/p95/p99 of ``duration_ms`` over the attempts started in the window (see module doc)."""
    where = [
        _A.tenant_id == tenant_id,
        *_scope(_A.endpoint_id, endpoint_ids),
        _A.started_at >= window.since,
        _A.started_at < window.until,
        _A.duration_ms.is_not(None),
    ]
    grouped = endpoint_ids is not None
    if session.get_bind().dialect.name == "postgresql":
        fractions = postgresql.array([sa.literal(p, sa.Float()) for p in PERCENTILES])
        values = sa.func.percentile_cont(fractions).within_group(_A.duration_ms)
        pg = sa.select(
            *([_A.endpoint_id] if grouped else []),
            sa.func.count().label("n"),
            sa.type_coerce(values, postgresql.ARRAY(sa.Float())).label("values"),
        ).where(*where)
        if grouped:
            pg = pg.group_by(_A.endpoint_id)
        for row in (await session.execute(pg)).all():
            if not row.n:
                continue
            figures = out.setdefault(row.endpoint_id if grouped else None, _Figures())
            figures.samples = int(row.n)
            figures.percentiles = tuple(float(v) for v in row.values)
        return
    partition = [_A.endpoint_id] if grouped else []
    numbered = (
        sa.select(
            *partition,
            _A.duration_ms.label("d"),
            (sa.func.row_number().over(partition_by=partition or None, order_by=_A.duration_ms) - 1).label(
                "rn"
            ),
            sa.func.count().over(partition_by=partition or None).label("n"),
        )
        .where(*where)
        .subquery("numbered")
    )
    position = [sa.literal(p, sa.Float()) * (numbered.c.n - 1) for p in PERCENTILES]
    wanted = sa.or_(
        *(numbered.c.rn == sa.cast(pos, sa.Integer()) for pos in position),
        *(numbered.c.rn == sa.cast(pos, sa.Integer()) + 1 for pos in position),
    )
    lite = sa.select(
        *([numbered.c.endpoint_id] if grouped else []), numbered.c.n, numbered.c.rn, numbered.c.d
    ).where(wanted)
    ranks: dict[Key, tuple[int, dict[int, float]]] = {}
    for row in (await session.execute(lite)).all():
        key: Key = row.endpoint_id if grouped else None
        n, at = ranks.setdefault(key, (int(row.n), {}))
        at[int(row.rn)] = float(row.d)
    for key, (n, at) in ranks.items():
        figures = out.setdefault(key, _Figures())
        figures.samples = n
        figures.percentiles = tuple(percentile_cont(p, n, at) for p in PERCENTILES)


async def _queue(
    session: AsyncSession, tenant_id: str, endpoint_ids: Sequence[str] | None, out: dict[Key, _Figures]
) -> None:
    """Deliveries waiting now (PENDING or RETRYING) and the creation time of the oldest."""
    grouped = endpoint_ids is not None
    stmt = sa.select(
        *([_D.endpoint_id] if grouped else []),
        sa.func.count().label("n"),
        sa.func.min(_D.created_at).label("oldest"),
    ).where(_D.tenant_id == tenant_id, *_scope(_D.endpoint_id, endpoint_ids), sa.text(_WAITING_SQL))
    if grouped:
        stmt = stmt.group_by(_D.endpoint_id)
    for row in (await session.execute(stmt)).all():
        if not row.n:
            continue
        figures = out.setdefault(row.endpoint_id if grouped else None, _Figures())
        figures.queue_depth = int(row.n)
        figures.oldest_created = as_utc(row.oldest) if row.oldest is not None else None


async def _visible_endpoint(session: AsyncSession, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    row = await session.scalar(
        sa.select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id
        )
    )
    if row is None or endpoint_service.is_deleted(row):
        raise NotFound(f"endpoint {endpoint_id} not found")
    return row


async def endpoint_metrics(
    session: AsyncSession,
    tenant_id: str,
    endpoint_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> WebhookDeliveryMetrics:
    """Metrics of one endpoint of the tenant (404 for another tenant's or a deleted endpoint)."""
    window = resolve_window(since, until)
    await _visible_endpoint(session, tenant_id, endpoint_id)
    figures: dict[Key, _Figures] = {endpoint_id: _Figures()}
    await _endpoint_cohort(session, tenant_id, window, endpoint_id, figures[endpoint_id])
    await _attempt_classes(session, tenant_id, window, [endpoint_id], figures)
    await _latency(session, tenant_id, window, [endpoint_id], figures)
    await _queue(session, tenant_id, [endpoint_id], figures)
    return WebhookDeliveryMetrics(
        tenant_id=tenant_id,
        endpoint_id=endpoint_id,
        since=window.since,
        until=window.until,
        generated_at=window.now,
        **figures[endpoint_id].stats(window),
    )


async def tenant_metrics(
    session: AsyncSession,
    tenant_id: str,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    top: int = DEFAULT_TOP,
) -> WebhookDeliveryMetrics:
    """Metrics of the whole tenant, with its ``top`` busiest endpoints (by deliveries created in
    the window) broken down."""
    window = resolve_window(since, until)
    check_top(top)
    figures = await _tenant_cohort(session, tenant_id, window, top)
    await _attempt_classes(session, tenant_id, window, None, figures)
    await _latency(session, tenant_id, window, None, figures)
    await _queue(session, tenant_id, None, figures)
    total = figures.pop(None)
    busiest = sorted(figures, key=lambda k: (-sum(figures[k].counts.values()), k or ""))
    ids = [k for k in busiest if k is not None]
    if ids:
        await _attempt_classes(session, tenant_id, window, ids, figures)
        await _latency(session, tenant_id, window, ids, figures)
        await _queue(session, tenant_id, ids, figures)
    rows = await session.scalars(
        sa.select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id.in_(ids))
    )
    urls = {row.id: endpoint_service.shown_url(row) for row in rows}  # SLACK hook urls redacted
    return WebhookDeliveryMetrics(
        tenant_id=tenant_id,
        endpoint_id=None,
        since=window.since,
        until=window.until,
        generated_at=window.now,
        endpoints=[
            EndpointMetricsSummary(endpoint_id=k, url=urls.get(k), **figures[k].stats(window)) for k in ids
        ],
        **total.stats(window),
    )


# -- Prometheus: what the delivery worker did ----------------------------------------------------

_LABEL_VALUE = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""Error classes are short identifiers set by the code (transport, channels), never free text; anything
else is counted as ``other`` so a label can never carry unbounded values."""

ATTEMPTS = Counter(
    "interlink_webhook_attempts",
    "Delivery attempts recorded, by channel, outcome (success or failure) and error class",
    ["channel", "outcome", "error_class"],
)
ATTEMPT_DURATION = Histogram(
    "interlink_webhook_attempt_duration_seconds",
    "Duration of delivery attempts that reached the network (request sent to answer or error)",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60),
)
FINISHED = Counter(
    "interlink_webhook_deliveries_finished",
    "Deliveries that reached a final state through an attempt (DELIVERED or FAILED)",
    ["status"],
)
_FINAL = (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)


def observe_outcomes(outcomes: Iterable[Outcome]) -> None:
    """Count recorded attempts (call after they were written). Never raises."""
    try:
        for outcome in outcomes:
            channel = outcome.work.endpoint.channel.value
            if outcome.succeeded:
                ATTEMPTS.labels(channel, "success", "none").inc()
            else:
                error_class = outcome.error_class or "other"
                if not _LABEL_VALUE.fullmatch(error_class):
                    error_class = "other"
                ATTEMPTS.labels(channel, "failure", error_class).inc()
            duration_ms = outcome.attempt.get("duration_ms")
            if duration_ms is not None:
                ATTEMPT_DURATION.labels(channel).observe(float(duration_ms) / 1000.0)
            if outcome.status in _FINAL:
                FINISHED.labels(outcome.status.value).inc()
    except Exception as exc:  # metrics must never break delivery
        log.warning("delivery_metrics_failed", error=str(exc))


# -- Prometheus: the queue, at scrape time -------------------------------------------------------


@dataclass(frozen=True)
class QueueSnapshot:
    depth: dict[str, int]
    oldest_age_seconds: float
    lag_seconds: float


async def queue_snapshot(db: Database) -> QueueSnapshot:
    """One query over the waiting deliveries of every tenant: how many per status, the age of the
    oldest, and how overdue the most overdue delivery of an enabled endpoint is."""
    now = utcnow()
    due_next = sa.case((WebhookEndpoint.enabled.is_(True), _D.next_attempt_at), else_=None)
    stmt = (
        sa.select(
            _D.status,
            sa.func.count().label("n"),
            sa.func.min(_D.created_at).label("oldest"),
            sa.func.min(due_next).label("next"),
        )
        .join(WebhookEndpoint, WebhookEndpoint.id == _D.endpoint_id)
        .where(sa.text(_WAITING_SQL))
        .group_by(_D.status)
    )
    async with db.unit_of_work(write=False) as session:
        rows = (await session.execute(stmt)).all()
    depth = {s.value: 0 for s in WAITING}
    oldest: datetime | None = None
    first_due: datetime | None = None
    for row in rows:
        depth[_status_value(row.status)] = int(row.n)
        if row.oldest is not None:
            created = as_utc(row.oldest)
            oldest = created if oldest is None else min(oldest, created)
        if row.next is not None:
            due = as_utc(row.next)
            first_due = due if first_due is None else min(first_due, due)
    return QueueSnapshot(
        depth=depth,
        oldest_age_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        lag_seconds=max(0.0, (now - first_due).total_seconds()) if first_due else 0.0,
    )


class QueueGauges(Collector):
    """Scrape-time queue gauges from one cached query (see the module doc).

    Collectors are synchronous and the database is not, so :meth:`refresh` runs before the
    registry is rendered: it reuses a snapshot younger than ``max_age`` seconds; otherwise it
    starts the query (unless one is running) and waits for it at most ``wait`` seconds. A slow
    query keeps running in the background (up to ``query_timeout``) and serves later scrapes; a
    snapshot older than ``stale_after`` seconds is not served at all, so while the database is away
    the gauges are left out of the scrape instead of failing it or showing old values.
    """

    def __init__(
        self,
        *,
        max_age: float = 5.0,
        wait: float = 2.0,
        query_timeout: float = 30.0,
        stale_after: float = 60.0,
    ) -> None:
        self.max_age = max_age
        self.wait = wait
        self.query_timeout = query_timeout
        self.stale_after = stale_after
        self._snapshot: QueueSnapshot | None = None
        self._taken_at = 0.0
        self._source: weakref.ref[Database] | None = None
        self._task: asyncio.Task[None] | None = None
        self.failures = Counter(
            "interlink_webhook_queue_query_failures",
            "Scrape-time queue queries that failed or timed out",
            registry=None,
        )

    async def refresh(self, db: Database) -> None:
        """Bring the snapshot up to date for ``db``; never raises, waits at most ``wait`` seconds."""
        try:
            if self._source is None or self._source() is not db:
                self._source, self._snapshot, self._taken_at = weakref.ref(db), None, 0.0
            elif time.monotonic() - self._taken_at < self.max_age:
                return
            loop = asyncio.get_running_loop()
            task = self._task
            if task is None or task.done() or task.get_loop() is not loop:
                task = self._task = loop.create_task(self._query(db), name="webhook-queue-metrics")
            await asyncio.wait({task}, timeout=self.wait)
        except Exception as exc:  # never fail a scrape
            log.warning("queue_metrics_refresh_failed", error=str(exc) or type(exc).__name__)

    async def _query(self, db: Database) -> None:
        try:
            snapshot = await asyncio.wait_for(queue_snapshot(db), timeout=self.query_timeout)
        except Exception as exc:
            self.failures.inc()
            log.warning("queue_metrics_unavailable", error=str(exc) or type(exc).__name__)
            return
        if self._source is not None and self._source() is db:
            self._snapshot, self._taken_at = snapshot, time.monotonic()

    def describe(self) -> Iterator[Any]:
        yield from self._families(None)
        yield from self.failures.describe()

    def collect(self) -> Iterator[Any]:
        yield from self.collect_gauges()
        yield from self.failures.collect()

    def collect_gauges(self) -> Iterator[GaugeMetricFamily]:
        """The three gauges without the failure counter (which a scrape of several processes sums
        from their files with the other counters)."""
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - self._taken_at > self.stale_after:
            snapshot = None
        yield from self._families(snapshot)

    @staticmethod
    def _families(snapshot: QueueSnapshot | None) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "interlink_webhook_queue_depth",
            "Deliveries waiting (PENDING or RETRYING) in the whole database",
            labels=["status"],
        )
        oldest = GaugeMetricFamily(
            "interlink_webhook_oldest_pending_seconds",
            "Seconds since the oldest waiting delivery was created (retries included)",
        )
        lag = GaugeMetricFamily(
            "interlink_webhook_queue_lag_seconds",
            "How overdue the most overdue due delivery of an enabled endpoint is (0: workers keep up)",
        )
        if snapshot is not None:
            for status, count in sorted(snapshot.depth.items()):
                depth.add_metric([status], count)
            oldest.add_metric([], snapshot.oldest_age_seconds)
            lag.add_metric([], snapshot.lag_seconds)
        yield depth
        yield oldest
        yield lag


QUEUE_GAUGES: Final = QueueGauges()
REGISTRY.register(QUEUE_GAUGES)
