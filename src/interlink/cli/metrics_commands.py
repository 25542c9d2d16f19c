"""Client commands for delivery metrics: ``interlink endpoints metrics ID`` and
``interlink webhooks metrics``, through the SDK.

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``);
``--since``/``--until`` take ISO 8601 times (UTC when no offset is given); the window defaults to
the last 24 hours and spans at most 90 days.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from interlink.cli.client_common import (
    Connection,
    _console,
    _print_json,
    _text,
    _when,
    api_call,
    client_command,
    json_or,
)
from interlink.cli.webhook_commands import EndpointArg, endpoints_app
from interlink.webhooks.metrics_schemas import DeliveryStats, WebhookDeliveryMetrics

webhooks_app = typer.Typer(help="Webhook views across the tenant (delivery metrics).", no_args_is_help=True)

Since = Annotated[
    str | None, typer.Option("--since", help="Window start, ISO 8601 (default: 24 hours before --until).")
]
Until = Annotated[str | None, typer.Option("--until", help="Window end, ISO 8601 (default: now).")]
Top = Annotated[int, typer.Option("--top", min=1, max=100, help="Endpoints to break down (busiest first).")]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f} %"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def _errors(stats: DeliveryStats) -> str:
    return ", ".join(f"{name} {count}" for name, count in stats.errors_by_class.items()) or "-"


def _summary(metrics: WebhookDeliveryMetrics) -> None:
    counts = metrics.deliveries
    scope = f"endpoint {metrics.endpoint_id}" if metrics.endpoint_id else f"tenant {metrics.tenant_id}"
    table = Table(title=f"Delivery metrics of {scope}", show_header=False, title_justify="left")
    table.add_column("metric", style="bold")
    table.add_column("value", overflow="fold")
    rows: list[tuple[str, Any]] = [
        ("window", f"{_text(metrics.since)} to {_text(metrics.until)}"),
        (
            "deliveries created",
            f"{counts.total} (delivered {counts.delivered}, failed {counts.failed}, pending "
            f"{counts.pending}, retrying {counts.retrying}, sending {counts.sending}, "
            f"cancelled {counts.cancelled})",
        ),
        ("success rate", _rate(metrics.success_rate)),
        ("attempts per delivery", _ratio(metrics.attempts_per_delivery)),
        ("attempts in window", metrics.attempts),
        (
            "latency p50 / p95 / p99",
            f"{_ms(metrics.p50_ms)} / {_ms(metrics.p95_ms)} / {_ms(metrics.p99_ms)}"
            f" ({metrics.latency_samples} samples)",
        ),
        ("throughput", f"{metrics.throughput_per_minute:.2f} attempts/min"),
        ("errors by class", _errors(metrics)),
        ("queue depth (now)", metrics.queue_depth),
        ("oldest waiting (now)", _age(metrics.oldest_pending_age_seconds)),
    ]
    for name, value in rows:
        table.add_row(name, Text(_text(value)))
    _console().print(table)


def _breakdown(metrics: WebhookDeliveryMetrics) -> None:
    if not metrics.endpoints:
        _console().print("no deliveries to any endpoint in the window")
        return
    table = Table(title="Busiest endpoints", title_justify="left")
    for header in (
        "endpoint",
        "url",
        "deliveries",
        "success",
        "att/deliv",
        "p50",
        "p95",
        "p99",
        "queue",
        "errors",
    ):
        table.add_column(header, overflow="fold")
    for e in metrics.endpoints:
        table.add_row(
            *(
                Text(v)
                for v in (
                    e.endpoint_id,
                    e.url or "-",
                    str(e.deliveries.total),
                    _rate(e.success_rate),
                    _ratio(e.attempts_per_delivery),
                    _ms(e.p50_ms),
                    _ms(e.p95_ms),
                    _ms(e.p99_ms),
                    str(e.queue_depth),
                    _errors(e),
                )
            )
        )
    _console().print(table)


@client_command(endpoints_app, "metrics")
def endpoint_metrics(
    conn: Connection,
    endpoint_id: EndpointArg,
    since: Since = None,
    until: Until = None,
) -> None:
    """Delivery metrics of one endpoint: success rate, attempts, latency, errors, queue (webhooks:read)."""
    start, end = _when(since, "--since"), _when(until, "--until")
    found = api_call(conn, lambda client: client.endpoints.metrics(endpoint_id, since=start, until=end))
    json_or(conn, found, _summary)


@client_command(webhooks_app, "metrics")
def webhook_metrics(conn: Connection, since: Since = None, until: Until = None, top: Top = 10) -> None:
    """Delivery metrics of the whole tenant and its busiest endpoints (webhooks:read)."""
    start, end = _when(since, "--since"), _when(until, "--until")
    found = api_call(conn, lambda client: client.webhook_metrics(since=start, until=end, top=top))
    if conn.as_json:
        _print_json(found)
    else:
        _summary(found)
        _breakdown(found)
