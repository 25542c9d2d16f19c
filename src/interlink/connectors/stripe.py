"""The Stripe connector: a Python class, because Stripe's API needs code a spec cannot express.

* **Bodies** are form-encoded with nested brackets (``metadata[plan]=pro``,
  ``lines[0][amount]=100``; :func:`~interlink.connectors.base.flatten_form`); ``None`` sends an
  empty value, which Stripe reads as "unset". Updates are ``POST /v1/<resource>/<id>``.
* **Pagination** is ``limit`` (at most 100) plus ``starting_after`` = the last record's id while
  the answer says ``has_more``. The cursor state is ``{a: last id}`` with the page size ``z``,
  the pages walked ``n`` and the ``since`` filter ``t``.
* **Incremental.** Stripe objects have no "updated" time, only ``created``: ``since`` filters on
  ``created[gte]`` (Unix seconds), so a listing with ``since`` finds new records, not changed
  ones; :attr:`Record.updated_at` is ``None``. For changes, list ``events`` with ``since``
  (every change is an event; its ``data.object`` is the object after the change).
* **Idempotency.** Creates and updates carry an ``Idempotency-Key``, so the outbound client may
  retry them after a network error or a 5xx without creating two objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from interlink.connectors.base import (
    Connector,
    ConnectorRateLimit,
    ConnectorResourceInfo,
    ConnectorTransport,
    IntegrationConnectorInfo,
    ProviderError,
    Record,
    RecordNotFound,
    RecordPage,
    bad_cursor,
    check_limit,
    check_record_id,
    decode_cursor,
    encode_cursor,
    flatten_form,
    raise_for_answer,
    read_answered,
    record_id,
    send,
)
from interlink.connectors.rest import check_since
from interlink.core.errors import ValidationFailed
from interlink.outbound.request import ApiEndpointConfig, ApiRequestBuilder, QueryValue

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
MAX_PAGES = 10_000
ALL = ("list", "get", "create", "update", "delete")


@dataclass(frozen=True)
class _Resource:
    name: str
    path: str
    operations: tuple[str, ...]
    description: str
    incremental: bool = True


RESOURCES = (
    _Resource("customers", "/v1/customers", ALL, "Customers (delete removes the customer)."),
    _Resource(
        "invoices", "/v1/invoices", ALL, "Invoices; create collects the customer's pending invoice items."
    ),
    _Resource(
        "invoiceitems", "/v1/invoiceitems", ALL, "Invoice items (pending until an invoice collects them)."
    ),
    _Resource("products", "/v1/products", ALL, "Products."),
    _Resource("charges", "/v1/charges", ("list", "get"), "Charges (read-only here).", incremental=False),
    _Resource("events", "/v1/events", ("list", "get"), "Events: every change, with the object after it."),
)
_BY_NAME = {r.name: r for r in RESOURCES}


class StripeConnector(Connector):
    """Stripe's customers, invoices, invoice items, products, charges and events."""

    key = "stripe"

    def __init__(self, *, source: str = "builtin") -> None:
        self._info = IntegrationConnectorInfo(
            key=self.key,
            name="Stripe",
            description="Stripe customers, invoices, invoice items, products, charges and events "
            "(form-encoded bodies, starting_after pagination, created[gte] as the incremental filter).",
            version="1",
            kind="python",
            source=source,
            providers=["stripe"],
            resources=[
                ConnectorResourceInfo(
                    name=r.name,
                    description=r.description,
                    operations=list(r.operations),
                    pagination="cursor",
                    page_size=PAGE_SIZE,
                    incremental=r.incremental,
                    incremental_field="created" if r.incremental else None,
                    id_field="id",
                    updated_at_field=None,
                )
                for r in RESOURCES
            ],
            rate_limits=[
                ConnectorRateLimit(
                    limit=100, window_seconds=1, scope="account", description="Live mode, all endpoints."
                ),
                ConnectorRateLimit(
                    limit=25, window_seconds=1, scope="account", description="Test mode (sandbox)."
                ),
            ],
        )

    def info(self) -> IntegrationConnectorInfo:
        return self._info

    def _spec(self, resource: str, operation: str) -> _Resource:
        self.require(resource, operation)
        return _BY_NAME[resource]

    def _endpoint(self, spec: _Resource, operation: str, path: str, method: str) -> ApiEndpointConfig:
        return ApiEndpointConfig(path=path, method=method, name=f"stripe.{spec.name}.{operation}")

    @staticmethod
    def _record(spec: _Resource, item: Any) -> Record:
        if not isinstance(item, dict):
            raise ProviderError(
                f"a {spec.name} record is not an object", upstream_status=None, error_class="bad_answer"
            )
        return Record(id=record_id(item.get("id"), "id"), updated_at=None, data=item)

    @staticmethod
    def _form(data: Mapping[str, Any]) -> dict[str, QueryValue]:
        if not isinstance(data, Mapping):
            raise ValidationFailed("the record must be a JSON object", field="body")
        return flatten_form(data)

    async def list_records(
        self,
        transport: ConnectorTransport,
        resource: str,
        *,
        cursor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> RecordPage:
        spec = self._spec(resource, "list")
        check_since(since)
        if since is not None and not spec.incremental:
            raise ValidationFailed(f"resource {resource!r} does not support since", field="since")
        check_limit(limit, MAX_PAGE_SIZE)
        size: Any = limit or PAGE_SIZE
        walked: Any = 0
        after: str | None = None
        created: int | None = int(since.astimezone(UTC).timestamp()) if since is not None else None
        if cursor is not None:
            state = decode_cursor(cursor, self.key, resource)
            size, walked, after, since_value = state.get("z"), state.get("n"), state.get("a"), state.get("t")
            if not (
                isinstance(size, int)
                and 1 <= size <= MAX_PAGE_SIZE
                and isinstance(walked, int)
                and isinstance(after, str)
                and after
                and (
                    since_value is None
                    or (isinstance(since_value, int) and not isinstance(since_value, bool))
                )
            ):
                raise bad_cursor()
            if created is not None and created != since_value:
                raise ValidationFailed(
                    "since must not change between the pages of one listing", field="since"
                )
            created = since_value
        query: dict[str, QueryValue] = {"limit": size, "starting_after": after}
        if created is not None:
            query["created[gte]"] = created
        builder = ApiRequestBuilder(self._endpoint(spec, "list", spec.path, "GET"), query=query)
        response = await send(transport, builder, f"listing {resource}")
        raise_for_answer(response, f"listing {resource}")
        body = response.data
        items = body.get("data") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ProviderError(
                "the list answer has no data list", upstream_status=response.status, error_class="bad_answer"
            )
        records = [self._record(spec, item) for item in items]
        walked += 1
        if body.get("has_more") is not True or not records:
            return RecordPage(records, None)
        if walked >= MAX_PAGES:
            return RecordPage(records, None, truncated=True)
        state = {"a": records[-1].id, "z": size, "n": walked, "t": created}
        return RecordPage(records, encode_cursor(self.key, resource, state))

    async def get_record(self, transport: ConnectorTransport, resource: str, record_id: str) -> Record:
        spec = self._spec(resource, "get")
        endpoint = self._endpoint(spec, "get", spec.path + "/{id}", "GET")
        builder = ApiRequestBuilder(endpoint, parameters={"id": check_record_id(record_id)})
        response = await send(transport, builder, f"reading {resource} {record_id}")
        raise_for_answer(response, f"reading {resource} {record_id}", record=f"{resource} {record_id!r}")
        if isinstance(response.data, dict) and response.data.get("deleted") is True:
            # Stripe answers 200 with {"deleted": true} for a deleted customer: a 404 here.
            raise RecordNotFound(f"{resource} {record_id!r} was deleted at the provider")
        return self._record(spec, response.data)

    async def create_record(
        self, transport: ConnectorTransport, resource: str, data: Mapping[str, Any]
    ) -> Record:
        spec = self._spec(resource, "create")
        endpoint = self._endpoint(spec, "create", spec.path, "POST")
        builder = ApiRequestBuilder(endpoint).with_form(self._form(data)).with_idempotency_key()
        response = await send(transport, builder, f"creating a {resource} record")
        raise_for_answer(response, f"creating a {resource} record")
        return read_answered(response.status, lambda: self._record(spec, response.data))

    async def update_record(
        self, transport: ConnectorTransport, resource: str, record_id: str, data: Mapping[str, Any]
    ) -> Record:
        spec = self._spec(resource, "update")
        endpoint = self._endpoint(spec, "update", spec.path + "/{id}", "POST")
        builder = (
            ApiRequestBuilder(endpoint, parameters={"id": check_record_id(record_id)})
            .with_form(self._form(data))
            .with_idempotency_key()
        )
        response = await send(transport, builder, f"updating {resource} {record_id}")
        raise_for_answer(response, f"updating {resource} {record_id}", record=f"{resource} {record_id!r}")
        return read_answered(response.status, lambda: self._record(spec, response.data))

    async def delete_record(self, transport: ConnectorTransport, resource: str, record_id: str) -> None:
        spec = self._spec(resource, "delete")
        endpoint = self._endpoint(spec, "delete", spec.path + "/{id}", "DELETE")
        builder = ApiRequestBuilder(endpoint, parameters={"id": check_record_id(record_id)})
        response = await send(transport, builder, f"deleting {resource} {record_id}")
        raise_for_answer(response, f"deleting {resource} {record_id}", record=f"{resource} {record_id!r}")
