"""Outbound metrics: Prometheus counters for every call, and ApiMetrics from the request log.

Prometheus
----------
``interlink_outbound_requests_total{provider,outcome,error_class}`` (one per call; ``outcome`` is
``success`` or ``failure``, ``error_class`` ``none`` for successes),
``interlink_outbound_request_duration_seconds{provider}`` (the whole call),
``interlink_outbound_retries_total{provider}`` and, at scrape time,
``interlink_outbound_circuits{provider,state}`` (how many connections' breakers are in each state in
this process). ``provider`` is the provider key (``none`` without one): low cardinality by design.
Connection ids are never labels: per-connection figures come from :func:`api_metrics`.

ApiMetrics (:func:`api_metrics`)
--------------------------------
Computed on request from ``external_api_requests`` over ``[since, until)`` (default the last 24 h,
at most 90 days; :func:`interlink.webhooks.metrics.resolve_window`), for the tenant, one connection
or one provider. The window is matched on ``created_at`` and bounded by the time-ordered id
(widened by :data:`ID_CLOCK_SLACK`), so it is a range scan of the ``(tenant_id, …, id)`` indexes.
Latency percentiles are continuous over ``duration_ms``: PostgreSQL's ``percentile_cont``; on
SQLite one query numbers the durations with ``row_number()`` and returns only the rows at the two
ranks around each percentile (no durations are loaded into the process), then interpolates the
same way. Both give the same numbers.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import sqlalchemy as sa
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.ids import min_id_at
from interlink.outbound.models import ExternalApiRequest
from interlink.outbound.resilience import STATES, CircuitSnapshot
from interlink.outbound.response import ERROR_CLASSES
from interlink.outbound.schemas import ApiMetrics
from interlink.outbound.service import check_text
from interlink.webhooks.metrics import percentile_cont, resolve_window, shifted

PERCENTILES: Final = (0.5, 0.95, 0.99)
ID_CLOCK_SLACK: Final = timedelta(minutes=10)
"""A row's id is made when the call ends and ``created_at`` when it started: the id bounds are
widened by this much and ``created_at`` decides."""

_R = ExternalApiRequest

REQUESTS = Counter(
    "interlink_outbound_requests",
    "Outbound API calls, by provider, outcome (success or failure) and error class",
    ["provider", "outcome", "error_class"],
)
DURATION = Histogram(
    "interlink_outbound_request_duration_seconds",
    "Duration of outbound API calls (retries and waits included)",
    ["provider"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RETRIES = Counter("interlink_outbound_retries", "Outbound API retries, by provider", ["provider"])

_SUCCESS: dict[str, Any] = {}
_FAILURE: dict[tuple[str, str], Any] = {}
_DURATION: dict[str, Any] = {}


def observe_call(provider_key: str | None, error_class: str | None, duration_ms: float) -> None:
    """Count one finished call (label children are cached: this runs on every call)."""
    provider = provider_key or "none"
    if error_class is None:
        child = _SUCCESS.get(provider)
        if child is None:
            child = _SUCCESS[provider] = REQUESTS.labels(provider, "success", "none")
    else:
        cls = error_class if error_class in ERROR_CLASSES else "other"
        child = _FAILURE.get((provider, cls))
        if child is None:
            child = _FAILURE[(provider, cls)] = REQUESTS.labels(provider, "failure", cls)
    child.inc()
    hist = _DURATION.get(provider)
    if hist is None:
        hist = _DURATION[provider] = DURATION.labels(provider)
    hist.observe(duration_ms / 1000.0)


def count_retry(provider_key: str | None) -> None:
    RETRIES.labels(provider_key or "none").inc()


class _HasCircuits(Protocol):
    def circuits(self) -> list[CircuitSnapshot]: ...


_tracked: weakref.WeakSet[Any] = weakref.WeakSet()


def track(service: _HasCircuits) -> None:
    """Include ``service``'s breakers in the circuit gauges (for as long as it lives)."""
    _tracked.add(service)


def _family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "interlink_outbound_circuits",
        "Connections whose circuit breaker is in each state, in this process",
        labels=["provider", "state"],
    )


class CircuitGauges(Collector):
    """``interlink_outbound_circuits{provider,state}`` over every live OutboundService."""

    def describe(self) -> Iterable[GaugeMetricFamily]:
        yield _family()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = _family()
        counts: dict[tuple[str, str], int] = {}
        for service in list(_tracked):
            for snap in service.circuits():
                label = (snap.provider_key or "none", snap.state)
                counts[label] = counts.get(label, 0) + 1
        for (provider, state), n in sorted(counts.items()):
            family.add_metric([provider, state], n)
        if not counts:
            for state in STATES:
                family.add_metric(["none", state], 0)
        yield family


