"""Client commands: ``interlink api-requests ...`` (the outbound request log) through the SDK.

Same conventions as the other client commands: ``--url``/``INTERLINK_API_URL``,
``--api-key``/``INTERLINK_API_KEY``, ``--tenant``/``INTERLINK_TENANT_ID``; a table, or JSON with
``--json``; API errors print the problem and exit 1, usage errors exit 2.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    Paging,
    _one,
    _when,
    api_call,
    client_command,
    print_pages,
)

api_requests_app = typer.Typer(
    help="Inspect outbound API calls (the request log) and their metrics.", no_args_is_help=True
)

REQUEST_COLUMNS: list[Column] = [
    ("id", lambda r: r.id),
    ("started", lambda r: r.created_at),
    ("provider", lambda r: r.provider_key),
    ("connection", lambda r: r.connection_id),
    ("method", lambda r: r.method),
    ("url", lambda r: r.url),
    ("status", lambda r: r.status),
    ("error", lambda r: r.error_class),
    ("attempts", lambda r: r.attempts),
    ("ms", lambda r: round(r.duration_ms)),
]

ConnectionOpt = Annotated[str | None, typer.Option("--connection", help="Only calls of this connection.")]
ProviderOpt = Annotated[str | None, typer.Option("--provider", help="Only calls to this provider key.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Started at or after (ISO 8601).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Started before (ISO 8601).")]


@client_command(api_requests_app, "list", paged=True)
def api_requests_list(
    conn: Connection,
    paging: Paging,
    connection: ConnectionOpt = None,
    provider: ProviderOpt = None,
    status: Annotated[
        int | None, typer.Option("--status", min=100, max=599, help="Only calls answered with this status.")
    ] = None,
    error_class: Annotated[
        str | None,
        typer.Option("--error-class", help="Only calls that failed with this class (`none`: successes)."),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
) -> None:
    """Outbound calls of the tenant, newest first (needs connections:read)."""
    start, end = _when(since, "--since"), _when(until, "--until")
    filters: dict[str, Any] = {
        "connection_id": connection,
        "provider_key": provider,
        "status": status,
        "error_class": error_class,
        "since": start,
        "until": end,
    }
    print_pages(
        conn, paging, lambda client: client.api_requests, REQUEST_COLUMNS, "no outbound calls", **filters
    )


@client_command(api_requests_app, "show")
def api_requests_show(
    conn: Connection,
    request_id: Annotated[str, typer.Argument(help="API request id (apr_...).")],
) -> None:
    """One outbound call with its (redacted) headers and bodies."""
    found = api_call(conn, lambda client: client.api_requests.get(request_id))
    _one(conn, found)


@client_command(api_requests_app, "metrics")
def api_requests_metrics(
    conn: Connection,
    connection: ConnectionOpt = None,
    provider: ProviderOpt = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Window start (ISO 8601; default 24 h ago).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Window end (ISO 8601; default now).")] = None,
) -> None:
    """Count, success rate, p50/p95/p99, throughput and errors by class of outbound calls."""
    start, end = _when(since, "--since"), _when(until, "--until")
    figures = api_call(
        conn,
        lambda client: client.api_requests.metrics(
            connection_id=connection, provider_key=provider, since=start, until=end
        ),
    )
    _one(conn, figures)
