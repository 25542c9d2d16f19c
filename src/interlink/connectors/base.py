"""The connector interface: what every connector (declarative or Python) offers.

A :class:`Connector` turns a provider's API into records of named resources. It never holds
credentials: every call goes through a :class:`ConnectorTransport` (an
:class:`~interlink.outbound.client.ApiClient`, or a connection's client that adds the connection's
credentials and base URL), so rate limits, retries, the circuit breaker and the request log apply.

Contracts for implementations:

* ``list_records`` returns one page. ``next_cursor`` is opaque to callers: :func:`encode_cursor`
  of the connector's own state (base64url JSON naming the connector and resource), ``None`` on
  the last page. A cursor that does not decode, or belongs to another connector or resource, is
  :class:`~interlink.core.errors.ValidationFailed` (422, field ``cursor``).
* ``since`` asks for records changed at or after a time (resources with ``incremental``); a
  resource without it refuses ``since`` (422, field ``since``).
* Unknown resources are :class:`UnknownResource` (404), operations a resource does not offer
  :class:`OperationNotAllowed` (405), provider answers that are not 2xx :class:`ProviderError`
  (502 with ``upstreamStatus``; an upstream 404 for one record is :class:`RecordNotFound`, 404).
"""

from __future__ import annotations

import base64
import binascii
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import Field

from interlink.core.context import current_correlation_id
from interlink.core.errors import InterlinkError, NotFound, ValidationFailed
from interlink.core.schemas import ApiModel, UtcDatetime
from interlink.outbound.request import ApiRequestBuilder, QueryValue
from interlink.outbound.response import ApiResponse, OutboundError

MAX_CURSOR_LENGTH = 4096


class ConnectorTransport(Protocol):
    """Sends one request for a connector (an ``ApiClient`` or a connection's client)."""

    async def request(
        self, builder: ApiRequestBuilder, *, correlation_id: str | None = None
    ) -> ApiResponse: ...


# -- errors ----------------------------------------------------------------------------------------------


class UnknownResource(NotFound):
    code = "unknown-resource"
    title = "Unknown resource"


class RecordNotFound(NotFound):
    pass


class OperationNotAllowed(InterlinkError):
    status = 405
    code = "operation-not-allowed"
    title = "Operation not allowed"


class ProviderError(InterlinkError):
    """The provider answered with an error, or did not answer (``upstreamStatus`` is then null)."""

    status = 502
    code = "provider-error"
    title = "Provider error"

    def __init__(
        self, detail: str, *, upstream_status: int | None, error_class: str | None, message: str | None = None
    ) -> None:
        super().__init__(
            detail,
            extra={"upstreamStatus": upstream_status, "errorClass": error_class, "providerMessage": message},
        )
        self.upstream_status = upstream_status


def read_answered(status: int, read: Callable[[], Record]) -> Record:
    """``read()`` of the record in a 2xx answer; a :class:`ProviderError` it raises (the answer has
    no usable record) carries ``status``: the provider did answer, and took the create or update."""
    try:
        return read()
    except ProviderError as exc:
        if exc.upstream_status is not None:
            raise
        raise ProviderError(
            exc.detail,
            upstream_status=status,
            error_class=exc.extra.get("errorClass"),
            message=exc.extra.get("providerMessage"),
        ) from None


# -- records ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its id at the provider, when it last changed (``None``: unknown), its data."""

    id: str
    updated_at: datetime | None
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordPage:
    records: list[Record]
    next_cursor: str | None = None
    truncated: bool = False
    """The listing stopped at the connector's page cap although the provider had more."""


# -- info (the guide's IntegrationConnectorInfo) ----------------------------------------------------------


class ConnectorResourceInfo(ApiModel):
    name: str
    description: str | None = None
    operations: list[str]
    pagination: str = Field(description="none, cursor, offset, page or link_header.")
    page_size: int | None = None
    incremental: bool = Field(description="Lists accept `since`.")
    incremental_field: str | None = Field(
        default=None, description="What `since` compares with at the provider (e.g. updatedAt, created)."
    )
    id_field: str
    updated_at_field: str | None = None


