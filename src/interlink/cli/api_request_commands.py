"""Client commands: ``interlink api-requests ...`` (the outbound request log) through the SDK.

Same conventions as the other client commands: ``--url``/``INTERLINK_API_URL``,
``--api-key``/``INTERLINK_API_KEY``, ``--tenant``/``INTERLINK_TENANT_ID``; a table, or JSON with
``--json``; API errors print the problem and exit 1, usage errors exit 2.
"""

from __future__ import annotations

from typing import Annotated

import typer

from interlink.cli.client_commands import (
    After,
    All,
    ApiKey,
    AsJson,
    Column,
    Connection,
    Limit,
    Tenant,
    Url,
    _api,
    _collect,
    _list_output,
    _one,
    _when,
)
from interlink.client._base import DEFAULT_BASE_URL

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


@api_requests_app.command("list")
def api_requests_list(
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
    limit: Limit = 50,
    after: After = None,
    every: All = False,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Outbound calls of the tenant, newest first (needs connections:read)."""
    conn = Connection(url, api_key, tenant, as_json)
    start, end = _when(since, "--since"), _when(until, "--until")
    filters = {
        "connection_id": connection,
        "provider_key": provider,
        "status": status,
        "error_class": error_class,
        "since": start,
        "until": end,
    }
    with _api(conn) as client:
        fetched = _collect(
            every,
            lambda: client.api_requests.list(limit=limit, after=after, **filters),  # type: ignore[arg-type]
            lambda: client.api_requests.iter_all(page_size=limit, **filters),  # type: ignore[arg-type]
        )
    _list_output(conn, fetched, REQUEST_COLUMNS, "no outbound calls")


@api_requests_app.command("show")
def api_requests_show(
    request_id: Annotated[str, typer.Argument(help="API request id (apr_...).")],
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """One outbound call with its (redacted) headers and bodies."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        found = client.api_requests.get(request_id)
    _one(conn, found)


@api_requests_app.command("metrics")
def api_requests_metrics(
    connection: ConnectionOpt = None,
    provider: ProviderOpt = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Window start (ISO 8601; default 24 h ago).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Window end (ISO 8601; default now).")] = None,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Count, success rate, p50/p95/p99, throughput and errors by class of outbound calls."""
    conn = Connection(url, api_key, tenant, as_json)
    start, end = _when(since, "--since"), _when(until, "--until")
    with _api(conn) as client:
        figures = client.api_requests.metrics(
            connection_id=connection, provider_key=provider, since=start, until=end
        )
    _one(conn, figures)
