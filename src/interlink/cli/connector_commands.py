"""Client commands: ``interlink connectors ...`` (connectors, and records through a connection).

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``;
API errors exit 1, usage errors exit 2). Any valid key may list connectors; records need
``connections:read``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    _api,
    _fail,
    _metadata,
    _print_json,
    _show,
    _table,
    api_call,
    client_command,
    json_or,
)
from interlink.connectors.base import IntegrationConnectorInfo, RecordOut

connectors_app = typer.Typer(
    help="Connectors: the resources Interlink can read and write at each provider.",
    no_args_is_help=True,
)

CONNECTOR_COLUMNS: list[Column] = [
    ("key", lambda c: c.key),
    ("name", lambda c: c.name),
    ("kind", lambda c: c.kind),
    ("source", lambda c: c.source),
    ("providers", lambda c: c.providers),
    ("resources", lambda c: [r.name for r in c.resources]),
]
RESOURCE_COLUMNS: list[Column] = [
    ("resource", lambda r: r.name),
    ("operations", lambda r: r.operations),
    ("pagination", lambda r: r.pagination),
    ("page size", lambda r: r.page_size),
    ("incremental", lambda r: r.incremental_field if r.incremental else "no"),
    ("id", lambda r: r.id_field),
    ("updated at", lambda r: r.updated_at_field),
]


@client_command(connectors_app, "list")
def connectors_list(
    conn: Connection,
    provider: Annotated[
        str | None, typer.Option("--provider", help="Only connectors serving this provider.")
    ] = None,
) -> None:
    """Every connector (built in and the operator's), sorted by key."""
    found = api_call(conn, lambda client: client.connectors.list(provider=provider))
    if conn.as_json:
        _print_json([c.model_dump(mode="json", by_alias=True) for c in found])
    else:
        _table(found, CONNECTOR_COLUMNS, "no connectors match")


def _print_connector(info: IntegrationConnectorInfo) -> None:
    _show(info, title=f"{info.name} ({info.key})", exclude={"resources", "rate_limits"})
    _table(info.resources, RESOURCE_COLUMNS, "no resources")
    _table(
        info.rate_limits,
        [
            ("limit", lambda r: r.limit),
            ("per seconds", lambda r: r.window_seconds),
            ("scope", lambda r: r.scope),
            ("description", lambda r: r.description),
        ],
        "rate limits: none documented",
    )


@client_command(connectors_app, "show")
def connectors_show(
    conn: Connection,
    key: Annotated[str, typer.Argument(help="Connector key, e.g. stripe.")],
) -> None:
    """One connector: providers, resources, operations, pagination, incremental filter, limits."""
    info = api_call(conn, lambda client: client.connectors.get(key))
    json_or(conn, info, _print_connector)


@client_command(connectors_app, "records")
def connectors_records(
    conn: Connection,
    connection_id: Annotated[str, typer.Argument(help="Connection id (conn_...).")],
    resource: Annotated[str, typer.Argument(help="Resource, e.g. customers.")],
    since: Annotated[
        str | None, typer.Option("--since", help="Only records changed at or after (ISO 8601 with zone).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, max=1000, help="Page size.")] = None,
    cursor: Annotated[
        str | None, typer.Option("--cursor", help="The nextCursor of the previous page.")
    ] = None,
    fetch_all: Annotated[bool, typer.Option("--all", help="Fetch every page.")] = False,
) -> None:
    """Records of a resource through a connection (one page, or every page with --all)."""
    when: datetime | None = None
    if since is not None:
        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            _fail(f"--since: {since!r} is not an ISO 8601 time", 2)
        if when.tzinfo is None:
            _fail("--since needs a timezone (e.g. 2026-01-01T00:00:00Z)", 2)
    records: list[RecordOut] = []
    with _api(conn) as client:
        while True:
            page = client.connectors.list_records(
                connection_id, resource, cursor=cursor, since=when, limit=limit
            )
            records += page.data
            next_cursor, truncated = page.next_cursor, page.truncated
            if not (fetch_all and next_cursor):
                break
            cursor = next_cursor
    if truncated:
        typer.echo(
            "interlink: the listing stopped at the connector's page cap; the provider has more "
            "(narrow it with --since)",
            err=True,
        )
    if conn.as_json:
        data = [r.model_dump(mode="json", by_alias=True) for r in records]
        _print_json({"data": data, "nextCursor": next_cursor, "truncated": truncated})
        return
    _table(
        records,
        [("id", lambda r: r.id), ("updated at", lambda r: r.updated_at), ("data", lambda r: r.data)],
        "no records",
    )
    if next_cursor:
        typer.echo(f"next page: --cursor {next_cursor}")


ConnectionArg = Annotated[str, typer.Argument(help="Connection id (conn_...).")]
ResourceArg = Annotated[str, typer.Argument(help="Resource, e.g. customers.")]
RecordArg = Annotated[str, typer.Argument(help="The record's id at the provider.")]
Data = Annotated[
    str, typer.Option("--data", help='The record\'s fields as a JSON object, e.g. \'{"name": "Ada"}\'.')
]


def _fields(text: str) -> dict[str, Any]:
    """``--data``: a JSON object (anything else is a usage error naming the option)."""
    return _metadata(text, "--data") or {}


def _print_record(conn: Connection, record: RecordOut) -> None:
    if conn.as_json:
        _print_json(record)
        return
    typer.echo(f"Record {record.id} (updated at {record.updated_at or '-'})")
    typer.echo(json.dumps(record.data, indent=2, default=str))


@client_command(connectors_app, "record")
def connectors_record(
    conn: Connection,
    connection_id: ConnectionArg,
    resource: ResourceArg,
    record_id: RecordArg,
) -> None:
    """One record of a resource through a connection."""
    record = api_call(conn, lambda client: client.connectors.get_record(connection_id, resource, record_id))
    _print_record(conn, record)


@client_command(connectors_app, "create-record")
def connectors_create_record(
    conn: Connection,
    connection_id: ConnectionArg,
    resource: ResourceArg,
    data: Data,
) -> None:
    """Create a record at the provider through a connection (needs connections:write)."""
    fields = _fields(data)
    record = api_call(conn, lambda client: client.connectors.create_record(connection_id, resource, fields))
    _print_record(conn, record)


@client_command(connectors_app, "update-record")
def connectors_update_record(
    conn: Connection,
    connection_id: ConnectionArg,
    resource: ResourceArg,
    record_id: RecordArg,
    data: Data,
) -> None:
    """Change fields of a record at the provider (needs connections:write)."""
    fields = _fields(data)
    record = api_call(
        conn, lambda client: client.connectors.update_record(connection_id, resource, record_id, fields)
    )
    _print_record(conn, record)


@client_command(connectors_app, "delete-record", json_option=False)
def connectors_delete_record(
    conn: Connection,
    connection_id: ConnectionArg,
    resource: ResourceArg,
    record_id: RecordArg,
) -> None:
    """Delete a record at the provider (needs connections:write)."""
    api_call(conn, lambda client: client.connectors.delete_record(connection_id, resource, record_id))
    typer.echo(f"Deleted {resource} {record_id}")