class ConnectorRateLimit(ApiModel):
    limit: int
    window_seconds: int | None = None
    scope: str
    description: str


class IntegrationConnectorInfo(ApiModel):
    """What a connector offers (``GET /v1/connectors``)."""

    key: str
    name: str
    description: str | None = None
    version: str
    kind: Literal["declarative", "python"]
    source: str = Field(description="builtin or custom (the operator's INTERLINK_CONNECTORS_FILE).")
    providers: list[str]
    resources: list[ConnectorResourceInfo]
    rate_limits: list[ConnectorRateLimit] = Field(default_factory=list)


ConnectorInfo = IntegrationConnectorInfo


class ConnectorList(ApiModel):
    data: list[IntegrationConnectorInfo]


class RecordOut(ApiModel):
    id: str
    updated_at: UtcDatetime | None = Field(
        default=None, description="When the record last changed at the provider (null: unknown)."
    )
    data: dict[str, Any]


class RecordList(ApiModel):
    data: list[RecordOut]
    has_more: bool
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page.")
    truncated: bool = Field(
        default=False,
        description="The listing stopped at the connector's page cap (`maxPages`) although the provider "
        "had more records: narrow it (`since`) or raise the cap.",
    )


# -- cursors ---------------------------------------------------------------------------------------------


def encode_cursor(connector: str, resource: str, state: Mapping[str, Any]) -> str:
    payload = {"k": connector, "r": resource, "s": dict(state)}
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, connector: str, resource: str) -> dict[str, Any]:
    """The state in ``cursor``; :class:`ValidationFailed` (field ``cursor``) when it is not ours."""
    bad = ValidationFailed(
        "cursor is not a nextCursor of this connector and resource (pass it back unchanged)", field="cursor"
    )
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if (
        not isinstance(payload, dict)
        or payload.get("k") != connector
        or payload.get("r") != resource
        or not isinstance(payload.get("s"), dict)
    ):
        raise bad
    state: dict[str, Any] = payload["s"]
    return state


def bad_cursor() -> ValidationFailed:
    return ValidationFailed("cursor holds an invalid state (pass nextCursor back unchanged)", field="cursor")


# -- helpers ---------------------------------------------------------------------------------------------


