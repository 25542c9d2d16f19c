"""Security audit events (ApiSecurityAuditEvent) and their risk score.

Risk score, 0 to 100 (higher is worse), the sum of:

* a base for the event type (:data:`BASE_RISK`): routine lifecycle acts score low, use of a
  revoked key scores highest;
* +25 when the source IP is *new* for the key: no earlier security event from that IP for that key
  within ``security_new_ip_window_days`` and it is not the key's last-used IP (for an unknown key:
  no earlier event from that IP at all). Only applied to failures;
* +25 when the source IP has caused 5 or more failures in the last 10 minutes, counting this one
  (a burst: the fifth failure and every later one in the window). Only applied to failures;

capped at 100. A score of 70 or more should page someone; 40 to 69 deserves a look.

Rate-limited events are kept to one per key per minute per process (by the service clock), so a
client hammering a limited key cannot flood the table. Likewise failures that cannot be tied to a
key (missing, malformed or unknown keys) are written at most
:data:`UNATTRIBUTED_EVENTS_PER_MINUTE` times per source (IPv4 address or IPv6 /64) and
:data:`UNATTRIBUTED_EVENTS_PER_MINUTE_TOTAL` times in all per minute per process; the rest are
only counted in the ``interlink_security_events_dropped_total`` metric. A scanner sending garbage
keys therefore costs a bounded number of writes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.clock import utcnow
from interlink.core.context import current_correlation_id
from interlink.core.db import Database
from interlink.core.ids import new_id
from interlink.core.pagination import Page, PageRequest, make_page, paginate_query
from interlink.keys.models import ApiKey, SecurityEvent

log = structlog.get_logger(__name__)


class SecurityEventType(StrEnum):
    KEY_CREATED = "key.created"
    KEY_ROTATED = "key.rotated"
    KEY_REVOKED = "key.revoked"
    KEY_UPDATED = "key.updated"
    AUTH_FAILED = "auth.failed"
    EXPIRED_KEY_USED = "key.expired_used"
    REVOKED_KEY_USED = "key.revoked_used"
    IP_DENIED = "auth.ip_denied"
    RATE_LIMITED = "auth.rate_limited"
    INSUFFICIENT_SCOPE = "auth.insufficient_scope"
    INBOUND_REJECTED = "inbound.rejected"


BASE_RISK: dict[SecurityEventType, int] = {
    SecurityEventType.KEY_CREATED: 10,
    SecurityEventType.KEY_ROTATED: 5,
    SecurityEventType.KEY_REVOKED: 10,
    SecurityEventType.KEY_UPDATED: 10,
    SecurityEventType.AUTH_FAILED: 30,
    SecurityEventType.EXPIRED_KEY_USED: 40,
    SecurityEventType.REVOKED_KEY_USED: 60,
    SecurityEventType.IP_DENIED: 50,
    SecurityEventType.RATE_LIMITED: 20,
    SecurityEventType.INSUFFICIENT_SCOPE: 35,
    SecurityEventType.INBOUND_REJECTED: 30,
}
FAILURE_TYPES = frozenset(
    {
        SecurityEventType.AUTH_FAILED,
        SecurityEventType.EXPIRED_KEY_USED,
        SecurityEventType.REVOKED_KEY_USED,
        SecurityEventType.IP_DENIED,
        SecurityEventType.RATE_LIMITED,
        SecurityEventType.INSUFFICIENT_SCOPE,
        SecurityEventType.INBOUND_REJECTED,
    }
)
NEW_IP_RISK = 25
BURST_RISK = 25
BURST_FAILURES = 5
BURST_WINDOW = timedelta(minutes=10)
RATE_LIMIT_EVENT_INTERVAL = 60.0


@dataclass(frozen=True)
class SecurityContext:
    """Where a security-relevant request came from."""

    source_ip: str | None = None
    user_agent: str | None = None
    correlation_id: str | None = None


async def risk_score(
    session: AsyncSession,
    event_type: SecurityEventType,
    key_id: str | None,
    source_ip: str | None,
    new_ip_window: timedelta,
) -> tuple[int, dict[str, bool]]:
    """The documented score and the factors that raised it."""
    score = BASE_RISK[event_type]
    factors = {"newIp": False, "burst": False}
    if event_type in FAILURE_TYPES and source_ip:
        now = utcnow()
        seen = sa.select(SecurityEvent.id).where(SecurityEvent.source_ip == source_ip)
        if key_id:
            seen = seen.where(
                SecurityEvent.key_id == key_id, SecurityEvent.occurred_at >= now - new_ip_window
            )
            last_ip = await session.scalar(sa.select(ApiKey.last_used_ip).where(ApiKey.id == key_id))
        else:
            last_ip = None
        if last_ip != source_ip and (await session.scalar(seen.limit(1))) is None:
            score += NEW_IP_RISK
            factors["newIp"] = True
        failures = await session.scalar(
            sa.select(sa.func.count())
            .select_from(SecurityEvent)
            .where(
                SecurityEvent.source_ip == source_ip,
                SecurityEvent.occurred_at >= now - BURST_WINDOW,
                SecurityEvent.event_type.in_([t.value for t in FAILURE_TYPES]),
            )
        )
        if (failures or 0) + 1 >= BURST_FAILURES:
            score += BURST_RISK
            factors["burst"] = True
    return min(score, 100), factors


async def add_event(
    session: AsyncSession,
    event_type: SecurityEventType,
    *,
    tenant_id: str | None,
    key_id: str | None,
    key_prefix: str | None,
    context: SecurityContext,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    new_ip_window: timedelta = timedelta(days=30),
) -> SecurityEvent:
    """Score and add a security event to ``session`` (committed with it)."""
    score, factors = await risk_score(session, event_type, key_id, context.source_ip, new_ip_window)
    event = SecurityEvent(
        id=new_id("sev"),
        tenant_id=tenant_id,
        key_id=key_id,
        key_prefix=key_prefix,
        event_type=event_type.value,
        reason=reason,
        source_ip=context.source_ip,
        user_agent=(context.user_agent or "")[:400] or None,
        correlation_id=context.correlation_id or current_correlation_id(),
        risk_score=score,
        details={**(details or {}), "riskFactors": factors},
        occurred_at=utcnow(),
    )
    session.add(event)
    return event


UNATTRIBUTED_EVENTS_PER_MINUTE = 10
UNATTRIBUTED_EVENTS_PER_MINUTE_TOTAL = 300


def _source_bucket(source_ip: str | None) -> str:
    """An IPv4 address, or the /64 of an IPv6 address (one client can hold a whole /64)."""
    if not source_ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return source_ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return source_ip


DROPPED_EVENTS = Counter(
    "interlink_security_events_dropped_total",
    "Security events not written because of the per-key or per-IP write limits",
    ["event_type"],
)


class SecurityLog:
    """Writes failure events in their own transaction (there is no request transaction to join)."""

    def __init__(self, db: Database, new_ip_window_days: int) -> None:
        self.db = db
        self.new_ip_window = timedelta(days=new_ip_window_days)
        self._last_rate_limited: dict[str, float] = {}
        self._unattributed: dict[str, int] = {}
        self._unattributed_window = 0.0
        self._unattributed_total = 0

    def _allow_unattributed(self, source_ip: str | None) -> bool:
        """At most UNATTRIBUTED_EVENTS_PER_MINUTE writes per source (an IPv4 address or an IPv6
        /64) and UNATTRIBUTED_EVENTS_PER_MINUTE_TOTAL in all, per minute and process."""
        now = utcnow().timestamp()
        if now - self._unattributed_window >= 60 or now < self._unattributed_window:
            self._unattributed_window, self._unattributed_total = now, 0
            self._unattributed.clear()
        if self._unattributed_total >= UNATTRIBUTED_EVENTS_PER_MINUTE_TOTAL:
            return False
        source = _source_bucket(source_ip)
        count = self._unattributed.get(source, 0)
        if count >= UNATTRIBUTED_EVENTS_PER_MINUTE:
            return False
        self._unattributed[source] = count + 1
        self._unattributed_total += 1
        return True

    async def failure(
        self,
        event_type: SecurityEventType,
        *,
        tenant_id: str | None,
        key_id: str | None,
        key_prefix: str | None,
        context: SecurityContext,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a failed use. Rate-limit events are kept to one per key per minute per process."""
        if event_type is SecurityEventType.RATE_LIMITED and key_id:
            now = utcnow().timestamp()
            last = self._last_rate_limited.get(key_id)
            if last is not None and 0 <= now - last < RATE_LIMIT_EVENT_INTERVAL:
                DROPPED_EVENTS.labels(event_type.value).inc()
                return
            if len(self._last_rate_limited) >= 10_000:
                self._last_rate_limited.clear()
            self._last_rate_limited[key_id] = now
        if key_id is None and not self._allow_unattributed(context.source_ip):
            DROPPED_EVENTS.labels(event_type.value).inc()
            return
        try:
            async with self.db.unit_of_work() as session:
                await add_event(
                    session,
                    event_type,
                    tenant_id=tenant_id,
                    key_id=key_id,
                    key_prefix=key_prefix,
                    context=context,
                    reason=reason,
                    details=details,
                    new_ip_window=self.new_ip_window,
                )
        except Exception as exc:  # never turn a 401 into a 500 because the log write failed
            log.warning("security_event_write_failed", error=str(exc), event_type=event_type.value)


