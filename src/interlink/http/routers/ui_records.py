"""``/ui/connections/{id}/resources/...``: records through a connection in the dashboard.

The same plumbing as :mod:`interlink.http.routers.ui_integrations`: every page authenticates the
session's key for the scope its REST twin (``/v1/connections/{id}/resources/...``) needs
(``connections:read`` to list and read, ``connections:write`` to create, edit and delete), reads the
connection (another tenant's id is a 404 page) and the resource of the connector serving its
provider (no connector, or a resource it does not have: a 404 page), then calls
:class:`~interlink.connectors.records.ConnectorRecords`, the service behind the REST API, so
cursors, the request log and the audit rows of writes are the same. Mutations are form POSTs
carrying the CSRF token and answer with a redirect.

A provider that fails or cannot be called (a 502/503/504 problem from the service, or 409 for a
disabled, revoked or not yet authorized connection) is shown as an error on the page, whose status
is the problem's; the page still renders. JSON typed into a form that does not parse, or is not an
object, is shown next to the textarea with the text as it was sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from interlink.connections.connection_schemas import ConnectionInfo, connection_info
from interlink.connectors.base import (
    MAX_CURSOR_LENGTH,
    ConnectorResourceInfo,
    IntegrationConnectorInfo,
    OperationNotAllowed,
    ProviderError,
    Record,
    UnknownResource,
)
from interlink.connectors.records import ConnectorRecords
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import InterlinkError, NotFound, ValidationFailed
from interlink.http.routers.ui import (
    UiSession,
    _html,
    _int_param,
    _open,
    _read_form,
    _see_other,
    _text_param,
    page,
)
from interlink.http.routers.ui_integrations import CONNECTIONS, MAX_FORM_TEXT, _connections
from interlink.http.routers.ui_webhooks import _field_of, parse_json, parse_time

router = APIRouter(prefix="/ui", include_in_schema=False)

PREVIEW_CHARS = 160
MAX_LIMIT = 1000  # as the REST API's ``limit``
RECORD_NOTICES = {
    "created": "Record created at the provider.",
    "updated": "Record saved at the provider.",
    "deleted": "Record deleted at the provider.",
}


@dataclass(frozen=True)
class _Target:
    """The connection, its connector and the resource a records page is about."""

    connection: ConnectionInfo
    connector: IntegrationConnectorInfo
    resource: ConnectorResourceInfo

    @property
    def url(self) -> str:
        return f"{CONNECTIONS}/{self.connection.id}/resources/{self.resource.name}"

    def record_url(self, record_id: str) -> str:
        return f"{self.url}/{quote(record_id, safe='')}"

    def supports(self, operation: str) -> bool:
        return operation in self.resource.operations


def _records(ui: UiSession) -> ConnectorRecords:
    return ConnectorRecords.from_runtime(ui.runtime)


async def _target(ui: UiSession, connection_id: str, resource: str) -> _Target:
    """The connection (404 for an unknown id or another tenant's), the connector serving its
    provider and the named resource (404 when either is missing)."""
    async with ui.runtime.db.unit_of_work(write=False) as session:
        conn = await _connections(ui).get(session, ui.actor, connection_id)
    connector = ui.runtime.connectors.for_provider(conn.provider_key)
    if connector is None:
        raise NotFound(
            f"no connector serves provider {conn.provider_key!r}, so connection {conn.id} has no records"
        )
    info = connector.info()
    for item in info.resources:
        if item.name == resource:
            return _Target(connection_info(conn), info, item)
    raise UnknownResource(f"connector {info.key!r} has no resource {resource[:100]!r}")


def _require(target: _Target, operation: str) -> None:
    """405 (an error page) when the resource does not offer ``operation``; its forms are not shown."""
    if not target.supports(operation):
        raise OperationNotAllowed(
            f"resource {target.resource.name!r} does not support {operation} "
            f"(it supports {', '.join(target.resource.operations)})",
            extra={"allowed": target.resource.operations},
        )


def _failure(exc: InterlinkError) -> str:
    """What a failed call through the connection shows at the top of the page."""
    detail = exc.detail[:1].upper() + exc.detail[1:]
    return f"{exc.title}: {detail}"


def _upstream(exc: InterlinkError) -> bool:
    """A failure of the provider or of the connection (shown on the page), as opposed to a missing
    connection, resource or record or an operation the resource lacks (an error page)."""
    return not isinstance(exc, (NotFound, ValidationFailed, OperationNotAllowed))


def _parse_data(text: str, *, changes: bool) -> dict[str, Any]:
    """The JSON object typed into a record form (ValidationFailed naming ``data`` otherwise)."""
    if len(text) > MAX_FORM_TEXT:
        raise ValidationFailed(f"At most {MAX_FORM_TEXT} characters.", field="data")
    if not text.strip():
        what = "the fields to change" if changes else "the record's fields"
        raise ValidationFailed(f"Enter {what} as a JSON object.", field="data")
    data: dict[str, Any] = parse_json(text, "data")
    if changes and not data:
        raise ValidationFailed("Enter at least one field to change.", field="data")
    return data


def _write_failure(exc: InterlinkError) -> tuple[dict[str, str], str | None] | None:
    """How a failed create or update shows on its form: ``(errors, error)``, the text under the
    textarea for bad JSON or data the provider refused (its 4xx answer), the message at the top for
    a provider or connection failure; None for what is an error page (missing connection, resource
    or record, a bad record id, an operation the resource lacks)."""
    if isinstance(exc, ValidationFailed):
        return None if _field_of(exc, "data") == "recordId" else ({"data": exc.detail}, None)
    if not _upstream(exc):
        return None
    upstream_status = exc.extra.get("upstreamStatus") if isinstance(exc, ProviderError) else None
    if isinstance(upstream_status, int) and 400 <= upstream_status < 500:
        message = exc.extra.get("providerMessage") or exc.detail
        return {"data": f"The provider refused it (HTTP {upstream_status}): {message}"}, None
    return {}, _failure(exc)


def _preview(record: Record, resource: ConnectorResourceInfo) -> str:
    """The record's other fields as compact JSON, cut to :data:`PREVIEW_CHARS`."""
    hidden = {resource.id_field, resource.updated_at_field}
    rest = {k: v for k, v in record.data.items() if k not in hidden}
    text = json.dumps(rest, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _url(base: str, params: dict[str, str]) -> str:
    kept = {k: v for k, v in params.items() if v}
    return f"{base}?{urlencode(kept)}" if kept else base


# -- the records of a resource ---------------------------------------------------------------------


async def _records_page(
    request: Request,
    ui: UiSession,
    target: _Target,
    *,
    status: int = 200,
    form_text: str = "",
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    """One page of records (``cursor``, ``since`` and ``limit`` from the query string) with the
    create form; a failed listing is shown as an error instead of the table."""
    errors = dict(errors or {})
    filters = {
        "since": _text_param(request, "since", 40),
        "limit": _text_param(request, "limit", 4),
        "cursor": _text_param(request, "cursor", 2 * MAX_CURSOR_LENGTH),
    }
    records: list[dict[str, Any]] | None = None
    next_url = None
    truncated = False
    try:
        since = parse_time(filters["since"], "since")
        limit = _int_param(filters["limit"], "limit", 1, MAX_LIMIT) if filters["limit"] else None
        result = await _records(ui).list(
            ui.actor,
            target.connection.id,
            target.resource.name,
            cursor=filters["cursor"] or None,
            since=since,
            limit=limit,
        )
    except ValidationFailed as exc:
        status = exc.status
        if _field_of(exc, "cursor") == "since" and target.resource.incremental:  # the filter is shown
            errors["since"] = exc.detail
            error = error or "Check the filter marked below."
        else:
            error = error or exc.detail
    except InterlinkError as exc:
        if not _upstream(exc):
            raise
        status = exc.status if status < 400 else status
        error = f"{error} {_failure(exc)}" if error else _failure(exc)
    else:
        records = [
            {
                "id": r.id,
                "url": target.record_url(r.id),
                "updated_at": r.updated_at,
                "preview": _preview(r, target.resource),
            }
            for r in result.records
        ]
        if result.next_cursor:
            next_url = _url(target.url, {**filters, "cursor": result.next_cursor})
        truncated = result.truncated
    first_url = _url(target.url, {**filters, "cursor": ""}) if filters["cursor"] else None
    return _html(
        request,
        "records.html",
        status,
        active="connections",
        connection=target.connection,
        connector=target.connector,
        resource=target.resource,
        base_url=target.url,
        records=records,
        filters=filters,
        first_url=first_url,
        next_url=next_url,
        truncated=truncated,
        can_create=target.supports("create") and ui.actor.has_scope(ApiKeyScope.CONNECTIONS_WRITE),
        form_text=form_text,
        errors=errors,
        error=error,
        notice=RECORD_NOTICES.get(request.query_params.get("notice", "")),
    )


@router.get("/connections/{connection_id}/resources/{resource}")
@page
async def records_page(request: Request, connection_id: str, resource: str) -> Response:
    ui = await _open(request, ApiKeyScope.CONNECTIONS_READ, CONNECTIONS)
    target = await _target(ui, connection_id, resource)
    _require(target, "list")
    return await _records_page(request, ui, target)


@router.post("/connections/{connection_id}/resources/{resource}")
@page
async def create_record(request: Request, connection_id: str, resource: str) -> Response:
    """Create a record from the JSON object in ``data`` (as ``POST .../resources/{resource}``)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    target = await _target(ui, connection_id, resource)
    _require(target, "create")
    text = (form.fields.get("data") or [""])[0]
    try:
        data = _parse_data(text, changes=False)
        record = await _records(ui).create(ui.actor, target.connection.id, target.resource.name, data)
    except InterlinkError as exc:
        shown = _write_failure(exc)
        if shown is None:
            raise
        errors, error = shown
        return await _records_page(
            request, ui, target, status=exc.status, form_text=text, errors=errors, error=error
        )
    return _see_other(f"{target.record_url(record.id)}?notice=created")


# -- one record ------------------------------------------------------------------------------------


async def _record_page(
    request: Request,
    ui: UiSession,
    target: _Target,
    record_id: str,
    *,
    status: int = 200,
    form_text: str = "",
    errors: dict[str, str] | None = None,
    error: str | None = None,
) -> Response:
    """The record's fields with the edit and delete forms; a failed read is shown as an error."""
    record: Record | None = None
    try:
        record = await _records(ui).get(ui.actor, target.connection.id, target.resource.name, record_id)
    except InterlinkError as exc:
        if not _upstream(exc):
            raise
        status = exc.status if status < 400 else status
        error = f"{error} {_failure(exc)}" if error else _failure(exc)
    can_write = ui.actor.has_scope(ApiKeyScope.CONNECTIONS_WRITE)
    return _html(
        request,
        "record_detail.html",
        status,
        active="connections",
        connection=target.connection,
        connector=target.connector,
        resource=target.resource,
        base_url=target.url,
        record_id=record_id,
        record_url=target.record_url(record_id),
        record=record,
        can_update=can_write and target.supports("update"),
        can_delete=can_write and target.supports("delete"),
        form_text=form_text,
        errors=errors or {},
        error=error,
        notice=RECORD_NOTICES.get(request.query_params.get("notice", "")),
    )


@router.get("/connections/{connection_id}/resources/{resource}/{record_id}")
@page
async def record_page(request: Request, connection_id: str, resource: str, record_id: str) -> Response:
    ui = await _open(request, ApiKeyScope.CONNECTIONS_READ, CONNECTIONS)
    target = await _target(ui, connection_id, resource)
    _require(target, "get")
    return await _record_page(request, ui, target, record_id)


@router.post("/connections/{connection_id}/resources/{resource}/{record_id}/edit")
@page
async def update_record(request: Request, connection_id: str, resource: str, record_id: str) -> Response:
    """Change the fields in the JSON object ``data`` and keep the others (as ``PATCH``)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    target = await _target(ui, connection_id, resource)
    _require(target, "update")
    text = (form.fields.get("data") or [""])[0]
    try:
        data = _parse_data(text, changes=True)
        await _records(ui).update(ui.actor, target.connection.id, target.resource.name, record_id, data)
    except InterlinkError as exc:
        shown = _write_failure(exc)
        if shown is None:
            raise
        errors, error = shown
        return await _record_page(
            request, ui, target, record_id, status=exc.status, form_text=text, errors=errors, error=error
        )
    return _see_other(f"{target.record_url(record_id)}?notice=updated")


@router.post("/connections/{connection_id}/resources/{resource}/{record_id}/delete")
@page
async def delete_record(request: Request, connection_id: str, resource: str, record_id: str) -> Response:
    """Delete after the form's confirmation box was ticked (and the browser's prompt accepted)."""
    form = await _read_form(request)
    ui = await _open(request, ApiKeyScope.CONNECTIONS_WRITE, CONNECTIONS)
    target = await _target(ui, connection_id, resource)
    _require(target, "delete")
    if form.get("confirm") != "yes":
        errors = {"confirm": "Tick the box to confirm that this record should be deleted."}
        return await _record_page(request, ui, target, record_id, status=422, errors=errors)
    try:
        await _records(ui).delete(ui.actor, target.connection.id, target.resource.name, record_id)
    except InterlinkError as exc:
        if not _upstream(exc):
            raise
        return await _record_page(request, ui, target, record_id, status=exc.status, error=_failure(exc))
    return _see_other(f"{target.url}?notice=deleted")
