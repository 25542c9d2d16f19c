"""SDK resources for ``/v1/inbound-sources`` (blocking and asyncio).

``client.inbound_sources`` on :class:`~interlink.client.InterlinkClient` and
:class:`~interlink.client.AsyncInterlinkClient`. Answers are :class:`InboundSourceInfo`,
:class:`InboundSourceCreated` (with the signing secret, shown once) and
:class:`InboundSourceSecret`. Mappings (``event_type``, ``dedupe``) are
``{"from": "body"|"header"|"fixed", "field": ..., "prefix": ...}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from interlink.client._base import (
    NOT_GIVEN,
    AsyncRequester,
    NotGiven,
    SyncRequester,
    body,
    parse,
    parse_page,
    query,
    segment,
)
from interlink.client.models import Page
from interlink.webhooks.inbound.schemas import InboundSourceCreated, InboundSourceInfo, InboundSourceSecret

__all__ = [
    "AsyncInboundSources",
    "InboundSourceCreated",
    "InboundSourceInfo",
    "InboundSourceSecret",
    "InboundSources",
]

PATH = "/v1/inbound-sources"


_Sync = SyncRequester
_Async = AsyncRequester


Opt = Any  # a value, None (reset to the default) or NOT_GIVEN (leave as is)


def _create_body(name: str, scheme: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    return body(
        {
            "name": name,
            "scheme": scheme,
            "connectionId": fields.get("connection_id"),
            "description": fields.get("description"),
            "schemeOptions": fields.get("scheme_options"),
            "secret": fields.get("secret"),
            "toleranceSeconds": fields.get("tolerance_seconds"),
            "ipAllowlist": list(fields["ip_allowlist"]) if fields.get("ip_allowlist") is not None else None,
            "maxBodyBytes": fields.get("max_body_bytes"),
            "eventType": fields.get("event_type"),
            "enabled": fields.get("enabled", True),
        },
        drop_none=True,
    ) | ({} if isinstance(fields.get("dedupe", NOT_GIVEN), NotGiven) else {"dedupe": fields["dedupe"]})


def _update_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    names = {
        "name": "name",
        "connection_id": "connectionId",
        "description": "description",
        "scheme_options": "schemeOptions",
        "tolerance_seconds": "toleranceSeconds",
        "ip_allowlist": "ipAllowlist",
        "max_body_bytes": "maxBodyBytes",
        "event_type": "eventType",
        "dedupe": "dedupe",
        "enabled": "enabled",
    }
    return body({names[k]: v for k, v in fields.items()}, drop_none=False)


class InboundSources:
    """``/v1/inbound-sources``: where providers post webhooks (``/v1/inbound/{id}``)."""

    def __init__(self, client: _Sync) -> None:
        self._c = client

    def create(
        self,
        name: str,
        scheme: str,
        *,
        secret: str | None = None,
        connection_id: str | None = None,
        description: str | None = None,
        scheme_options: Mapping[str, Any] | None = None,
        tolerance_seconds: int | None = None,
        ip_allowlist: Sequence[str] | None = None,
        max_body_bytes: int | None = None,
        event_type: Mapping[str, Any] | None = None,
        dedupe: Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        enabled: bool = True,
        tenant_id: str | None = None,
    ) -> InboundSourceCreated:
        """Create a source. ``secret`` is the one the provider issued (generated when absent); the
        answer's ``signing_secret`` is the only time it is shown. ``dedupe=None`` turns dedupe off."""
        payload = _create_body(
            name, scheme, {k: v for k, v in locals().items() if k not in ("self", "name", "scheme")}
        )
        return parse(InboundSourceCreated, self._c._request("POST", PATH, json=payload, tenant_id=tenant_id))

    def get(self, source_id: str, *, tenant_id: str | None = None) -> InboundSourceInfo:
        return parse(
            InboundSourceInfo, self._c._request("GET", f"{PATH}/{segment(source_id)}", tenant_id=tenant_id)
        )

    def list(
        self, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[InboundSourceInfo]:
        """Sources, newest first."""
        params = query({"limit": limit, "after": after})
        return parse_page(
            InboundSourceInfo, self._c._request("GET", PATH, params=params, tenant_id=tenant_id)
        )

    def iter_all(self, *, page_size: int = 100, tenant_id: str | None = None) -> Iterator[InboundSourceInfo]:
        after: str | None = None
        while True:
            page = self.list(limit=page_size, after=after, tenant_id=tenant_id)
            yield from page.data
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    def update(self, source_id: str, *, tenant_id: str | None = None, **fields: Opt) -> InboundSourceInfo:
        """Change fields (snake_case names of :meth:`create`; ``None`` resets one to its default)."""
        response = self._c._request(
            "PATCH", f"{PATH}/{segment(source_id)}", json=_update_body(fields), tenant_id=tenant_id
        )
        return parse(InboundSourceInfo, response)

    def rotate_secret(
        self,
        source_id: str,
        *,
        secret: str | None = None,
        overlap_seconds: int | None = None,
        tenant_id: str | None = None,
    ) -> InboundSourceSecret:
        """Add a secret (the provider's new one, or generated); older ones verify ``overlap_seconds`` more."""
        payload = body({"secret": secret, "overlapSeconds": overlap_seconds}, drop_none=True)
        response = self._c._request(
            "POST", f"{PATH}/{segment(source_id)}/secret/rotate", json=payload, tenant_id=tenant_id
        )
        return parse(InboundSourceSecret, response)

    def delete(self, source_id: str, *, tenant_id: str | None = None) -> None:
        self._c._request("DELETE", f"{PATH}/{segment(source_id)}", tenant_id=tenant_id)


class AsyncInboundSources:
    """``/v1/inbound-sources`` with ``await`` (same surface as :class:`InboundSources`)."""

    def __init__(self, client: _Async) -> None:
        self._c = client

    async def create(
        self,
        name: str,
        scheme: str,
        *,
        secret: str | None = None,
        connection_id: str | None = None,
        description: str | None = None,
        scheme_options: Mapping[str, Any] | None = None,
        tolerance_seconds: int | None = None,
        ip_allowlist: Sequence[str] | None = None,
        max_body_bytes: int | None = None,
        event_type: Mapping[str, Any] | None = None,
        dedupe: Mapping[str, Any] | NotGiven | None = NOT_GIVEN,
        enabled: bool = True,
        tenant_id: str | None = None,
    ) -> InboundSourceCreated:
        payload = _create_body(
            name, scheme, {k: v for k, v in locals().items() if k not in ("self", "name", "scheme")}
        )
        response = await self._c._request("POST", PATH, json=payload, tenant_id=tenant_id)
        return parse(InboundSourceCreated, response)

    async def get(self, source_id: str, *, tenant_id: str | None = None) -> InboundSourceInfo:
        response = await self._c._request("GET", f"{PATH}/{segment(source_id)}", tenant_id=tenant_id)
        return parse(InboundSourceInfo, response)

    async def list(
        self, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[InboundSourceInfo]:
        params = query({"limit": limit, "after": after})
        return parse_page(
            InboundSourceInfo, await self._c._request("GET", PATH, params=params, tenant_id=tenant_id)
        )

    async def iter_all(
        self, *, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[InboundSourceInfo]:
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, after=after, tenant_id=tenant_id)
            for item in page.data:
                yield item
            if not page.has_more or not page.next_cursor:
                return
            after = page.next_cursor

    async def update(
        self, source_id: str, *, tenant_id: str | None = None, **fields: Opt
    ) -> InboundSourceInfo:
        response = await self._c._request(
            "PATCH", f"{PATH}/{segment(source_id)}", json=_update_body(fields), tenant_id=tenant_id
        )
        return parse(InboundSourceInfo, response)

    async def rotate_secret(
        self,
        source_id: str,
        *,
        secret: str | None = None,
        overlap_seconds: int | None = None,
        tenant_id: str | None = None,
    ) -> InboundSourceSecret:
        payload = body({"secret": secret, "overlapSeconds": overlap_seconds}, drop_none=True)
        response = await self._c._request(
            "POST", f"{PATH}/{segment(source_id)}/secret/rotate", json=payload, tenant_id=tenant_id
        )
        return parse(InboundSourceSecret, response)

    async def delete(self, source_id: str, *, tenant_id: str | None = None) -> None:
        await self._c._request("DELETE", f"{PATH}/{segment(source_id)}", tenant_id=tenant_id)
