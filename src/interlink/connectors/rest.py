"""The declarative REST connector: runs a :class:`~interlink.connectors.spec.ConnectorSpec`.

Cursor states by pagination style (inside the opaque cursor, see :mod:`interlink.connectors.base`):
``page`` ``{p: next page}``, ``offset`` ``{o: next offset}``, ``cursor`` ``{c: token}``,
``link_header`` ``{q: the next link's query pairs}``; every state also holds the page size ``z``
(fixed by the first call), the pages walked ``n`` (capped by ``max_pages``: the page that reaches
the cap while the provider has more ends the listing with ``truncated``) and the ``since``
filter ``t``. A ``link_header`` cursor keeps only the next link's query: the path is always the
resource's ``list_path`` on the connection's base URL, so a cursor can never send the
connection's credentials to another host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from interlink.connectors.base import (
    Connector,
    ConnectorRateLimit,
    ConnectorResourceInfo,
    ConnectorTransport,
    IntegrationConnectorInfo,
    ProviderError,
    Record,
    RecordPage,
    bad_cursor,
    check_limit,
    check_record_id,
    decode_cursor,
    dig,
    encode_cursor,
    flatten_form,
    parse_time,
    raise_for_answer,
    read_answered,
    record_id,
    send,
)
from interlink.connectors.spec import ConnectorSpec, ResourceSpec
from interlink.core.errors import ValidationFailed
from interlink.outbound.request import ApiEndpointConfig, ApiRequestBuilder, QueryValue
from interlink.outbound.response import ApiResponse

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]*)*)")
_REL_NEXT = re.compile(r"""rel\s*=\s*"?([^";]*)"?""", re.IGNORECASE)


def next_link(response: ApiResponse) -> str | None:
    """The ``rel="next"`` target of the answer's ``Link`` headers (RFC 8288), or ``None``."""
    for header in response.headers.getall("Link", []):
        for match in _LINK.finditer(header):
            params = match.group(2) or ""
            rel = _REL_NEXT.search(params)
            if rel and "next" in rel.group(1).lower().split():
                return match.group(1)
    return None


def format_since(since: datetime, fmt: str) -> str | int:
    moment = since.astimezone(UTC)
    if fmt == "unix":
        return int(moment.timestamp())
    return moment.isoformat().replace("+00:00", "Z")


def check_since(since: datetime | None) -> datetime | None:
    if since is not None and (not isinstance(since, datetime) or since.tzinfo is None):
        raise ValidationFailed("since must be a time with a timezone (ISO 8601)", field="since")
    return since


