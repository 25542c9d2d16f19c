"""Endpoint health: failure counters, auto-disable, the circuit breaker, operational events and the
``webhook.test`` ping.

Contracts
---------
* **Counters.** Every recorded batch of attempts updates each endpoint once (:func:`record`, called
  by the delivery engine inside its recording transaction, endpoint rows locked in id order): a
  success sets ``last_success_at`` and clears ``consecutive_failures`` and ``failing_since``;
  failures add to ``consecutive_failures`` and set ``failing_since`` if it was empty. Attempts
  that failed because of the event, not the endpoint (a transformation that fails on it), do not
  count.
* **Auto-disable.** When a failure is recorded for an enabled endpoint whose ``failing_since`` is at
  least the tenant's ``disableAfterSeconds`` ago (default 5 days; no success since), the endpoint
  is disabled with a reason, audited as ``endpoint.disabled`` by the system actor. A 410 answer
  disables at once. Its waiting deliveries are kept (PENDING/RETRYING, not claimed while it is
  disabled), so re-enabling resumes them; nothing new is fanned out to it meanwhile.
* **Circuit breaker** (the tenant's ``circuitBreaker``; built-in 20 failures / 60 s / 60 s, null =
  off). Failures are counted in a window that starts at the first failure after a success or after
  the previous window ran out; when ``failureThreshold`` failures fall in one window the circuit
  opens (``circuit_state`` OPEN, ``circuit_open_until`` = now + cooldown, audited as
  ``endpoint.circuit_opened``). While it is open, the claim leaves the endpoint's deliveries where
  they are: no attempt is made or counted, they simply wait. When the cooldown is over, the next
  claim admits exactly one delivery as the probe (:func:`admit_probes`: the endpoint becomes
  HALF_OPEN until the probe is recorded or :data:`PROBE_GRACE` after its lease); other deliveries
  of the endpoint claimed with it are handed back unsent. A success closes the circuit (audited
  ``endpoint.circuit_closed``); a failure re-opens it with the cooldown doubled for every failed
  probe in a row, at most :data:`MAX_COOLDOWN_SECONDS`. Opening the circuit is not disabling.
* **Operational events.** ``endpoint.disabled`` (auto-disable, 410) and ``endpoint.recovered``
  (manual re-enable of a disabled or tripped endpoint, a circuit closing, or a success ending a
  streak of at least :data:`RECOVERY_MIN_FAILURES` failures) are real events written through
  :func:`interlink.webhooks.ingest.ingest_batch` in the same transaction as the state change. They
  go only to the tenant's *other* enabled endpoints that list the type in ``eventTypes``
  explicitly: an endpoint subscribed to every type (empty list or ``*``) does not get them, because
  a receiver written for the tenant's business events would not expect them, and an endpoint never
  hears about itself (it is the one failing). Nothing is written when nobody subscribes.
* **Ping.** :func:`send_test` writes a ``webhook.test`` event delivered only to the named endpoint,
  whatever its subscriptions and filter, held back from the queue for the caller's immediate
  attempt (``delivery.deliver_now``), like ``immediate`` events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core import audit
from interlink.core.actor import Actor, system_actor
from interlink.core.clock import as_utc, utcnow
from interlink.core.errors import Conflict, NotFound
from interlink.webhooks import config as webhook_config
from interlink.webhooks import endpoints as endpoint_service
from interlink.webhooks import ingest, operational
from interlink.webhooks.models import WebhookEndpoint
from interlink.webhooks.schemas import endpoint_info

log = structlog.get_logger(__name__)

CLOSED: Final = "CLOSED"
OPEN: Final = "OPEN"
HALF_OPEN: Final = "HALF_OPEN"
MAX_COOLDOWN_SECONDS: Final = 86_400
PROBE_GRACE: Final = 60.0
"""Seconds a half-open endpoint waits beyond the probe's lease before another probe may go."""
RECOVERY_MIN_FAILURES: Final = 5
"""A success publishes ``endpoint.recovered`` after this many failures in a row (or an open circuit)."""
NOT_ENDPOINT_FAILURES: Final = frozenset({"transformation"})
"""Error classes that say nothing about the endpoint (they do not count against its health)."""
DISABLED_EVENT: Final = "endpoint.disabled"
RECOVERED_EVENT: Final = "endpoint.recovered"
TEST_EVENT: Final = "webhook.test"


