"""Client commands: ``interlink inbound-sources ...`` through the SDK.

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``;
API errors exit 1, usage errors exit 2). A signing secret is printed only by ``create`` and
``rotate-secret``; pass the provider's secret with ``--secret`` or ``INTERLINK_INBOUND_SECRET``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from interlink.cli.client_commands import AllowIps
from interlink.cli.client_common import (
    Column,
    Connection,
    Paging,
    _metadata,
    _print_json,
    _show,
    api_call,
    client_command,
    json_or,
    print_pages,
)
from interlink.client._base import NOT_GIVEN

inbound_sources_app = typer.Typer(
    help="Where providers post webhooks (/v1/inbound/{id}): signature scheme, secrets, limits.",
    no_args_is_help=True,
)

SOURCE_COLUMNS: list[Column] = [
    ("id", lambda s: s.id),
    ("name", lambda s: s.name),
    ("scheme", lambda s: s.scheme),
    ("enabled", lambda s: s.enabled),
    ("connection", lambda s: s.connection_id or ""),
    ("receive path", lambda s: s.receive_path),
    ("created", lambda s: s.created_at),
]
SourceArg = Annotated[str, typer.Argument(help="Inbound source id (isrc_...).")]
Secret = Annotated[
    str | None,
    typer.Option(
        "--secret",
        envvar="INTERLINK_INBOUND_SECRET",
        help="The signing secret the provider issued (generated when absent).",
        show_default=False,
    ),
]


@client_command(inbound_sources_app, "create")
def sources_create(
    conn: Connection,
    name: Annotated[str, typer.Argument(help="A name for the source, e.g. 'stripe live'.")],
    scheme: Annotated[str, typer.Option("--scheme", help="standard, stripe, github, shopify or hmac.")],
    secret: Secret = None,
    connection: Annotated[
        str | None, typer.Option("--connection", help="A connection id (conn_...).")
    ] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    options: Annotated[
        str | None,
        typer.Option("--options", help='hmac scheme options as JSON, e.g. \'{"header": "X-Signature"}\'.'),
    ] = None,
    tolerance: Annotated[
        int | None, typer.Option("--tolerance", min=1, help="Timestamp tolerance (s).")
    ] = None,
    allow_ip: AllowIps = None,
    max_body_bytes: Annotated[int | None, typer.Option("--max-body-bytes", min=64)] = None,
    event_type: Annotated[
        str | None,
        typer.Option(
            "--event-type", help='JSON, e.g. \'{"from": "header", "field": "X-Topic", "prefix": "acme."}\'.'
        ),
    ] = None,
    dedupe: Annotated[
        str | None,
        typer.Option(
            "--dedupe", help='JSON like --event-type (body or header), or "none" to turn dedupe off.'
        ),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
) -> None:
    """Create a source (needs webhooks:write); prints its signing secret once."""
    dedupe_value: Any = NOT_GIVEN
    if dedupe is not None:
        dedupe_value = None if dedupe.lower() == "none" else _metadata(dedupe, "--dedupe")
    created = api_call(
        conn,
        lambda client: client.inbound_sources.create(
            name,
            scheme,
            secret=secret,
            connection_id=connection,
            description=description,
            scheme_options=_metadata(options, "--options"),
            tolerance_seconds=tolerance,
            ip_allowlist=allow_ip,
            max_body_bytes=max_body_bytes,
            event_type=_metadata(event_type, "--event-type"),
            dedupe=dedupe_value,
            enabled=not disabled,
        ),
    )
    if conn.as_json:
        _print_json(created)
        return
    _show(created, f"Inbound source {created.id}", exclude={"signing_secret"})
    typer.echo(f"Signing secret ({created.signing_secret.secret_id}), shown only now:")
    typer.echo(created.signing_secret.secret)


@client_command(inbound_sources_app, "list", paged=True)
def sources_list(conn: Connection, paging: Paging) -> None:
    """Inbound sources of the tenant, newest first (needs webhooks:read)."""
    print_pages(conn, paging, lambda client: client.inbound_sources, SOURCE_COLUMNS, "no inbound sources")


@client_command(inbound_sources_app, "show")
def sources_show(conn: Connection, source_id: SourceArg) -> None:
    """One source's configuration (never its secrets)."""
    source = api_call(conn, lambda client: client.inbound_sources.get(source_id))
    json_or(conn, source, _show)


