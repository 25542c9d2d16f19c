"""SDK resources for ``/v1/replays`` (blocking and asyncio).

``client.replays`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Answers are :class:`WebhookReplayInfo`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Any

from interlink.client._base import AsyncRequester, SyncRequester, body, parse, parse_page, query, segment
from interlink.client.models import Page
from interlink.core.enums import DeliveryStatus
from interlink.webhooks.replay_schemas import ReplaySkip, WebhookReplayInfo

__all__ = ["AsyncReplays", "ReplaySkip", "Replays", "WebhookReplayInfo"]


_Sync = SyncRequester
_Async = AsyncRequester


def _replay_body(
    request_id: str,
    delivery_id: str | None,
    event_id: str | None,
    endpoint_ids: Sequence[str] | None,
    endpoint_id: str | None,
    since: datetime | None,
    until: datetime | None,
    statuses: Sequence[DeliveryStatus | str] | None,
) -> dict[str, Any]:
    return body(
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


class Replays:
    """``/v1/replays``: send deliveries again, idempotently per ``request_id``, and read the records."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

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
        payload = _replay_body(
            request_id, delivery_id, event_id, endpoint_ids, endpoint_id, since, until, statuses
        )
        response = self._c._request("POST", "/v1/replays", json=payload, tenant_id=tenant_id, retry_safe=True)
        return parse(WebhookReplayInfo, response)

    def get(self, replay_id: str, *, tenant_id: str | None = None) -> WebhookReplayInfo:
        response = self._c._request("GET", f"/v1/replays/{segment(replay_id)}", tenant_id=tenant_id)
        return parse(WebhookReplayInfo, response)

    def list(
        self, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[WebhookReplayInfo]:
        """Replays, newest first."""
        params = query({"limit": limit, "after": after})
        response = self._c._request("GET", "/v1/replays", params=params, tenant_id=tenant_id)
        return parse_page(WebhookReplayInfo, response)

    def iter_all(self, *, page_size: int = 100, tenant_id: str | None = None) -> Iterator[WebhookReplayInfo]:
        """Every replay, newest first, fetching pages as needed."""
        after: str | None = None
        while True:
            page = self.list(limit=page_size, after=after, tenant_id=tenant_id)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor


class AsyncReplays:
    """``/v1/replays`` with ``await`` (same surface as :class:`Replays`)."""

    def __init__(self, client: _Async) -> None:
        self._c = client

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
        payload = _replay_body(
            request_id, delivery_id, event_id, endpoint_ids, endpoint_id, since, until, statuses
        )
        response = await self._c._request(
            "POST", "/v1/replays", json=payload, tenant_id=tenant_id, retry_safe=True
        )
        return parse(WebhookReplayInfo, response)

    async def get(self, replay_id: str, *, tenant_id: str | None = None) -> WebhookReplayInfo:
        response = await self._c._request("GET", f"/v1/replays/{segment(replay_id)}", tenant_id=tenant_id)
        return parse(WebhookReplayInfo, response)

    async def list(
        self, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[WebhookReplayInfo]:
        params = query({"limit": limit, "after": after})
        response = await self._c._request("GET", "/v1/replays", params=params, tenant_id=tenant_id)
        return parse_page(WebhookReplayInfo, response)

    async def iter_all(
        self, *, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[WebhookReplayInfo]:
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after, tenant_id=tenant_id)
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor
