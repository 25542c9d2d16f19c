"""Operational events: what Interlink itself reports to a tenant's endpoints.

``endpoint.disabled``/``endpoint.recovered`` (endpoint health), ``connection.expired``/
``connection.error`` (token refresh) and ``connection.unhealthy``/``connection.recovered``
(connection health) go only to the tenant's enabled endpoints that list the type **explicitly**
(an endpoint subscribed to every type does not get them), are written through
:func:`interlink.webhooks.ingest.ingest_batch` in the caller's transaction (so the event exists
exactly when the state change it reports commits), with HIGH priority and source ``system``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.actor import system_actor
from interlink.core.errors import ValidationFailed
from interlink.webhooks import ingest
from interlink.webhooks.models import WebhookEndpoint

log = structlog.get_logger(__name__)


async def explicit_subscribers(
    session: AsyncSession, tenant_id: str, event_type: str, *, exclude: str | None = None
) -> list[str]:
    """Enabled, not deleted endpoints of the tenant that list ``event_type`` explicitly (sorted
    ids), leaving out ``exclude`` (the endpoint an event is about)."""
    query = sa.select(WebhookEndpoint.id, WebhookEndpoint.event_types).where(
        WebhookEndpoint.tenant_id == tenant_id,
        WebhookEndpoint.enabled.is_(True),
        WebhookEndpoint.deleted_at.is_(None),
    )
    if exclude is not None:
        query = query.where(WebhookEndpoint.id != exclude)
    rows = await session.execute(query)
    return sorted(endpoint_id for endpoint_id, types in rows.all() if event_type in (types or []))


async def publish(
    session: AsyncSession,
    tenant_id: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    exclude: str | None = None,
) -> str | None:
    """Write ``event_type`` for its explicit subscribers; the event id, or None when nobody listens.

    A payload the tenant's own schema for the type refuses is logged and skipped: it must not undo
    the state change it reports."""
    recipients = await explicit_subscribers(session, tenant_id, event_type, exclude=exclude)
    if not recipients:
        return None
    spec = ingest.EventSpec(
        type=event_type,
        payload=payload,
        endpoint_ids=recipients,
        priority=ingest.Priority.HIGH,
        source="system",
    )
    try:
        [result] = await ingest.ingest_batch(session, system_actor(tenant_id), [spec])
    except ValidationFailed as exc:
        log.warning("operational_event_refused", tenant_id=tenant_id, type=event_type, error=exc.detail)
        return None
    return result.event.id
