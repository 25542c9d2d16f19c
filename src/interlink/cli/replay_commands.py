"""Client commands: ``interlink replays ...`` through the SDK.

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``;
API errors exit 1, usage errors exit 2).
"""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    Paging,
    _fail,
    _print_json,
    _show,
    _table,
    _when,
    api_call,
    client_command,
    print_pages,
)
from interlink.core.enums import DeliveryStatus
from interlink.webhooks.replay_schemas import WebhookReplayInfo

replays_app = typer.Typer(
    help="Send deliveries again: one delivery, one event, or an endpoint's failures in a time range.",
    no_args_is_help=True,
)

REPLAY_COLUMNS: list[Column] = [
    ("id", lambda r: r.id),
    ("request id", lambda r: r.request_id),
    ("kind", lambda r: r.kind),
    (
        "target",
        lambda r: r.request.get("deliveryId") or r.request.get("eventId") or r.request.get("endpointId"),
    ),
    ("requeued", lambda r: r.delivery_count),
    ("created", lambda r: r.created_count),
    ("skipped", lambda r: r.skipped_count),
    ("at", lambda r: r.created_at),
]
SKIP_COLUMNS: list[Column] = [
    ("endpoint", lambda s: s.endpoint_id),
    ("event", lambda s: s.event_id),
    ("delivery", lambda s: s.delivery_id),
    ("reason", lambda s: s.reason),
]


def _print_replay(conn: Connection, replay: WebhookReplayInfo, title: str | None = None) -> None:
    if conn.as_json:
        _print_json(replay)
        return
    if title:
        typer.echo(title)
    _show(replay, exclude={"delivery_ids", "skipped", "created"})
    if replay.delivery_ids:
        typer.echo("Deliveries: " + " ".join(replay.delivery_ids))
    if replay.skipped:
        _table(replay.skipped, SKIP_COLUMNS, "")


@client_command(replays_app, "create")
def replays_create(
    conn: Connection,
    delivery: Annotated[
        str | None, typer.Option("--delivery", help="Resend this delivery (del_...).")
    ] = None,
    event: Annotated[
        str | None, typer.Option("--event", help="Resend this event (evt_...) to every matching endpoint.")
    ] = None,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            help="With --event: only to this endpoint (repeat). With --since/--until: the endpoint "
            "whose failed deliveries to recover.",
        ),
    ] = None,
    since: Annotated[str | None, typer.Option(help="Events created at or after (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Events created before (ISO 8601).")] = None,
    status: Annotated[
        list[DeliveryStatus] | None,
        typer.Option("--status", help="With --since/--until: states to recover (repeat; default FAILED)."),
    ] = None,
    request_id: Annotated[
        str | None,
        typer.Option(
            "--request-id", help="Idempotency id; the same id returns the first replay (default: new)."
        ),
    ] = None,
) -> None:
    """Replay deliveries (needs webhooks:write): --delivery ID | --event ID [--endpoint ID ...] |
    --endpoint ID --since T --until T [--status S ...]."""
    endpoints = endpoint or []
    chosen = [name for name, value in (("--delivery", delivery), ("--event", event)) if value]
    if len(chosen) > 1:
        _fail("give only one of --delivery, --event, or --endpoint with --since/--until", code=2)
    if not chosen and not endpoints:
        _fail("give --delivery ID, --event ID, or --endpoint ID with --since and --until", code=2)
    if delivery and (endpoints or since or until or status):
        _fail("--delivery takes no --endpoint, --since, --until or --status", code=2)
    if event and (since or until or status):
        _fail("--event takes no --since, --until or --status", code=2)
    range_form = not chosen
    if range_form and len(endpoints) != 1:
        _fail("a time-range replay takes exactly one --endpoint", code=2)
    if range_form and (since is None or until is None):
        _fail("a time-range replay needs --since and --until", code=2)
    start, end = _when(since, "--since"), _when(until, "--until")
    rid = request_id or f"cli-{uuid.uuid4().hex}"
    replay = api_call(
        conn,
        lambda client: client.replays.create(
            rid,
            delivery_id=delivery,
            event_id=event,
            endpoint_ids=endpoints if event and endpoints else None,
            endpoint_id=endpoints[0] if range_form else None,
            since=start,
            until=end,
            statuses=status or None,
        ),
    )
    if replay.created is False:
        title = f"Replay {replay.id} was already made with request id {replay.request_id}"
    else:
        title = (
            f"Replay {replay.id}: {replay.delivery_count} delivery(ies) queued"
            f" ({replay.created_count} new), {replay.skipped_count} skipped"
        )
    _print_replay(conn, replay, title)


@client_command(replays_app, "list", paged=True)
def replays_list(conn: Connection, paging: Paging) -> None:
    """Replays of the tenant, newest first (needs webhooks:read)."""
    print_pages(conn, paging, lambda client: client.replays, REPLAY_COLUMNS, "no replays")


@client_command(replays_app, "show")
def replays_show(
    conn: Connection,
    replay_id: Annotated[str, typer.Argument(help="Replay id (rpl_...).")],
) -> None:
    """One replay: what it requeued or created, and what it skipped and why."""
    replay = api_call(conn, lambda client: client.replays.get(replay_id))
    _print_replay(conn, replay)
