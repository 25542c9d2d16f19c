"""SDK resources for ``/v1/replays`` (blocking and asyncio).

``client.replays`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Answers are :class:`WebhookReplayInfo`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime

from interlink.client._base import (
    AsyncResource,
    Call,
    SyncResource,
    apaginate,
    body,
    call,
    item_path,
    page_call,
    paginate,
    query,
)
from interlink.client.models import Page
from interlink.core.enums import DeliveryStatus
from interlink.webhooks.replay_schemas import ReplaySkip, WebhookReplayInfo

__all__ = ["AsyncReplays", "ReplaySkip", "Replays", "WebhookReplayInfo"]

PATH = "/v1/replays"


def _create_call(
    request_id: str,
    delivery_id: str | None,
    event_id: str | None,
    endpoint_ids: Sequence[str] | None,
    endpoint_id: str | None,
    since: datetime | None,
    until: datetime | None,
    statuses: Sequence[DeliveryStatus | str] | None,
    tenant_id: str | None,
) -> Call[WebhookReplayInfo]:
    """Create a replay; idempotent per ``request_id``, so re-sending is safe."""
    payload = body(
        {
            "requestId": request_id,
            "deliveryId": delivery_id,
            "eventId": event_id,
            "endpointIds": list(endpoint_ids) if endpoint_ids is not None else None,
            "endpointId": endpoint_id,
            "since": since,
            "until": until,
            "statuses": list(statuses) if statuses is not None else None,
        },
        drop_none=True,
    )
    return call(WebhookReplayInfo, "POST", PATH, json=payload, tenant_id=tenant_id, retry_safe=True)


class Replays(SyncResource):
    """``/v1/replays``: send deliveries again, idempotently per ``request_id``, and read the records."""

    def create(
        self,
        request_id: str,
        *,
        delivery_id: str | None = None,
        event_id: str | None = None,
        endpoint_ids: Sequence[str] | None = None,
        endpoint_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        statuses: Sequence[DeliveryStatus | str] | None = None,
        tenant_id: str | None = None,
    ) -> WebhookReplayInfo:
        """Replay one delivery (``delivery_id``), one event (``event_id``, optionally only to
        ``endpoint_ids``) or an endpoint's deliveries in ``statuses`` (default FAILED) whose events
        were created in ``[since, until)`` (``endpoint_id``).

        The same ``request_id`` again returns the first replay (``created=False``) and sends
        nothing; with a different request it raises ConflictError, as does a disabled endpoint or
        a payload purged by retention.
        """
        return self._send(_create_call(
            request_id, delivery_id, event_id, endpoint_ids, endpoint_id, since, until, statuses, tenant_id
        ))  # fmt: skip

    def get(self, replay_id: str, *, tenant_id: str | None = None) -> WebhookReplayInfo:
        return self._send(call(WebhookReplayInfo, "GET", item_path(PATH, replay_id), tenant_id=tenant_id))

    def list(
        self, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[WebhookReplayInfo]:
        """Replays, newest first."""
        return self._send(
            page_call(WebhookReplayInfo, PATH, query({"limit": limit, "after": after}), tenant_id)
        )

    def iter_all(self, *, page_size: int = 100, tenant_id: str | None = None) -> Iterator[WebhookReplayInfo]:
        """Every replay, newest first, fetching pages as needed."""
        return paginate(lambda after: self.list(limit=page_size, after=after, tenant_id=tenant_id))


class AsyncReplays(AsyncResource):
    """``/v1/replays`` with ``await`` (same surface as :class:`Replays`)."""

    async def create(
        self,
        request_id: str,
        *,
        delivery_id: str | None = None,
        event_id: str | None = None,
        endpoint_ids: Sequence[str] | None = None,
        endpoint_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        statuses: Sequence[DeliveryStatus | str] | None = None,
        tenant_id: str | None = None,
    ) -> WebhookReplayInfo:
        """As :meth:`Replays.create`, awaited."""
        return await self._send(_create_call(
            request_id, delivery_id, event_id, endpoint_ids, endpoint_id, since, until, statuses, tenant_id
        ))  # fmt: skip

    async def get(self, replay_id: str, *, tenant_id: str | None = None) -> WebhookReplayInfo:
        return await self._send(
            call(WebhookReplayInfo, "GET", item_path(PATH, replay_id), tenant_id=tenant_id)
        )

    async def list(
        self, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[WebhookReplayInfo]:
        """Replays, newest first."""
        return await self._send(
            page_call(WebhookReplayInfo, PATH, query({"limit": limit, "after": after}), tenant_id)
        )

    def iter_all(
        self, *, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[WebhookReplayInfo]:
        """Every replay, newest first, fetching pages as needed (``async for``)."""
        return apaginate(lambda after: self.list(limit=page_size, after=after, tenant_id=tenant_id))