class DeclarativeRestConnector(Connector):
    """A connector driven by a spec (see :mod:`interlink.connectors.spec`)."""

    def __init__(self, spec: ConnectorSpec, *, source: str = "builtin") -> None:
        self.spec = spec
        self.key = spec.key
        self.source = source
        self._info = IntegrationConnectorInfo(
            key=spec.key,
            name=spec.name,
            description=spec.description,
            version=spec.version,
            kind="declarative",
            source=source,
            providers=list(spec.providers),
            resources=[
                ConnectorResourceInfo(
                    name=r.name,
                    description=r.description,
                    operations=r.allowed_operations(),
                    pagination=r.pagination.style if r.list_path else "none",
                    page_size=r.pagination.page_size
                    if r.list_path and r.pagination.style != "none"
                    else None,
                    incremental=r.incremental is not None,
                    incremental_field=r.incremental.param if r.incremental else None,
                    id_field=r.id_field,
                    updated_at_field=r.updated_at_field,
                )
                for r in spec.resources
            ],
            rate_limits=[
                ConnectorRateLimit(
                    limit=limit.limit,
                    window_seconds=limit.window_seconds,
                    scope=limit.scope,
                    description=limit.description,
                )
                for limit in spec.rate_limits
            ],
        )

    def info(self) -> IntegrationConnectorInfo:
        return self._info

    def _resource(self, name: str, operation: str) -> ResourceSpec:
        self.require(name, operation)
        found = self.spec.resource(name)
        assert found is not None
        return found

    def _endpoint(self, resource: ResourceSpec, operation: str, path: str, method: str) -> ApiEndpointConfig:
        return ApiEndpointConfig(path=path, method=method, name=f"{self.key}.{resource.name}.{operation}")

    def _record(self, resource: ResourceSpec, item: Any) -> Record:
        if not isinstance(item, dict):
            raise ProviderError(
                f"a {resource.name} record is not an object", upstream_status=None, error_class="bad_answer"
            )
        updated = parse_time(dig(item, resource.updated_at_field)) if resource.updated_at_field else None
        return Record(
            id=record_id(dig(item, resource.id_field), resource.id_field), updated_at=updated, data=item
        )

    def _body(
        self, resource: ResourceSpec, builder: ApiRequestBuilder, data: Mapping[str, Any]
    ) -> ApiRequestBuilder:
        if not isinstance(data, Mapping):
            raise ValidationFailed("the record must be a JSON object", field="body")
        payload: dict[str, Any] = {resource.body_root: dict(data)} if resource.body_root else dict(data)
        if resource.body_encoding == "form":
            return builder.with_form(flatten_form(payload))
        return builder.with_json(payload)

    # -- list ------------------------------------------------------------------------------------------

    async def list_records(
        self,
        transport: ConnectorTransport,
        resource: str,
        *,
        cursor: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> RecordPage:
        spec = self._resource(resource, "list")
        assert spec.list_path is not None
        paging = spec.pagination
        check_since(since)
        if since is not None and spec.incremental is None:
            raise ValidationFailed(
                f"resource {resource!r} does not support since (no incremental filter)", field="since"
            )
        check_limit(limit, paging.max_page_size)
        state: dict[str, Any]
        if cursor is not None:
            state = decode_cursor(cursor, self.key, resource)
            size, walked, since_text = state.get("z"), state.get("n"), state.get("t")
            if not (isinstance(size, int) and 1 <= size <= paging.max_page_size) or not isinstance(
                walked, int
            ):
                raise bad_cursor()
            if since_text is not None and not isinstance(since_text, str):
                raise bad_cursor()
            if since is not None and (since_text is None or parse_time(since_text) != since.astimezone(UTC)):
                raise ValidationFailed(
                    "since must not change between the pages of one listing", field="since"
                )
            since = parse_time(since_text) if since_text else None
        else:
            size = limit or paging.page_size
            walked = 0
            state = {}
        query: dict[str, QueryValue] = dict(spec.list_query)
        if paging.size_param and paging.style != "none":
            query[paging.size_param] = size
        if since is not None and spec.incremental is not None:
            query[spec.incremental.param] = format_since(since, spec.incremental.format)
        style = paging.style
        if style == "page":
            page_number = state.get("p", paging.first_page) if cursor else paging.first_page
            if (
                isinstance(page_number, bool)
                or not isinstance(page_number, int)
                or page_number < paging.first_page
            ):
                raise bad_cursor()
            assert paging.page_param is not None
            query[paging.page_param] = page_number
        elif style == "offset":
            offset = state.get("o", 0) if cursor else 0
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise bad_cursor()
            assert paging.offset_param is not None
            query[paging.offset_param] = offset
        elif style == "cursor" and cursor is not None:
            token = state.get("c")
            if not isinstance(token, str) or not token:
                raise bad_cursor()
            assert paging.cursor_param is not None
            query[paging.cursor_param] = token
        elif style == "link_header" and cursor is None and paging.page_param:
            query[paging.page_param] = paging.first_page  # some servers send Link only when paging
        elif style == "link_header" and cursor is not None:
            pairs = state.get("q")
            if not isinstance(pairs, list) or not all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
            ):
                raise bad_cursor()
            query = {}
            for name, value in pairs:
                existing = query.get(name)
                if existing is None:
                    query[name] = value
                elif isinstance(existing, list):
                    existing.append(value)
                else:
                    query[name] = [str(existing), value]
        builder = ApiRequestBuilder(self._endpoint(spec, "list", spec.list_path, "GET"), query=query)
        response = await send(transport, builder, f"listing {resource}")
        raise_for_answer(response, f"listing {resource}")
        items = dig(response.data, spec.records_path)
        if not isinstance(items, list):
            raise ProviderError(
                f"the list answer has no list at {spec.records_path or '(the body)'!r}",
                upstream_status=response.status,
                error_class="bad_answer",
            )
        records = [self._record(spec, item) for item in items]
        next_state = self._next_state(spec, response, records, state, size)
        walked += 1
        if next_state is None or not records:
            return RecordPage(records, None)
        if walked >= paging.max_pages:
            return RecordPage(records, None, truncated=True)
        next_state.update(z=size, n=walked, t=format_since(since, "iso8601") if since else None)
        return RecordPage(records, encode_cursor(self.key, resource, next_state))

    def _next_state(
        self,
        spec: ResourceSpec,
        response: ApiResponse,
        records: list[Record],
        state: dict[str, Any],
        size: int,
    ) -> dict[str, Any] | None:
        paging = spec.pagination
        style = paging.style
        short = paging.size_param is not None and len(records) < size
        more_flag = dig(response.data, paging.has_more_path) if paging.has_more_path else None
        if paging.has_more_path and more_flag is not True:
            return None
        if style == "page":
            if short and not paging.has_more_path:
                return None
            current = state.get("p", paging.first_page)
            return {"p": int(current) + 1}
        if style == "offset":
            if short:
                return None
            return {"o": int(state.get("o", 0)) + len(records)}
        if style == "cursor":
            if paging.cursor_from == "last_id":
                return {"c": records[-1].id} if records else None
            if paging.cursor_from == "header":
                assert paging.cursor_header is not None
                token: Any = response.headers.get(paging.cursor_header)
            else:
                assert paging.cursor_path is not None
                token = dig(response.data, paging.cursor_path)
            if isinstance(token, int) and not isinstance(token, bool):
                token = str(token)
            return {"c": token} if isinstance(token, str) and token else None
        if style == "link_header":
            link = next_link(response)
            if not link:
                return None
            return {"q": [list(pair) for pair in parse_qsl(urlsplit(link).query, keep_blank_values=True)]}
        return None

    # -- one record ------------------------------------------------------------------------------------

    async def get_record(self, transport: ConnectorTransport, resource: str, record_id: str) -> Record:
        spec = self._resource(resource, "get")
        assert spec.get_path is not None
        builder = ApiRequestBuilder(
            self._endpoint(spec, "get", spec.get_path, "GET"), parameters={"id": check_record_id(record_id)}
        )
        response = await send(transport, builder, f"reading {resource} {record_id}")
        raise_for_answer(response, f"reading {resource} {record_id}", record=f"{resource} {record_id!r}")
        return self._record(spec, dig(response.data, spec.record_path))

    async def create_record(
        self, transport: ConnectorTransport, resource: str, data: Mapping[str, Any]
    ) -> Record:
        spec = self._resource(resource, "create")
        assert spec.create_path is not None
        builder = self._body(
            spec, ApiRequestBuilder(self._endpoint(spec, "create", spec.create_path, "POST")), data
        )
        response = await send(transport, builder, f"creating a {resource} record")
        raise_for_answer(response, f"creating a {resource} record")
        return read_answered(
            response.status, lambda: self._record(spec, dig(response.data, spec.record_path))
        )

    async def update_record(
        self, transport: ConnectorTransport, resource: str, record_id: str, data: Mapping[str, Any]
    ) -> Record:
        spec = self._resource(resource, "update")
        assert spec.update_path is not None
        endpoint = self._endpoint(spec, "update", spec.update_path, spec.update_method)
        builder = self._body(
            spec, ApiRequestBuilder(endpoint, parameters={"id": check_record_id(record_id)}), data
        )
        response = await send(transport, builder, f"updating {resource} {record_id}")
        raise_for_answer(response, f"updating {resource} {record_id}", record=f"{resource} {record_id!r}")
        return read_answered(
            response.status, lambda: self._record(spec, dig(response.data, spec.record_path))
        )

    async def delete_record(self, transport: ConnectorTransport, resource: str, record_id: str) -> None:
        spec = self._resource(resource, "delete")
        assert spec.delete_path is not None
        builder = ApiRequestBuilder(
            self._endpoint(spec, "delete", spec.delete_path, "DELETE"),
            parameters={"id": check_record_id(record_id)},
        )
        response = await send(transport, builder, f"deleting {resource} {record_id}")
        raise_for_answer(response, f"deleting {resource} {record_id}", record=f"{resource} {record_id!r}")