@client_command(inbound_sources_app, "update")
def sources_update(
    conn: Connection,
    source_id: SourceArg,
    name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    description: Annotated[str | None, typer.Option("--description")] = None,
    connection: Annotated[
        str | None, typer.Option("--connection", help="A connection id (conn_...).")
    ] = None,
    no_connection: Annotated[
        bool, typer.Option("--no-connection", help="Detach the source from its connection.")
    ] = False,
    options: Annotated[
        str | None, typer.Option("--options", help="hmac scheme options as JSON (replace the current ones).")
    ] = None,
    tolerance: Annotated[
        int | None, typer.Option("--tolerance", min=1, help="Timestamp tolerance (s).")
    ] = None,
    allow_ip: AllowIps = None,
    any_ip: Annotated[bool, typer.Option("--any-ip", help="Remove the IP allowlist.")] = False,
    max_body_bytes: Annotated[int | None, typer.Option("--max-body-bytes", min=64)] = None,
    event_type: Annotated[
        str | None, typer.Option("--event-type", help="JSON like create's, or \"default\" for the scheme's.")
    ] = None,
    dedupe: Annotated[
        str | None, typer.Option("--dedupe", help='JSON like create\'s, or "none" to turn dedupe off.')
    ] = None,
    enabled: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Accept requests, or answer 404.", show_default=False),
    ] = None,
) -> None:
    """Change a source (needs webhooks:write); only the options given change. The scheme cannot
    change, and the secret changes with rotate-secret."""
    for given, clear, option in [
        (connection, no_connection, "--connection"),
        (allow_ip, any_ip, "--allow-ip"),
    ]:
        if given is not None and clear:
            raise typer.BadParameter(f"{option} and its clearing option cannot be used together")
    fields: dict[str, Any] = {
        key: value
        for key, value in {
            "name": name,
            "description": description,
            "connection_id": connection,
            "scheme_options": _metadata(options, "--options"),
            "tolerance_seconds": tolerance,
            "ip_allowlist": allow_ip,
            "max_body_bytes": max_body_bytes,
            "enabled": enabled,
        }.items()
        if value is not None
    }
    if no_connection:
        fields["connection_id"] = None
    if any_ip:
        fields["ip_allowlist"] = None
    if event_type is not None:
        fields["event_type"] = (
            None if event_type.lower() == "default" else _metadata(event_type, "--event-type")
        )
    if dedupe is not None:
        fields["dedupe"] = None if dedupe.lower() == "none" else _metadata(dedupe, "--dedupe")
    if not fields:
        raise typer.BadParameter("give at least one option to change")
    changed = api_call(conn, lambda client: client.inbound_sources.update(source_id, **fields))
    json_or(conn, changed, _show)


@client_command(inbound_sources_app, "rotate-secret")
def sources_rotate_secret(
    conn: Connection,
    source_id: SourceArg,
    secret: Secret = None,
    overlap: Annotated[
        int | None,
        typer.Option("--overlap", min=0, help="Seconds older secrets keep verifying (default 86400)."),
    ] = None,
) -> None:
    """Add a signing secret (the provider's new one, or generated) and print it once."""
    rotated = api_call(
        conn,
        lambda client: client.inbound_sources.rotate_secret(
            source_id, secret=secret, overlap_seconds=overlap
        ),
    )
    if conn.as_json:
        _print_json(rotated)
        return
    until = (
        f"; older secrets verify until {rotated.previous_expires_at}" if rotated.previous_expires_at else ""
    )
    typer.echo(f"New signing secret {rotated.secret_id} for {source_id}{until}:")
    typer.echo(rotated.secret)


@client_command(inbound_sources_app, "delete", json_option=False)
def sources_delete(conn: Connection, source_id: SourceArg) -> None:
    """Delete a source: the receiver answers 404 for it from now on."""
    api_call(conn, lambda client: client.inbound_sources.delete(source_id))
    typer.echo(f"Deleted {source_id}")