def dig(data: Any, path: str) -> Any:
    """The value at a dotted ``path`` (``""``: ``data`` itself); ``None`` when a step is missing."""
    if not path:
        return data
    current = data
    for step in path.split("."):
        if isinstance(current, dict):
            current = current.get(step)
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return None
    return current


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 text or Unix seconds (milliseconds above 10^12) as an aware UTC time, else ``None``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1000 if value > 1e12 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return parse_time(int(text))
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def record_id(value: Any, field: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise ProviderError(
            f"a record has no usable id at {field!r}", upstream_status=None, error_class="bad_answer"
        )
    return str(value)


def check_record_id(record_id: str) -> str:
    """A caller's record id: non-empty text without control characters or '/'."""
    if (
        not record_id
        or len(record_id) > 255
        or any(c in record_id for c in "/\r\n\x00")
        or record_id in (".", "..")
    ):
        raise ValidationFailed(
            "recordId must be 1-255 characters without '/' or control characters", field="recordId"
        )
    return record_id


def check_limit(limit: int | None, maximum: int) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= maximum:
        raise ValidationFailed(f"limit must be between 1 and {maximum}", field="limit")
    return limit


def raise_for_answer(response: ApiResponse, what: str, *, record: str | None = None) -> None:
    """:class:`RecordNotFound` for an upstream 404 on one record, :class:`ProviderError` for any non-2xx."""
    if response.ok:
        return
    if response.status == 404 and record is not None:
        raise RecordNotFound(f"{record} was not found at the provider")
    message = provider_message(response.data)
    raise ProviderError(
        f"the provider answered HTTP {response.status} to {what}" + (f": {message}" if message else ""),
        upstream_status=response.status,
        error_class=response.error_class,
        message=message,
    )


def provider_message(data: Any) -> str | None:
    """A short error message from common error bodies (``{"error": {"message": ...}}``, ...)."""
    candidates: list[Any] = []
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            candidates += [error.get("message"), error.get("title")]
        candidates += [error, data.get("message"), data.get("detail"), data.get("title")]
    elif isinstance(data, str):
        candidates.append(data)
    for item in candidates:
        if isinstance(item, str) and item.strip():
            return item.strip()[:500]
    return None


def transport_failure(exc: OutboundError, what: str) -> ProviderError:
    status = exc.response.status if exc.response is not None else None
    return ProviderError(
        f"{what} failed: {exc.message} ({exc.error_class})",
        upstream_status=status,
        error_class=exc.error_class,
    )


def flatten_form(data: Mapping[str, Any], prefix: str = "") -> dict[str, QueryValue]:
    """Nested data as form fields the way Stripe and Rails read them: ``metadata[plan]=pro``,
    ``items[0][price]=p_1``; booleans as ``true``/``false``; ``None`` as an empty value (which
    such APIs read as "unset")."""
    out: dict[str, QueryValue] = {}

    def walk(value: Any, name: str) -> None:
        if isinstance(value, Mapping):
            if not value and name:
                out[name] = ""
            for key, item in value.items():
                walk(item, f"{name}[{key}]" if name else str(key))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{name}[{index}]")
        elif value is None:
            out[name] = ""
        elif isinstance(value, (str, int, float, bool)):
            out[name] = value
        else:
            raise ValidationFailed(
                "form values must be text, numbers, booleans, objects or lists", field=name
            )

    walk(dict(data), prefix)
    return out


# -- the interface ---------------------------------------------------------------------------------------


class Connector(ABC):
    """A provider's records as resources (see the module doc for the contracts)."""

    key: str

    @abstractmethod
    def info(self) -> IntegrationConnectorInfo:
        """What this connector offers."""

    def resource_info(self, resource: str) -> ConnectorResourceInfo:
        """The resource's info, or :class:`UnknownResource`."""
        for item in self.info().resources:
            if item.name == resource:
                return item
        raise UnknownResource(f"connector {self.key!r} has no resource {resource!r}")

    def require(self, resource: str, operation: str) -> ConnectorResourceInfo:
        """The resource's info when it offers ``operation``; else 404 or 405."""
        item = self.resource_info(resource)
        if operation not in item.operations:
            raise OperationNotAllowed(
                f"resource {resource!r} of connector {self.key!r} does not support {operation} "
                f"(it supports {', '.join(item.operations)})",
                extra={"allowed": item.operations},
            )
        return item

    @abstractmethod
    async def list_records(
        self,
        transport: ConnectorTransport,
        resource: str,
        *,
        cursor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> RecordPage:
        """One page of records."""

    @abstractmethod
    async def get_record(self, transport: ConnectorTransport, resource: str, record_id: str) -> Record: ...

    @abstractmethod
    async def create_record(
        self, transport: ConnectorTransport, resource: str, data: Mapping[str, Any]
    ) -> Record: ...

    @abstractmethod
    async def update_record(
        self, transport: ConnectorTransport, resource: str, record_id: str, data: Mapping[str, Any]
    ) -> Record: ...

    @abstractmethod
    async def delete_record(self, transport: ConnectorTransport, resource: str, record_id: str) -> None: ...

    async def iter_records(
        self,
        transport: ConnectorTransport,
        resource: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Record]:
        """Every record, page by page (each connector caps the pages one listing walks)."""
        cursor: str | None = None
        while True:
            page = await self.list_records(transport, resource, cursor=cursor, since=since, limit=limit)
            for item in page.records:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


async def send(transport: ConnectorTransport, builder: ApiRequestBuilder, what: str) -> ApiResponse:
    """One call; a failure without an answer becomes :class:`ProviderError`."""
    try:
        return await transport.request(builder, correlation_id=current_correlation_id())
    except OutboundError as exc:
        raise transport_failure(exc, what) from exc