@dataclass(frozen=True)
class EndpointResults:
    """What one recorded batch of attempts says about one endpoint."""

    endpoint_id: str
    tenant_id: str
    succeeded: int
    failed: int
    """Failed attempts that count against the endpoint (see :data:`NOT_ENDPOINT_FAILURES`)."""
    gone_reason: str | None = None
    """Set when the endpoint answered 410: it is disabled with this reason."""
    gone_delivery_id: str | None = None


def _when(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


def _duration(seconds: int) -> str:
    if seconds % 86_400 == 0:
        days = seconds // 86_400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{seconds} s"


# -- operational events ----------------------------------------------------------------------------


async def publish(
    session: AsyncSession, endpoint: WebhookEndpoint, event_type: str, payload: dict[str, Any]
) -> str | None:
    """Write an operational event about ``endpoint`` for its explicit subscribers (never itself)."""
    return await operational.publish(session, endpoint.tenant_id, event_type, payload, exclude=endpoint.id)


def _payload(endpoint: WebhookEndpoint, reason: str, **extra: Any) -> dict[str, Any]:
    return {"endpointId": endpoint.id, "url": endpoint_info(endpoint).url, "reason": reason, **extra}


async def publish_disabled(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    reason: str,
    failing_since: datetime | None,
    consecutive_failures: int,
    disabled_at: datetime,
) -> str | None:
    payload = _payload(
        endpoint,
        reason,
        failingSince=_when(failing_since),
        consecutiveFailures=consecutive_failures,
        disabledAt=_when(disabled_at),
    )
    return await publish(session, endpoint, DISABLED_EVENT, payload)


async def publish_recovered(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    reason: str,
    failing_since: datetime | None,
    consecutive_failures: int,
    disabled_at: datetime | None,
    recovered_at: datetime,
) -> str | None:
    payload = _payload(
        endpoint,
        reason,
        failingSince=_when(failing_since),
        consecutiveFailures=consecutive_failures,
        disabledAt=_when(disabled_at),
        recoveredAt=_when(recovered_at),
    )
    return await publish(session, endpoint, RECOVERED_EVENT, payload)


# -- the circuit -----------------------------------------------------------------------------------


def circuit_tripped(endpoint: WebhookEndpoint) -> bool:
    """True while the circuit is not CLOSED."""
    return (endpoint.circuit_state or CLOSED) != CLOSED


def close_circuit(endpoint: WebhookEndpoint) -> None:
    endpoint.circuit_state = CLOSED
    endpoint.circuit_open_until = None
    endpoint.circuit_opens = 0
    endpoint.circuit_window_start = None
    endpoint.circuit_window_failures = 0


def _open_circuit(
    session: AsyncSession, endpoint: WebhookEndpoint, breaker: webhook_config.CircuitBreaker, now: datetime
) -> None:
    before = endpoint.circuit_state or CLOSED
    opens = (endpoint.circuit_opens or 0) + 1
    cooldown = min(MAX_COOLDOWN_SECONDS, breaker.cooldown_seconds * 2 ** min(opens - 1, 30))
    endpoint.circuit_state = OPEN
    endpoint.circuit_opens = opens
    endpoint.circuit_open_until = now + timedelta(seconds=cooldown)
    endpoint.circuit_window_start = None
    endpoint.circuit_window_failures = 0
    audit.record(
        session,
        system_actor(endpoint.tenant_id),
        "endpoint.circuit_opened",
        "endpoint",
        endpoint.id,
        {
            "circuitState": {"old": before, "new": OPEN},
            "circuitOpenUntil": {"old": None, "new": endpoint.circuit_open_until.isoformat()},
            "circuitOpens": {"old": opens - 1, "new": opens},
            "consecutiveFailures": {"old": None, "new": endpoint.consecutive_failures},
        },
    )


async def admit_probes(
    session: AsyncSession, endpoint_ids: Sequence[str], now: datetime, lease_seconds: float
) -> set[str]:
    """Of endpoints whose cooldown is over, those this claim may send one probe to.

    Each is moved to HALF_OPEN until the probe's lease (plus :data:`PROBE_GRACE`) ends; a
    concurrent claim that lost the race for an endpoint gets it left out (the conditional UPDATE
    runs again on the committed row under PostgreSQL's row lock)."""
    admitted: set[str] = set()
    hold_until = now + timedelta(seconds=lease_seconds + PROBE_GRACE)
    for endpoint_id in sorted(set(endpoint_ids)):
        result = await session.execute(
            sa.update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id == endpoint_id,
                WebhookEndpoint.circuit_open_until.is_not(None),
                WebhookEndpoint.circuit_open_until <= now,
            )
            .values(circuit_state=HALF_OPEN, circuit_open_until=hold_until)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0):
            admitted.add(endpoint_id)
    return admitted