@dataclass(frozen=True)
class SecurityEventFilter:
    event_type: str | None = None
    key_id: str | None = None
    source_ip: str | None = None
    min_risk: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    include_unattributed: bool = False


async def list_events(
    session: AsyncSession, tenant_id: str, flt: SecurityEventFilter, page: PageRequest
) -> Page[SecurityEvent]:
    """Security events of one tenant, newest first (plus tenant-less ones for platform callers)."""
    if flt.include_unattributed:
        stmt = sa.select(SecurityEvent).where(
            sa.or_(SecurityEvent.tenant_id == tenant_id, SecurityEvent.tenant_id.is_(None))
        )
    else:
        stmt = sa.select(SecurityEvent).where(SecurityEvent.tenant_id == tenant_id)
    if flt.event_type:
        stmt = stmt.where(SecurityEvent.event_type == flt.event_type)
    if flt.key_id:
        stmt = stmt.where(SecurityEvent.key_id == flt.key_id)
    if flt.source_ip:
        stmt = stmt.where(SecurityEvent.source_ip == flt.source_ip)
    if flt.min_risk is not None:
        stmt = stmt.where(SecurityEvent.risk_score >= flt.min_risk)
    if flt.since:
        stmt = stmt.where(SecurityEvent.occurred_at >= flt.since)
    if flt.until:
        stmt = stmt.where(SecurityEvent.occurred_at < flt.until)
    rows = (await session.scalars(paginate_query(stmt, SecurityEvent.id, page))).all()
    return make_page(rows, page, lambda e: e.id)
