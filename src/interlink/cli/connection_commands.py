"""Client commands: ``interlink connections ...`` (a tenant's connections to providers) through the SDK.

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``;
API errors exit 1, usage errors exit 2). Credentials are given as a JSON object with
``--credentials-file`` (a file, or ``-`` for standard input, which keeps them out of the process
list) or ``--credentials``; they are never printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pydantic
import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    Metadata,
    _list_output,
    _metadata,
    _one,
    _print_json,
    api_call,
    client_command,
)
from interlink.client import ForwardedResponse, InterlinkClient
from interlink.client._base import NOT_GIVEN
from interlink.core.enums import AuthenticationType, IntegrationConnectionStatus, IntegrationEnvironment

connections_app = typer.Typer(
    help="Connections: a tenant's credentials and settings for one provider and environment.",
    no_args_is_help=True,
)

CONNECTION_COLUMNS: list[Column] = [
    ("id", lambda c: c.id),
    ("name", lambda c: c.name),
    ("provider", lambda c: c.provider_key),
    ("environment", lambda c: c.environment),
    ("auth", lambda c: c.auth_type),
    ("status", lambda c: c.status),
    ("token expires", lambda c: c.token_expires_at),
    ("last error", lambda c: c.last_error),
]

ConnectionArg = Annotated[str, typer.Argument(help="Connection id (conn_...).")]
Provider = Annotated[str, typer.Option("--provider", help="Provider key (see `interlink providers list`).")]
Name = Annotated[str, typer.Option("--name", help="Unique name in the tenant.")]
Environment = Annotated[IntegrationEnvironment, typer.Option("--environment", help="Provider environment.")]
Config = Annotated[
    str | None, typer.Option("--config", help='JSON object of settings, e.g. \'{"subdomain": "acme"}\'.')
]
AuthType = Annotated[
    AuthenticationType | None, typer.Option("--auth-type", help="Default: the provider's first.")
]
Credentials = Annotated[
    str | None, typer.Option("--credentials", help='JSON object, e.g. \'{"apiKey": "..."}\' (never printed).')
]
CredentialsFile = Annotated[
    Path | None,
    typer.Option("--credentials-file", help="Read the credentials JSON from a file ('-': standard input)."),
]
Scopes = Annotated[list[str] | None, typer.Option("--scope", help="OAuth2 scope (repeat for more).")]


def _credentials(value: str | None, path: Path | None) -> dict[str, Any] | None:
    if value is not None and path is not None:
        raise typer.BadParameter(
            "give --credentials or --credentials-file, not both", param_hint="--credentials"
        )
    if path is not None:
        text = sys.stdin.read() if str(path) == "-" else _read(path)
        return _metadata(text, "--credentials-file")
    return _metadata(value, "--credentials")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="--credentials-file"
        ) from None


def _create_args(
    provider: str,
    name: str,
    environment: IntegrationEnvironment,
    config: str | None,
    auth_type: AuthenticationType | None,
    credentials: str | None,
    credentials_file: Path | None,
    scopes: list[str] | None,
    metadata: str | None,
) -> dict[str, Any]:
    return {
        "provider_key": provider,
        "name": name,
        "environment": environment,
        "config": _metadata(config, "--config"),
        "auth_type": auth_type,
        "credentials": _credentials(credentials, credentials_file),
        "scopes": scopes or None,
        "metadata": _metadata(metadata),
    }


def _settings_command(
    doc: str,
    send: Callable[[InterlinkClient, dict[str, Any]], pydantic.BaseModel],
    title: Callable[[Any], str],
) -> Callable[..., None]:
    """A command (docstring ``doc``) taking a connection's provider, name, environment, config,
    authentication, credentials, scopes and metadata, that sends them with ``send`` and prints the
    answer under ``title(answer)``: ``create`` and ``validate`` take the same options."""

    def command(
        conn: Connection,
        provider: Provider,
        name: Name,
        environment: Environment = IntegrationEnvironment.PRODUCTION,
        config: Config = None,
        auth_type: AuthType = None,
        credentials: Credentials = None,
        credentials_file: CredentialsFile = None,
        scope: Scopes = None,
        metadata: Metadata = None,
    ) -> None:
        args = _create_args(
            provider, name, environment, config, auth_type, credentials, credentials_file, scope, metadata
        )
        answer = api_call(conn, lambda client: send(client, args))
        _one(conn, answer, title(answer))

    command.__doc__ = doc
    return command


connections_create = client_command(connections_app, "create")(
    _settings_command(
        "Create a connection (OAuth2 connections start PENDING until a token is obtained).",
        lambda client, args: client.connections.create(**args),
        lambda created: f"Connection {created.id}",
    )
)
connections_validate = client_command(connections_app, "validate")(
    _settings_command(
        "Check a connection's settings and credentials shape without saving anything.",
        lambda client, args: client.connections.validate(**args),
        lambda _checked: "Valid",
    )
)


@client_command(connections_app, "list")
def connections_list(
    conn: Connection,
    provider: Annotated[str | None, typer.Option("--provider", help="Only this provider.")] = None,
    environment: Annotated[
        IntegrationEnvironment | None, typer.Option("--environment", help="Only this environment.")
    ] = None,
    status: Annotated[
        IntegrationConnectionStatus | None, typer.Option("--status", help="Only this status.")
    ] = None,
    auth_type: Annotated[
        AuthenticationType | None, typer.Option("--auth-type", help="Only this authentication.")
    ] = None,
) -> None:
    """Every connection of the tenant matching the filters, newest first."""
    found = api_call(
        conn,
        lambda client: list(
            client.connections.iter_all(
                provider_key=provider, environment=environment, status=status, auth_type=auth_type
            )
        ),
    )
    _list_output(conn, found, CONNECTION_COLUMNS, "no connections")


@client_command(connections_app, "show")
def connections_show(conn: Connection, connection_id: ConnectionArg) -> None:
    """One connection (its credentials are never shown; `credentialRoles` says what is stored)."""
    found = api_call(conn, lambda client: client.connections.get(connection_id))
    _one(conn, found, f"Connection {found.id}")


@client_command(connections_app, "update")
def connections_update(
    conn: Connection,
    connection_id: ConnectionArg,
    name: Annotated[str | None, typer.Option("--name", help="New name (unique in the tenant).")] = None,
    config: Config = None,
    credentials: Credentials = None,
    credentials_file: CredentialsFile = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="OAuth2 scope (repeat for more; replaces them).")
    ] = None,
    default_scopes: Annotated[
        bool, typer.Option("--default-scopes", help="Go back to the provider's default scopes.")
    ] = False,
    metadata: Metadata = None,
    status: Annotated[
        IntegrationConnectionStatus | None,
        typer.Option("--status", help="ACTIVE (re-enable), DISABLED or REVOKED (final)."),
    ] = None,
) -> None:
    """Change a connection; only the options given change. New credentials replace the stored
    ones (OAuth2 tokens are dropped)."""
    if scope and default_scopes:
        raise typer.BadParameter("use --scope or --default-scopes, not both", param_hint="--scope")
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name
    if config is not None:
        changes["config"] = _metadata(config, "--config")
    found = _credentials(credentials, credentials_file)
    if found is not None:
        changes["credentials"] = found
    if scope:
        changes["scopes"] = scope
    elif default_scopes:
        changes["scopes"] = None
    if metadata is not None:
        changes["metadata"] = _metadata(metadata)
    if status is not None:
        changes["status"] = status
    if not changes:
        raise typer.BadParameter("nothing to change: give at least one option")
    updated = api_call(conn, lambda client: client.connections.update(connection_id, **changes))
    _one(conn, updated, f"Connection {updated.id}")


@client_command(connections_app, "authorize-url")
def connections_authorize_url(
    conn: Connection,
    connection_id: ConnectionArg,
    return_to: Annotated[
        str | None,
        typer.Option("--return-to", help="A path on the server the user is sent back to afterwards."),
    ] = None,
) -> None:
    """The provider's authorize URL of an OAUTH2_AUTHORIZATION_CODE connection (valid 10 minutes):
    send the user there to connect it."""
    link = api_call(conn, lambda client: client.connections.authorize_url(connection_id, return_to=return_to))
    if conn.as_json:
        _print_json(link)
        return
    typer.echo(link.url)
    typer.echo(f"(valid until {link.state_expires_at.isoformat()}; the provider sends the user to "
               f"{link.redirect_uri})")  # fmt: skip


@client_command(connections_app, "refresh")
def connections_refresh(conn: Connection, connection_id: ConnectionArg) -> None:
    """Obtain a new OAuth2 access token now (refresh token or client credentials); exits 1 when
    the provider refuses (the connection is then EXPIRED or ERROR, see `lastError`)."""
    refreshed = api_call(conn, lambda client: client.connections.refresh(connection_id))
    _one(conn, refreshed, f"Connection {refreshed.id}")


@client_command(connections_app, "delete", json_option=False)
def connections_delete(conn: Connection, connection_id: ConnectionArg) -> None:
    """Delete a connection and its stored credentials and tokens."""
    api_call(conn, lambda client: client.connections.delete(connection_id))
    typer.echo(f"Deleted {connection_id}")


def _pairs(values: list[str] | None, separator: str, option: str) -> dict[str, Any] | None:
    """``name<separator>value`` options; a repeated query name becomes a list."""
    if not values:
        return None
    found: dict[str, Any] = {}
    for item in values:
        name, sep, value = item.partition(separator)
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME{separator}VALUE, got {item!r}", param_hint=option)
        name = name.strip()
        if option == "--query" and name in found:
            previous = found[name]
            found[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            found[name] = value.strip() if option == "--header" else value
    return found


Method = Annotated[str, typer.Argument(help="HTTP method: GET, POST, PUT, PATCH, DELETE, ...")]
ProviderPath = Annotated[str, typer.Argument(help="Path on the provider's API, e.g. /v1/customers.")]
QueryPairs = Annotated[list[str] | None, typer.Option("--query", "-q", help="NAME=VALUE (repeat).")]
HeaderPairs = Annotated[list[str] | None, typer.Option("--header", "-H", help="NAME: VALUE (repeat).")]
IdempotencyKey = Annotated[
    str | None, typer.Option("--idempotency-key", help="Sent as Idempotency-Key (allows retrying POST).")
]
MaxAttempts = Annotated[int | None, typer.Option("--max-attempts", help="1 to 5 (default 3).")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Seconds per attempt.")]


def _status_line(status: int, duration_ms: float | None, attempts: int | None, request_id: str | None) -> str:
    """``HTTP <status> in <ms> ms, <n> attempt(s), request <id>``: the first line of a provider's
    answer as ``connections proxy`` and ``connections forward`` print it."""
    line = f"HTTP {status}"
    if duration_ms is not None:
        line += f" in {duration_ms:.0f} ms"
    if attempts is not None:
        line += f", {attempts} attempt(s)"
    return f"{line}, request {request_id or '-'}"


def _echo_data(data: Any) -> None:
    """A body read as JSON (a JSON string as its text), indented."""
    typer.echo(data if isinstance(data, str) else json.dumps(data, indent=2))


@client_command(connections_app, "proxy")
def connections_proxy(
    conn: Connection,
    connection_id: ConnectionArg,
    method: Method,
    path: ProviderPath,
    query: QueryPairs = None,
    header: HeaderPairs = None,
    body: Annotated[str | None, typer.Option("--body", help="A JSON body.")] = None,
    idempotency_key: IdempotencyKey = None,
    max_attempts: MaxAttempts = None,
    timeout: Timeout = None,
) -> None:
    """Call the provider through the connection (credentials injected by Interlink) and print
    its answer: the status line and the body, or the whole envelope with --json."""
    json_body: Any = NOT_GIVEN
    if body is not None:
        try:
            json_body = json.loads(body)
        except ValueError as exc:
            raise typer.BadParameter(f"not JSON: {exc}", param_hint="--body") from None
    answer = api_call(
        conn,
        lambda client: client.connections.proxy(
            connection_id,
            method,
            path,
            query=_pairs(query, "=", "--query"),
            headers=_pairs(header, ":", "--header"),
            json=json_body,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts,
            timeout_seconds=timeout,
        ),
    )
    if conn.as_json:
        _print_json(answer)
        return
    typer.echo(_status_line(answer.status, answer.duration_ms, answer.attempts, answer.request_id))
    if answer.data is not None:
        _echo_data(answer.data)
    elif answer.body_base64:
        typer.echo(f"({len(answer.body_base64)} base64 characters of binary body; use --json)")
    if not answer.ok:
        raise typer.Exit(1)


def _forwarded_body(answer: ForwardedResponse) -> None:
    """The body of a forwarded answer: indented when it is JSON, as text when it decodes, else
    its size (``<N bytes of binary content>``)."""
    if not answer.content:
        return
    if answer.content_type == "application/json" or answer.content_type.endswith("+json"):
        try:
            _echo_data(answer.json())
            return
        except ValueError:
            pass
    text = answer.text
    if "\ufffd" in text or "\x00" in text:
        typer.echo(f"<{len(answer.content)} bytes of binary content>")
    else:
        typer.echo(text)


@client_command(connections_app, "forward", json_option=False)
def connections_forward(
    conn: Connection,
    connection_id: ConnectionArg,
    method: Method,
    path: ProviderPath,
    query: QueryPairs = None,
    header: HeaderPairs = None,
    body: Annotated[str | None, typer.Option("--body", help="The body, sent as it is.")] = None,
    content_type: Annotated[
        str | None,
        typer.Option(
            "--content-type", help="Content-Type of --body (default application/json when a body is given)."
        ),
    ] = None,
    idempotency_key: IdempotencyKey = None,
    max_attempts: MaxAttempts = None,
    timeout: Timeout = None,
    include: Annotated[
        bool, typer.Option("--include", "-i", help="Print the answer's headers after the status line.")
    ] = False,
) -> None:
    """Call the provider through the connection as you would call it yourself (the passthrough
    form: credentials injected by Interlink) and print its answer as it came: the status line
    (with --include the headers too) and the body. Exits 1 when the provider's status is not 2xx."""
    if not path.startswith("/"):
        raise typer.BadParameter("must start with '/'", param_hint="PATH")
    headers = _pairs(header, ":", "--header") or {}
    if body is not None and (content_type or not any(n.lower() == "content-type" for n in headers)):
        headers = {n: v for n, v in headers.items() if n.lower() != "content-type"}
        headers["Content-Type"] = content_type or "application/json"
    answer = api_call(
        conn,
        lambda client: client.connections.forward(
            connection_id,
            method,
            path,
            query=_pairs(query, "=", "--query"),
            headers=headers,
            content=body,
            idempotency_key=idempotency_key,
            max_attempts=max_attempts,
            timeout_seconds=timeout,
        ),
    )
    typer.echo(_status_line(answer.status, answer.duration_ms, answer.attempts, answer.request_id))
    if include:
        for name, value in answer.headers.multi_items():
            typer.echo(f"{name}: {value}")
        typer.echo("")
    _forwarded_body(answer)
    if not answer.ok:
        raise typer.Exit(1)
