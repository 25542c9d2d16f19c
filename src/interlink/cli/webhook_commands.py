"""Client commands: ``interlink endpoints ...`` and ``interlink event-types ...`` through the SDK.

Same conventions as the other client commands: ``--url``/``INTERLINK_API_URL``,
``--api-key``/``INTERLINK_API_KEY``, ``--tenant``/``INTERLINK_TENANT_ID``; a table, or JSON with
``--json``; API errors print the problem and exit 1, usage errors exit 2. JSON options
(``--filter``, ``--schema``, ``--payload``, ...) take inline JSON or ``@path`` to read a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    Metadata,
    Paging,
    _metadata,
    _one,
    _print_json,
    api_call,
    client_command,
    json_or_say,
    print_pages,
)
from interlink.core.enums import DeliveryChannel, RetentionPolicy
from interlink.webhooks.schemas import EndpointSecret

endpoints_app = typer.Typer(help="Manage webhook endpoints and their signing secrets.", no_args_is_help=True)
event_types_app = typer.Typer(help="Manage the event type registry.", no_args_is_help=True)

ENDPOINT_COLUMNS: list[Column] = [
    ("id", lambda e: e.id),
    ("url", lambda e: e.url),
    ("channel", lambda e: e.channel),
    ("enabled", lambda e: "yes" if e.enabled else f"no ({e.disabled_reason})"),
    ("event types", lambda e: e.event_types or "all"),
    ("failures", lambda e: e.consecutive_failures),
    ("created", lambda e: e.created_at),
]
EVENT_TYPE_COLUMNS: list[Column] = [
    ("id", lambda t: t.id),
    ("name", lambda t: t.name),
    ("deprecated", lambda t: "yes" if t.deprecated else "no"),
    ("schema", lambda t: "yes" if t.json_schema else "-"),
    ("description", lambda t: t.description),
]
KEEP_PRIVATE = "(keep it private)"

EventTypeOpt = Annotated[
    list[str] | None, typer.Option("--event-type", help="Subscribe to this type; repeat. None: every type.")
]
Channel = Annotated[DeliveryChannel | None, typer.Option(help="WEBHOOK (default), SLACK or EMAIL.")]
ChannelConfig = Annotated[str | None, typer.Option("--channel-config", help="JSON object (or @file).")]
EmailTo = Annotated[list[str] | None, typer.Option("--email-to", help="EMAIL recipient; repeat.")]
Subject = Annotated[str | None, typer.Option("--subject-template", help="EMAIL subject template.")]
Description = Annotated[str | None, typer.Option(help="What the endpoint is for.")]
FilterOpt = Annotated[
    str | None, typer.Option("--filter", help='JSON filter, e.g. \'{"type": "a.b"}\' (or @file).')
]
TransformOpt = Annotated[str | None, typer.Option("--transformation", help="JSONata template (or @file).")]
HeaderOpt = Annotated[
    list[str] | None, typer.Option("--header", help="'Name: value' request header; repeat.")
]
Timeout = Annotated[
    float | None, typer.Option("--timeout", min=1, max=60, help="Seconds per attempt (1–60).")
]
Retry = Annotated[list[int] | None, typer.Option("--retry", min=1, help="Seconds before each retry; repeat.")]
RateLimit = Annotated[float | None, typer.Option("--rate-limit", help="Most deliveries per second.")]
InFlight = Annotated[
    int | None, typer.Option("--max-in-flight", min=1, max=1000, help="Concurrent deliveries.")
]
BatchOpt = Annotated[
    str | None,
    typer.Option("--batch", help='Batch delivery: \'{"maxCount":…,"maxBytes":…,"maxWaitSeconds":…}\'.'),
]
Retention = Annotated[RetentionPolicy | None, typer.Option(help="How long payloads and attempts are kept.")]
EndpointArg = Annotated[str, typer.Argument(help="Endpoint id (ep_...).")]
EventTypeArg = Annotated[str, typer.Argument(help="Event type id (etp_...) or name.")]


def _read(value: str) -> str:
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {value[1:]}: {exc.strerror}") from None
    return value


def _json_object(value: str | None, option: str) -> dict[str, Any] | None:
    if value is None:
        return None
    return _metadata(_read(value), option)


def _headers(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out: dict[str, str] = {}
    for item in values:
        name, sep, text = item.partition(":")
        if not sep or not name.strip():
            raise typer.BadParameter("expected 'Name: value'", param_hint="--header")
        out[name.strip()] = text.strip()
    return out


def _channel_config(
    config: str | None, email_to: list[str] | None, subject: str | None
) -> dict[str, Any] | None:
    parsed = _json_object(config, "--channel-config")
    if email_to or subject:
        parsed = dict(parsed or {})
        if email_to:
            parsed["to"] = list(email_to)
        if subject:
            parsed["subjectTemplate"] = subject
    return parsed


def _endpoint_settings(
    *,
    channel_config: str | None,
    email_to: list[str] | None,
    subject_template: str | None,
    event_type: list[str] | None,
    description: str | None,
    filter_: str | None,
    transformation: str | None,
    header: list[str] | None,
    timeout: float | None,
    retry: list[int] | None,
    rate_limit: float | None,
    max_in_flight: int | None,
    batch: str | None,
    retention: RetentionPolicy | None,
    metadata: str | None,
) -> dict[str, Any]:
    """The SDK keyword arguments for the endpoint options ``create`` and ``update`` share, parsed
    (JSON or ``@file``, headers, channel config); an option not given is left out."""
    settings: dict[str, Any] = {
        "channel_config": _channel_config(channel_config, email_to, subject_template),
        "event_types": event_type,
        "description": description,
        "filter": _json_object(filter_, "--filter"),
        "transformation": _read(transformation) if transformation else None,
        "headers": _headers(header),
        "timeout_seconds": timeout,
        "retry_schedule": retry,
        "rate_limit_per_second": rate_limit,
        "max_in_flight": max_in_flight,
        "batch_config": _json_object(batch, "--batch"),
        "retention": retention,
        "metadata": _metadata(metadata),
    }
    return {k: v for k, v in settings.items() if v is not None}


def _print_secret(conn: Connection, secret: EndpointSecret, title: str) -> None:
    if conn.as_json:
        _print_json(secret)
        typer.echo(f"interlink: 'key' is the signing secret {KEEP_PRIVATE}", err=True)
        return
    typer.echo(f"{title} {secret.secret_id} of {secret.endpoint_id}, created {secret.created_at.isoformat()}")
    if secret.previous_expires_at is not None:
        typer.echo(f"The previous secret keeps signing until {secret.previous_expires_at.isoformat()}.")
    typer.echo(f"Signing secret {KEEP_PRIVATE}: {secret.key}")


# ---- endpoints -----------------------------------------------------------------------------------


@client_command(endpoints_app, "create")
def endpoints_create(
    conn: Connection,
    target: Annotated[str | None, typer.Argument(metavar="URL", help="Target URL (not for EMAIL).")] = None,
    channel: Channel = None,
    channel_config: ChannelConfig = None,
    email_to: EmailTo = None,
    subject_template: Subject = None,
    event_type: EventTypeOpt = None,
    description: Description = None,
    filter_: FilterOpt = None,
    transformation: TransformOpt = None,
    header: HeaderOpt = None,
    timeout: Timeout = None,
    retry: Retry = None,
    rate_limit: RateLimit = None,
    max_in_flight: InFlight = None,
    batch: BatchOpt = None,
    retention: Retention = None,
    metadata: Metadata = None,
) -> None:
    """Create an endpoint. Read its signing secret with `interlink endpoints secret ID`."""
    settings = _endpoint_settings(
        channel_config=channel_config,
        email_to=email_to,
        subject_template=subject_template,
        event_type=event_type,
        description=description,
        filter_=filter_,
        transformation=transformation,
        header=header,
        timeout=timeout,
        retry=retry,
        rate_limit=rate_limit,
        max_in_flight=max_in_flight,
        batch=batch,
        retention=retention,
        metadata=metadata,
    )
    made = api_call(
        conn,
        lambda client: client.endpoints.create(
            target,
            channel=channel or DeliveryChannel.WEBHOOK,
            **settings,
        ),
    )
    _one(conn, made, f"Created endpoint {made.id}")


@client_command(endpoints_app, "list", paged=True)
def endpoints_list(
    conn: Connection,
    paging: Paging,
    enabled: Annotated[
        bool | None, typer.Option("--enabled/--disabled", help="Only enabled or only disabled endpoints.")
    ] = None,
) -> None:
    """Endpoints of the tenant, newest first."""
    print_pages(
        conn, paging, lambda client: client.endpoints, ENDPOINT_COLUMNS, "no endpoints", enabled=enabled
    )


@client_command(endpoints_app, "show")
def endpoints_show(conn: Connection, endpoint_id: EndpointArg) -> None:
    """Show one endpoint (never its signing secret)."""
    found = api_call(conn, lambda client: client.endpoints.get(endpoint_id))
    _one(conn, found)


@client_command(endpoints_app, "update")
def endpoints_update(
    conn: Connection,
    endpoint_id: EndpointArg,
    target: Annotated[str | None, typer.Option("--target", help="New target URL.")] = None,
    channel: Channel = None,
    channel_config: ChannelConfig = None,
    email_to: EmailTo = None,
    subject_template: Subject = None,
    event_type: EventTypeOpt = None,
    all_types: Annotated[bool, typer.Option("--all-event-types", help="Subscribe to every type.")] = False,
    description: Description = None,
    filter_: FilterOpt = None,
    no_filter: Annotated[bool, typer.Option("--no-filter", help="Remove the filter.")] = False,
    transformation: TransformOpt = None,
    no_transformation: Annotated[bool, typer.Option("--no-transformation", help="Remove it.")] = False,
    header: HeaderOpt = None,
    no_headers: Annotated[bool, typer.Option("--no-headers", help="Remove every custom header.")] = False,
    timeout: Timeout = None,
    retry: Retry = None,
    default_retry: Annotated[bool, typer.Option("--default-retry", help="Use the default schedule.")] = False,
    rate_limit: RateLimit = None,
    no_rate_limit: Annotated[bool, typer.Option("--no-rate-limit", help="Remove the rate limit.")] = False,
    max_in_flight: InFlight = None,
    batch: BatchOpt = None,
    no_batch: Annotated[bool, typer.Option("--no-batch", help="Deliver events one by one.")] = False,
    retention: Retention = None,
    metadata: Metadata = None,
) -> None:
    """Change an endpoint; only the options given change."""
    for option, clear, name in [
        (filter_, no_filter, "--filter"),
        (transformation, no_transformation, "--transformation"),
        (header, no_headers, "--header"),
        (retry, default_retry, "--retry"),
        (rate_limit, no_rate_limit, "--rate-limit"),
        (batch, no_batch, "--batch"),
        (event_type, all_types, "--event-type"),
    ]:
        if option is not None and clear:
            raise typer.BadParameter(f"{name} and its clearing option cannot be used together")
    changes: dict[str, Any] = {"url": target, "channel": channel}
    given: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    given.update(
        _endpoint_settings(
            channel_config=channel_config,
            email_to=email_to,
            subject_template=subject_template,
            event_type=event_type,
            description=description,
            filter_=filter_,
            transformation=transformation,
            header=header,
            timeout=timeout,
            retry=retry,
            rate_limit=rate_limit,
            max_in_flight=max_in_flight,
            batch=batch,
            retention=retention,
            metadata=metadata,
        )
    )
    if channel is DeliveryChannel.EMAIL and target is None:
        given["url"] = None
    cleared: list[tuple[bool, str, Any]] = [
        (no_filter, "filter", None),
        (no_transformation, "transformation", None),
        (no_headers, "headers", {}),
        (default_retry, "retry_schedule", None),
        (no_rate_limit, "rate_limit_per_second", None),
        (no_batch, "batch_config", None),
        (all_types, "event_types", []),
    ]
    for flag, name, value in cleared:
        if flag:
            given[name] = value
    if not given:
        raise typer.BadParameter("nothing to change: pass at least one option")
    changed = api_call(conn, lambda client: client.endpoints.update(endpoint_id, **given))
    _one(conn, changed, f"Updated endpoint {changed.id}")


@client_command(endpoints_app, "disable")
def endpoints_disable(
    conn: Connection,
    endpoint_id: EndpointArg,
    reason: Annotated[str | None, typer.Option(help="Why (shown on the endpoint and audited).")] = None,
) -> None:
    """Stop deliveries to an endpoint."""
    changed = api_call(conn, lambda client: client.endpoints.disable(endpoint_id, reason=reason))
    json_or_say(conn, changed, f"Disabled {changed.id}: {changed.disabled_reason}")


@client_command(endpoints_app, "enable")
def endpoints_enable(conn: Connection, endpoint_id: EndpointArg) -> None:
    """Resume deliveries (clears the failure counters)."""
    changed = api_call(conn, lambda client: client.endpoints.enable(endpoint_id))
    json_or_say(conn, changed, f"Enabled {changed.id}")


@client_command(endpoints_app, "delete", json_option=False)
def endpoints_delete(conn: Connection, endpoint_id: EndpointArg) -> None:
    """Delete an endpoint: it stops receiving events and its secrets stop signing."""
    api_call(conn, lambda client: client.endpoints.delete(endpoint_id))
    typer.echo(f"Deleted {endpoint_id}")


@client_command(endpoints_app, "secret")
def endpoints_secret(conn: Connection, endpoint_id: EndpointArg) -> None:
    """Print the current signing secret (needs webhooks:write; every read is audited)."""
    secret = api_call(conn, lambda client: client.endpoints.get_secret(endpoint_id))
    _print_secret(conn, secret, "Current secret")


@client_command(endpoints_app, "rotate-secret")
def endpoints_rotate_secret(conn: Connection, endpoint_id: EndpointArg) -> None:
    """Create a new signing secret; the previous one keeps signing for 24 hours."""
    secret = api_call(conn, lambda client: client.endpoints.rotate_secret(endpoint_id))
    _print_secret(conn, secret, "New secret")


@client_command(endpoints_app, "test-transformation", json_option=False)
def endpoints_test_transformation(
    conn: Connection,
    endpoint_id: EndpointArg,
    event_type: Annotated[str, typer.Option("--event-type", help="Type of the sample event.")],
    payload: Annotated[str, typer.Option("--payload", help="Sample payload: JSON object (or @file).")],
    template: Annotated[str | None, typer.Option(help="Template to try (default: the endpoint's).")] = None,
) -> None:
    """Print what a transformation makes of a sample event (as JSON)."""
    sample = _json_object(payload, "--payload") or {}
    result = api_call(
        conn,
        lambda client: client.endpoints.test_transformation(
            endpoint_id, sample, event_type, template=_read(template) if template else None
        ),
    )
    typer.echo(json.dumps(result.output, indent=2))


@client_command(endpoints_app, "test")
def endpoints_test(
    conn: Connection,
    endpoint_id: EndpointArg,
    payload: Annotated[
        str | None, typer.Option("--payload", help="Test event data: JSON object (or @file).")
    ] = None,
) -> None:
    """Send a webhook.test event to this endpoint only and show the first attempt's outcome.

    Exits 1 when the attempt failed."""
    result = api_call(
        conn, lambda client: client.endpoints.test(endpoint_id, _json_object(payload, "--payload"))
    )
    if conn.as_json:
        _print_json(result)
    elif result.succeeded:
        typer.echo(
            f"Delivered {result.event_id} to {endpoint_id}: HTTP {result.response_status} "
            f"in {result.duration_ms} ms"
        )
    elif result.error_class is None:
        typer.echo(
            f"Queued {result.event_id} for {endpoint_id} ({result.status.value}): "
            "no attempt could be made now"
        )
    else:
        typer.echo(
            f"Test event {result.event_id} to {endpoint_id} failed ({result.error_class}): "
            f"{result.error_message}; status {result.status.value}"
        )
    if not result.succeeded:
        raise typer.Exit(code=1)


# ---- event types ---------------------------------------------------------------------------------

SchemaOpt = Annotated[str | None, typer.Option("--schema", help="JSON Schema object (or @file).")]


@client_command(event_types_app, "create")
def event_types_create(
    conn: Connection,
    name: Annotated[str, typer.Argument(help="Unique name, e.g. invoice.paid.")],
    description: Annotated[str | None, typer.Option(help="What the event means.")] = None,
    schema: SchemaOpt = None,
    deprecated: Annotated[bool, typer.Option("--deprecated", help="Register it as deprecated.")] = False,
) -> None:
    """Register an event type."""
    parsed = _json_object(schema, "--schema")
    made = api_call(
        conn,
        lambda client: client.event_types.create(
            name, description=description, schema=parsed, deprecated=deprecated
        ),
    )
    _one(conn, made, f"Created event type {made.id}")


@client_command(event_types_app, "list", paged=True)
def event_types_list(
    conn: Connection,
    paging: Paging,
    deprecated: Annotated[
        bool | None, typer.Option("--deprecated/--current", help="Only deprecated or only current types.")
    ] = None,
) -> None:
    """Event types of the tenant, newest first."""
    print_pages(
        conn,
        paging,
        lambda client: client.event_types,
        EVENT_TYPE_COLUMNS,
        "no event types",
        deprecated=deprecated,
    )


@client_command(event_types_app, "show")
def event_types_show(conn: Connection, event_type: EventTypeArg) -> None:
    """Show one event type."""
    found = api_call(conn, lambda client: client.event_types.get(event_type))
    _one(conn, found)


@client_command(event_types_app, "update")
def event_types_update(
    conn: Connection,
    event_type: EventTypeArg,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    schema: SchemaOpt = None,
    no_schema: Annotated[bool, typer.Option("--no-schema", help="Remove the schema.")] = False,
    deprecated: Annotated[
        bool | None, typer.Option("--deprecated/--undeprecated", help="Set or clear the deprecation flag.")
    ] = None,
) -> None:
    """Change an event type's description, schema or deprecation flag."""
    if schema is not None and no_schema:
        raise typer.BadParameter("use --schema or --no-schema, not both")
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = description
    if schema is not None:
        changes["schema"] = _json_object(schema, "--schema")
    if no_schema:
        changes["schema"] = None
    if deprecated is not None:
        changes["deprecated"] = deprecated
    if not changes:
        raise typer.BadParameter("nothing to change: pass at least one option")
    changed = api_call(conn, lambda client: client.event_types.update(event_type, **changes))
    _one(conn, changed, f"Updated event type {changed.id}")


@client_command(event_types_app, "deprecate")
def event_types_deprecate(conn: Connection, event_type: EventTypeArg) -> None:
    """Mark an event type deprecated (it keeps working)."""
    changed = api_call(conn, lambda client: client.event_types.deprecate(event_type))
    json_or_say(conn, changed, f"Deprecated {changed.name} ({changed.id})")