CIRCUIT_GAUGES: Final = CircuitGauges()
REGISTRY.register(CIRCUIT_GAUGES)


# -- ApiMetrics from the request log ---------------------------------------------------------------


def _where(
    tenant_id: str,
    since: datetime,
    until: datetime,
    connection_id: str | None,
    provider_key: str | None,
) -> list[Any]:
    where: list[Any] = [
        _R.tenant_id == tenant_id,
        _R.id >= min_id_at("apr", shifted(since, -ID_CLOCK_SLACK)),
        _R.id < min_id_at("apr", shifted(until, ID_CLOCK_SLACK)),
        _R.created_at >= since,
        _R.created_at < until,
    ]
    if connection_id is not None:
        where.append(_R.connection_id == connection_id)
    if provider_key is not None:
        where.append(_R.provider_key == provider_key)
    return where


async def _percentiles(session: AsyncSession, where: list[Any]) -> tuple[float | None, ...]:
    if session.get_bind().dialect.name == "postgresql":
        fractions = postgresql.array([sa.literal(p, sa.Float()) for p in PERCENTILES])
        values = sa.func.percentile_cont(fractions).within_group(_R.duration_ms)
        row = (
            await session.execute(
                sa.select(
                    sa.func.count().label("n"),
                    sa.type_coerce(values, postgresql.ARRAY(sa.Float())).label("values"),
                ).where(*where)
            )
        ).one()
        if not row.n:
            return (None,) * len(PERCENTILES)
        return tuple(float(v) for v in row.values)
    numbered = (
        sa.select(
            _R.duration_ms.label("d"),
            (sa.func.row_number().over(order_by=_R.duration_ms) - 1).label("rn"),
            sa.func.count().over().label("n"),
        )
        .where(*where)
        .subquery("numbered")
    )
    position = [sa.literal(p, sa.Float()) * (numbered.c.n - 1) for p in PERCENTILES]
    wanted = sa.or_(
        *(numbered.c.rn == sa.cast(pos, sa.Integer()) for pos in position),
        *(numbered.c.rn == sa.cast(pos, sa.Integer()) + 1 for pos in position),
    )
    rows = (await session.execute(sa.select(numbered.c.n, numbered.c.rn, numbered.c.d).where(wanted))).all()
    if not rows:
        return (None,) * len(PERCENTILES)
    n = int(rows[0].n)
    at = {int(r.rn): float(r.d) for r in rows}
    return tuple(percentile_cont(p, n, at) for p in PERCENTILES)


async def api_metrics(
    session: AsyncSession,
    tenant_id: str,
    *,
    connection_id: str | None = None,
    provider_key: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    circuit_state: str | None = None,
) -> ApiMetrics:
    """ApiMetrics of the tenant's calls in the window (see the module doc); 422 naming ``since``
    for a bad window."""
    check_text(connection_id, "connectionId")
    check_text(provider_key, "providerKey")
    window = resolve_window(since, until)
    where = _where(tenant_id, window.since, window.until, connection_id, provider_key)
    rows = (
        await session.execute(
            sa.select(
                _R.error_class,
                sa.func.count().label("n"),
                sa.func.sum(_R.attempts).label("a"),
                sa.func.sum(sa.case((_R.attempts > 1, _R.attempts - 1), else_=0)).label("r"),
            )
            .where(*where)
            .group_by(_R.error_class)
        )
    ).all()
    count = attempts = retries = succeeded = 0
    errors: dict[str, int] = {}
    for row in rows:
        n = int(row.n)
        count += n
        attempts += int(row.a or 0)
        retries += int(row.r or 0)
        if row.error_class is None:
            succeeded += n
        else:
            errors[str(row.error_class)] = errors.get(str(row.error_class), 0) + n
    p50, p95, p99 = await _percentiles(session, where) if count else (None, None, None)
    minutes = window.elapsed_minutes
    return ApiMetrics(
        tenant_id=tenant_id,
        connection_id=connection_id,
        provider_key=provider_key,
        since=window.since,
        until=window.until,
        generated_at=window.now,
        count=count,
        succeeded=succeeded,
        failed=count - succeeded,
        success_rate=succeeded / count if count else None,
        attempts=attempts,
        retries=retries,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        throughput_per_minute=count / minutes if minutes > 0 else 0.0,
        errors_by_class=dict(sorted(errors.items())),
        circuit_state=circuit_state,
    )
