"""Client commands: ``interlink events ...`` and ``interlink deliveries ...`` through the SDK.

Same conventions as the other client commands: ``--url``/``INTERLINK_API_URL``,
``--api-key``/``INTERLINK_API_KEY``, ``--tenant``/``INTERLINK_TENANT_ID``; a table, or JSON with
``--json``; API errors print the problem and exit 1, usage errors exit 2. ``--payload`` and
``--metadata`` take inline JSON or ``@path`` to read a file.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    Paging,
    _one,
    _print_json,
    _show,
    _table,
    _when,
    api_call,
    client_command,
    json_or_say,
    print_list,
    print_pages,
)
from interlink.cli.webhook_commands import _json_object
from interlink.core.enums import DeliveryStatus
from interlink.webhooks.delivery_schemas import EventInfo

events_app = typer.Typer(help="Send events to webhook endpoints and read them back.", no_args_is_help=True)
deliveries_app = typer.Typer(
    help="Inspect webhook deliveries and their attempts; retry a delivery.", no_args_is_help=True
)


class Priority(StrEnum):
    HIGH = "HIGH"
    NORMAL = "NORMAL"
    LOW = "LOW"


EVENT_COLUMNS: list[Column] = [
    ("id", lambda e: e.id),
    ("type", lambda e: e.type),
    ("priority", lambda e: e.priority),
    ("source", lambda e: e.source),
    ("idempotency key", lambda e: e.idempotency_key),
    ("created", lambda e: e.created_at),
]
BRIEF_COLUMNS: list[Column] = [
    ("delivery", lambda d: d.id),
    ("endpoint", lambda d: d.endpoint_id),
    ("status", lambda d: d.status),
]
DELIVERY_COLUMNS: list[Column] = [
    ("id", lambda d: d.id),
    ("event", lambda d: d.event_id),
    ("endpoint", lambda d: d.endpoint_id),
    ("status", lambda d: d.status),
    ("attempts", lambda d: d.attempts),
    ("last", lambda d: d.last_status_code or d.last_error_class),
    ("next attempt", lambda d: d.next_attempt_at),
    ("created", lambda d: d.created_at),
]
ATTEMPT_COLUMNS: list[Column] = [
    ("id", lambda a: a.id),
    ("#", lambda a: a.attempt_number),
    ("started", lambda a: a.started_at),
    ("ms", lambda a: None if a.duration_ms is None else round(a.duration_ms)),
    ("status", lambda a: a.response_status),
    ("error", lambda a: f"{a.error_class}: {a.error_message}" if a.error_class else None),
    ("ok", lambda a: "yes" if a.succeeded else "no"),
]

EventArg = Annotated[str, typer.Argument(help="Event id (evt_...).")]
DeliveryArg = Annotated[str, typer.Argument(help="Delivery id (del_...).")]


def _print_event(conn: Connection, event: EventInfo, title: str | None = None) -> None:
    """The event's fields, then its deliveries as a table (or everything as JSON)."""
    if conn.as_json:
        _print_json(event)
        return
    if title:
        typer.echo(title)
    _show(event, exclude={"deliveries", "created"})
    if event.deliveries is not None:
        _table(event.deliveries, BRIEF_COLUMNS, "no deliveries: no enabled endpoint matched")


# ---- events --------------------------------------------------------------------------------------


@client_command(events_app, "send")
def events_send(
    conn: Connection,
    event_type: Annotated[str, typer.Option("--type", help="Event type, e.g. invoice.paid.")],
    payload: Annotated[str, typer.Option("--payload", help="JSON object (or @file).")],
    endpoint: Annotated[
        list[str] | None, typer.Option("--endpoint", help="Deliver only to this endpoint; repeat.")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="The same key within 24 hours returns the first event."),
    ] = None,
    priority: Annotated[Priority | None, typer.Option(help="Due deliveries go out HIGH first.")] = None,
    immediate: Annotated[
        bool, typer.Option("--immediate", help="Make the first attempt before answering.")
    ] = False,
    metadata: Annotated[str | None, typer.Option("--metadata", help="JSON object (or @file).")] = None,
) -> None:
    """Send an event to every matching endpoint (needs events:write)."""
    data = _json_object(payload, "--payload") or {}
    meta = _json_object(metadata, "--metadata")
    event = api_call(
        conn,
        lambda client: client.events.send(
            event_type,
            data,
            endpoint_ids=endpoint or None,
            idempotency_key=idempotency_key,
            priority=priority.value if priority else None,
            immediate=immediate,
            metadata=meta,
        ),
    )
    title = (
        f"Accepted event {event.id}"
        if event.created is not False
        else f"Event {event.id} was already accepted with this idempotency key"
    )
    _print_event(conn, event, title)


@client_command(events_app, "list", paged=True)
def events_list(
    conn: Connection,
    paging: Paging,
    event_type: Annotated[str | None, typer.Option("--type", help="Only events of this type.")] = None,
) -> None:
    """Events of the tenant, newest first."""
    print_pages(conn, paging, lambda client: client.events, EVENT_COLUMNS, "no events", event_type=event_type)


@client_command(events_app, "show")
def events_show(conn: Connection, event_id: EventArg) -> None:
    """Show one event with its deliveries."""
    event = api_call(conn, lambda client: client.events.get(event_id))
    _print_event(conn, event)


# ---- deliveries ----------------------------------------------------------------------------------


@client_command(deliveries_app, "list", paged=True)
def deliveries_list(
    conn: Connection,
    paging: Paging,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="Only to this endpoint.")] = None,
    event: Annotated[str | None, typer.Option("--event", help="Only of this event.")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="Only of events of this type.")] = None,
    status: Annotated[DeliveryStatus | None, typer.Option(help="Only in this state.")] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO 8601).")] = None,
) -> None:
    """Deliveries of the tenant, newest first (needs webhooks:read)."""
    start, end = _when(since, "--since"), _when(until, "--until")
    print_pages(
        conn,
        paging,
        lambda client: client.deliveries,
        DELIVERY_COLUMNS,
        "no deliveries",
        endpoint_id=endpoint,
        event_id=event,
        status=status,
        since=start,
        until=end,
        event_type=event_type,
    )


@client_command(deliveries_app, "show")
def deliveries_show(conn: Connection, delivery_id: DeliveryArg) -> None:
    """Show one delivery: its state, attempts so far and next attempt."""
    found = api_call(conn, lambda client: client.deliveries.get(delivery_id))
    _one(conn, found)


@client_command(deliveries_app, "attempts", paged=True)
def deliveries_attempts(conn: Connection, paging: Paging, delivery_id: DeliveryArg) -> None:
    """Attempts of one delivery, newest first (--json for headers and response bodies)."""
    print_list(
        conn,
        paging,
        lambda client: client.deliveries.attempts(delivery_id, limit=paging.limit, after=paging.after),
        lambda client: client.deliveries.iter_attempts(delivery_id, page_size=paging.limit),
        ATTEMPT_COLUMNS,
        "no attempts yet",
    )


@client_command(deliveries_app, "retry")
def deliveries_retry(conn: Connection, delivery_id: DeliveryArg) -> None:
    """Requeue a delivery now (needs webhooks:write; audited)."""
    changed = api_call(conn, lambda client: client.deliveries.retry(delivery_id))
    json_or_say(conn, changed, f"Requeued {changed.id} ({changed.status.value})")
