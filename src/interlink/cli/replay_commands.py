"""Client commands: ``interlink replays ...`` through the SDK.

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``;
API errors exit 1, usage errors exit 2).
"""

from __future__ import annotations

import uuid
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
    _fail,
    _list_output,
    _print_json,
    _show,
    _table,
    _when,
)
from interlink.client._base import DEFAULT_BASE_URL
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


@replays_app.command("create")
def replays_create(
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
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Replay deliveries (needs webhooks:write): --delivery ID | --event ID [--endpoint ID ...] |
    --endpoint ID --since T --until T [--status S ...]."""
    conn = Connection(url, api_key, tenant, as_json)
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
    with _api(conn) as client:
        replay = client.replays.create(
            rid,
            delivery_id=delivery,
            event_id=event,
            endpoint_ids=endpoints if event and endpoints else None,
            endpoint_id=endpoints[0] if range_form else None,
            since=start,
            until=end,
            statuses=status or None,
        )
    if replay.created is False:
        title = f"Replay {replay.id} was already made with request id {replay.request_id}"
    else:
        title = (
            f"Replay {replay.id}: {replay.delivery_count} delivery(ies) queued"
            f" ({replay.created_count} new), {replay.skipped_count} skipped"
        )
    _print_replay(conn, replay, title)


@replays_app.command("list")
def replays_list(
    limit: Limit = 50,
    after: After = None,
    every: All = False,
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """Replays of the tenant, newest first (needs webhooks:read)."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        fetched = _collect(
            every,
            lambda: client.replays.list(limit=limit, after=after),
            lambda: client.replays.iter_all(page_size=limit),
        )
    _list_output(conn, fetched, REPLAY_COLUMNS, "no replays")


@replays_app.command("show")
def replays_show(
    replay_id: Annotated[str, typer.Argument(help="Replay id (rpl_...).")],
    url: Url = DEFAULT_BASE_URL,
    api_key: ApiKey = "",
    tenant: Tenant = None,
    as_json: AsJson = False,
) -> None:
    """One replay: what it requeued or created, and what it skipped and why."""
    conn = Connection(url, api_key, tenant, as_json)
    with _api(conn) as client:
        replay = client.replays.get(replay_id)
    _print_replay(conn, replay)
