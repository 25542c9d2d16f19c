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
    AsyncResource,
    NotGiven,
    SyncResource,
    apaginate,
    body,
    call,
    camel,
    empty_call,
    item_path,
    page_call,
    paginate,
    query,
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


_UPDATE_NAMES = {
    name: camel(name)
    for name in (
        "name",
        "connection_id",
        "description",
        "scheme_options",
        "tolerance_seconds",
        "ip_allowlist",
        "max_body_bytes",
        "event_type",
        "dedupe",
        "enabled",
    )
}


def _update_body(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The PATCH body; unknown names raise ``TypeError`` as a wrong keyword would (the scheme and
    the secret are not fields: create a new source, or use ``rotate_secret``)."""
    unknown = set(fields) - set(_UPDATE_NAMES)
    if unknown:
        raise TypeError(f"update() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    return body({_UPDATE_NAMES[k]: v for k, v in fields.items()}, drop_none=False)


class InboundSources(SyncResource):
    """``/v1/inbound-sources``: where providers post webhooks (``/v1/inbound/{id}``)."""

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
        fields = {k: v for k, v in locals().items() if k not in ("self", "name", "scheme")}
        payload = _create_body(name, scheme, fields)
        return self._send(call(InboundSourceCreated, "POST", PATH, json=payload, tenant_id=tenant_id))

    def get(self, source_id: str, *, tenant_id: str | None = None) -> InboundSourceInfo:
        return self._send(call(InboundSourceInfo, "GET", item_path(PATH, source_id), tenant_id=tenant_id))

    def list(
        self, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[InboundSourceInfo]:
        """Sources, newest first."""
        return self._send(
            page_call(InboundSourceInfo, PATH, query({"limit": limit, "after": after}), tenant_id)
        )

    def iter_all(self, *, page_size: int = 100, tenant_id: str | None = None) -> Iterator[InboundSourceInfo]:
        """Every source, newest first, fetching pages as needed."""
        return paginate(lambda after: self.list(limit=page_size, after=after, tenant_id=tenant_id))

    def update(self, source_id: str, *, tenant_id: str | None = None, **fields: Opt) -> InboundSourceInfo:
        """Change fields (snake_case names of :meth:`create`; ``None`` resets one to its default)."""
        payload = _update_body(fields)
        return self._send(
            call(InboundSourceInfo, "PATCH", item_path(PATH, source_id), json=payload, tenant_id=tenant_id)
        )

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
        path = item_path(PATH, source_id, "/secret/rotate")
        return self._send(call(InboundSourceSecret, "POST", path, json=payload, tenant_id=tenant_id))

    def delete(self, source_id: str, *, tenant_id: str | None = None) -> None:
        self._send(empty_call("DELETE", item_path(PATH, source_id), tenant_id))


class AsyncInboundSources(AsyncResource):
    """``/v1/inbound-sources`` with ``await`` (same surface as :class:`InboundSources`)."""

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
        """As :meth:`InboundSources.create`, awaited."""
        fields = {k: v for k, v in locals().items() if k not in ("self", "name", "scheme")}
        payload = _create_body(name, scheme, fields)
        return await self._send(call(InboundSourceCreated, "POST", PATH, json=payload, tenant_id=tenant_id))

    async def get(self, source_id: str, *, tenant_id: str | None = None) -> InboundSourceInfo:
        return await self._send(
            call(InboundSourceInfo, "GET", item_path(PATH, source_id), tenant_id=tenant_id)
        )

    async def list(
        self, *, limit: int = 50, after: str | None = None, tenant_id: str | None = None
    ) -> Page[InboundSourceInfo]:
        """Sources, newest first."""
        return await self._send(
            page_call(InboundSourceInfo, PATH, query({"limit": limit, "after": after}), tenant_id)
        )

    def iter_all(
        self, *, page_size: int = 100, tenant_id: str | None = None
    ) -> AsyncIterator[InboundSourceInfo]:
        """Every source, newest first, fetching pages as needed (``async for``)."""
        return apaginate(lambda after: self.list(limit=page_size, after=after, tenant_id=tenant_id))

    async def update(
        self, source_id: str, *, tenant_id: str | None = None, **fields: Opt
    ) -> InboundSourceInfo:
        """Change fields (snake_case names of :meth:`create`; ``None`` resets one to its default)."""
        payload = _update_body(fields)
        return await self._send(
            call(InboundSourceInfo, "PATCH", item_path(PATH, source_id), json=payload, tenant_id=tenant_id)
        )

    async def rotate_secret(
        self,
        source_id: str,
        *,
        secret: str | None = None,
        overlap_seconds: int | None = None,
        tenant_id: str | None = None,
    ) -> InboundSourceSecret:
        """Add a secret (the provider's new one, or generated); older ones verify ``overlap_seconds`` more."""
        payload = body({"secret": secret, "overlapSeconds": overlap_seconds}, drop_none=True)
        path = item_path(PATH, source_id, "/secret/rotate")
        return await self._send(call(InboundSourceSecret, "POST", path, json=payload, tenant_id=tenant_id))

    async def delete(self, source_id: str, *, tenant_id: str | None = None) -> None:
        await self._send(empty_call("DELETE", item_path(PATH, source_id), tenant_id))