# -- recording -------------------------------------------------------------------------------------


async def record(session: AsyncSession, results: Sequence[EndpointResults], now: datetime) -> None:
    """Fold one recorded batch into each endpoint's health (see the module contracts)."""
    if not results:
        return
    results = await _record_healthy_successes(session, results, now)
    if not results:
        return
    ids = sorted({r.endpoint_id for r in results})
    rows = {
        e.id: e
        for e in (
            await session.scalars(
                sa.select(WebhookEndpoint)
                .where(WebhookEndpoint.id.in_(ids))
                .order_by(WebhookEndpoint.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).all()
    }
    needs_config = {r.tenant_id for r in results if r.failed or r.gone_reason}
    configs = await webhook_config.effective_many(session, needs_config) if needs_config else {}
    for result in sorted(results, key=lambda r: r.endpoint_id):
        endpoint = rows.get(result.endpoint_id)
        if endpoint is None or endpoint.tenant_id != result.tenant_id:
            continue
        if result.gone_reason is not None:
            await _gone(session, endpoint, result, now)
        elif result.succeeded:
            await _succeeded(session, endpoint, now)
        elif result.failed:
            await _failed(session, endpoint, result.failed, configs[endpoint.tenant_id], now)
    await session.flush()


async def _record_healthy_successes(
    session: AsyncSession, results: Sequence[EndpointResults], now: datetime
) -> list[EndpointResults]:
    """The common case in one statement: a success of an endpoint already healthy (no failures
    counted, circuit closed, none in its window) only sets ``last_success_at``; no row is loaded.
    Returns the results that need the full path (failures, 410s, endpoints that were failing)."""
    candidates = {r.endpoint_id: r for r in results if r.succeeded and r.gone_reason is None}
    if not candidates:
        return list(results)
    e = WebhookEndpoint
    updated = await session.execute(
        sa.update(e)
        .where(
            sa.tuple_(e.id, e.tenant_id).in_(sorted((i, r.tenant_id) for i, r in candidates.items())),
            sa.func.coalesce(e.consecutive_failures, 0) == 0,
            e.failing_since.is_(None),
            sa.func.coalesce(e.circuit_state, CLOSED) == CLOSED,
            sa.func.coalesce(e.circuit_window_failures, 0) == 0,
        )
        .values(last_success_at=now)
        .returning(e.id)
        .execution_options(synchronize_session=False)
    )
    done = set(updated.scalars().all())
    return [r for r in results if r.endpoint_id not in done]


def _count_failures(endpoint: WebhookEndpoint, failed: int, now: datetime) -> None:
    endpoint.consecutive_failures = (endpoint.consecutive_failures or 0) + failed
    if endpoint.failing_since is None:
        endpoint.failing_since = now


async def _disable(
    session: AsyncSession, endpoint: WebhookEndpoint, reason: str, now: datetime, extra: dict[str, Any]
) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now
    audit.record(
        session,
        system_actor(endpoint.tenant_id),
        "endpoint.disabled",
        "endpoint",
        endpoint.id,
        {
            "enabled": {"old": True, "new": False},
            "disabledReason": {"old": None, "new": reason},
            **{name: {"old": None, "new": value} for name, value in extra.items()},
        },
    )
    await publish_disabled(
        session, endpoint, reason, endpoint.failing_since, endpoint.consecutive_failures, now
    )


async def _gone(
    session: AsyncSession, endpoint: WebhookEndpoint, result: EndpointResults, now: datetime
) -> None:
    _count_failures(endpoint, max(1, result.failed), now)
    if endpoint.enabled:
        reason = result.gone_reason or "the endpoint answered 410 Gone"
        await _disable(session, endpoint, reason, now, {"deliveryId": result.gone_delivery_id})


async def _succeeded(session: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> None:
    failures, since = endpoint.consecutive_failures or 0, endpoint.failing_since
    tripped = circuit_tripped(endpoint)
    endpoint.last_success_at = now
    endpoint.consecutive_failures = 0
    endpoint.failing_since = None
    if tripped:
        before = endpoint.circuit_state
        close_circuit(endpoint)
        audit.record(
            session,
            system_actor(endpoint.tenant_id),
            "endpoint.circuit_closed",
            "endpoint",
            endpoint.id,
            {
                "circuitState": {"old": before, "new": CLOSED},
                "consecutiveFailures": {"old": failures, "new": 0},
            },
        )
    elif endpoint.circuit_window_failures:
        endpoint.circuit_window_start = None
        endpoint.circuit_window_failures = 0
    if endpoint.enabled and (tripped or failures >= RECOVERY_MIN_FAILURES):
        reason = (
            "a probe delivery succeeded: the circuit is closed"
            if tripped
            else f"a delivery succeeded after {failures} failed attempts"
        )
        await publish_recovered(session, endpoint, reason, since, failures, None, now)


async def _failed(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    failed: int,
    cfg: webhook_config.EffectiveConfig,
    now: datetime,
) -> None:
    _count_failures(endpoint, failed, now)
    since = as_utc(endpoint.failing_since) if endpoint.failing_since is not None else now
    if endpoint.enabled and now - since >= timedelta(seconds=cfg.disable_after_seconds):
        reason = (
            f"no successful delivery for {_duration(cfg.disable_after_seconds)} "
            f"(failing since {since.isoformat()})"
        )
        await _disable(
            session,
            endpoint,
            reason,
            now,
            {"failingSince": since.isoformat(), "consecutiveFailures": endpoint.consecutive_failures},
        )
        return
    breaker = cfg.circuit_breaker
    state = endpoint.circuit_state or CLOSED
    if breaker is None:
        if state != CLOSED:
            close_circuit(endpoint)  # the tenant turned the breaker off
        return
    if state == HALF_OPEN or (
        state == OPEN
        and endpoint.circuit_open_until is not None
        and as_utc(endpoint.circuit_open_until) <= now
    ):
        _open_circuit(session, endpoint, breaker, now)  # the probe failed: open again, longer
        return
    if state == OPEN:
        return  # attempts that were in flight when it opened
    start = endpoint.circuit_window_start
    if start is None or now - as_utc(start) > timedelta(seconds=breaker.window_seconds):
        endpoint.circuit_window_start = now
        endpoint.circuit_window_failures = failed
    else:
        endpoint.circuit_window_failures = (endpoint.circuit_window_failures or 0) + failed
    if endpoint.circuit_window_failures >= breaker.failure_threshold:
        _open_circuit(session, endpoint, breaker, now)


# -- manual re-enable and the ping -----------------------------------------------------------------


@dataclass(frozen=True)
class HealthBefore:
    """An endpoint's state before a manual change, to report a recovery."""

    enabled: bool
    tripped: bool
    failing_since: datetime | None
    consecutive_failures: int
    disabled_at: datetime | None


def before_change(endpoint: WebhookEndpoint) -> HealthBefore:
    return HealthBefore(
        enabled=bool(endpoint.enabled),
        tripped=circuit_tripped(endpoint),
        failing_since=endpoint.failing_since,
        consecutive_failures=endpoint.consecutive_failures or 0,
        disabled_at=endpoint.disabled_at,
    )


async def enabled_manually(session: AsyncSession, endpoint: WebhookEndpoint, before: HealthBefore) -> None:
    """After :meth:`Endpoints.enable`: publish ``endpoint.recovered`` if it was disabled or tripped."""
    if before.enabled and not before.tripped:
        return
    await publish_recovered(
        session,
        endpoint,
        "enabled manually",
        before.failing_since,
        before.consecutive_failures,
        before.disabled_at,
        utcnow(),
    )


def default_test_payload(endpoint_id: str) -> dict[str, Any]:
    return {"message": "a test event from Interlink", "endpointId": endpoint_id}


async def send_test(
    session: AsyncSession, actor: Actor, endpoint_id: str, payload: dict[str, Any] | None = None
) -> ingest.IngestResult:
    """Write a ``webhook.test`` event with one delivery to the endpoint (see the module contracts).

    404 for an endpoint the tenant does not have (or deleted), 409 while it is disabled."""
    endpoint = await session.scalar(
        sa.select(WebhookEndpoint).where(
            WebhookEndpoint.tenant_id == actor.tenant_id, WebhookEndpoint.id == endpoint_id
        )
    )
    if endpoint is None or endpoint_service.is_deleted(endpoint):
        raise NotFound(f"endpoint {endpoint_id} not found")
    if not endpoint.enabled:
        raise Conflict(f"endpoint {endpoint_id} is disabled; enable it before sending a test event")
    spec = ingest.EventSpec(
        type=TEST_EVENT,
        payload=payload if payload is not None else default_test_payload(endpoint_id),
        endpoint_ids=[endpoint_id],
        immediate=True,
        bypass_subscription=True,
        source="test",
    )
    result = await ingest.ingest(session, actor, spec)
    if not result.deliveries:  # disabled meanwhile (the transaction rolls back)
        raise Conflict(f"endpoint {endpoint_id} is disabled; enable it before sending a test event")
    return result
