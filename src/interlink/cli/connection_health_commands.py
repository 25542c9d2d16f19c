"""Client commands: ``interlink connections health-check <id>`` (check now), ``interlink
connections health <id>`` (status, score, availability, performance), ``interlink connections
health-checks <id>`` (the history) and ``interlink connections health-check-show <id> <checkId>``,
through the SDK.

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``;
API errors exit 1, usage errors exit 2). A check that finds the connection UNHEALTHY is a result,
not an error: the command exits 0 and prints it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from interlink.cli.client_common import (
    Column,
    Connection,
    Paging,
    _console,
    api_call,
    client_command,
    json_or,
    print_pages,
)
from interlink.connections.health_schemas import ConnectionHealth, IntegrationHealthCheckInfo

ConnectionArg = Annotated[str, typer.Argument(help="Connection id (conn_...).")]
CheckArg = Annotated[str, typer.Argument(help="Health check id (hc_...).")]
CHECK_COLUMNS: list[Column] = [
    ("id", lambda c: c.id),
    ("checked", lambda c: c.checked_at),
    ("status", lambda c: c.status.value),
    ("score", lambda c: c.health_score),
    ("response ms", lambda c: "" if c.response_time is None else c.response_time),
    ("trigger", lambda c: c.trigger.value),
    ("error", lambda c: c.error or ""),
]


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def _print_check(check: IntegrationHealthCheckInfo) -> None:
    console = _console()
    console.print(f"{check.status.value} (score {check.health_score}) at {check.checked_at.isoformat()}")
    for item in check.checks:
        console.print(f"  {item.name:<5} {item.status.value:<4} {item.duration:>8.1f} ms  {item.message}")
    if check.tls_expires_at is not None:
        console.print(f"  TLS certificate expires {check.tls_expires_at.isoformat()}")


def health_check(conn: Connection, connection_id: ConnectionArg) -> None:
    """Check a connection now: DNS, TCP, TLS (https), HTTP; stores and prints the result."""
    check = api_call(conn, lambda client: client.connection_health.run(connection_id))
    json_or(conn, check, _print_check)


def health(conn: Connection, connection_id: ConnectionArg) -> None:
    """A connection's health: last status and score, availability over 24 h / 7 d / 30 d, and the
    last 24 h's API performance."""
    summary = api_call(conn, lambda client: client.connection_health.summary(connection_id))
    json_or(conn, summary, _print_health)


def health_checks(conn: Connection, paging: Paging, connection_id: ConnectionArg) -> None:
    """A connection's health checks, newest first (kept for the retention period)."""
    print_pages(
        conn,
        paging,
        lambda client: client.connection_health,
        CHECK_COLUMNS,
        "no health checks",
        connection_id=connection_id,
    )


def health_check_show(conn: Connection, connection_id: ConnectionArg, check_id: CheckArg) -> None:
    """One health check of a connection, with each of its checks."""
    check = api_call(conn, lambda client: client.connection_health.get(connection_id, check_id))
    json_or(conn, check, _print_check)


def _print_health(summary: ConnectionHealth) -> None:
    console = _console()
    status = summary.status.value if summary.status is not None else "never checked"
    score = "-" if summary.health_score is None else str(summary.health_score)
    console.print(f"{summary.connection_id}: {status} (score {score})")
    a = summary.availability
    console.print(
        f"availability: 24h {_percent(a.last_24_hours)}, 7d {_percent(a.last_7_days)}, "
        f"30d {_percent(a.last_30_days)}"
    )
    p = summary.performance
    average = "-" if p.average_response_time is None else f"{p.average_response_time:.1f} ms"
    console.print(
        f"last 24h: {p.request_count} calls, average {average}, error rate {_percent(p.error_rate)}, "
        f"{p.throughput:.3f}/min"
    )
    if summary.last_check is not None:
        _print_check(summary.last_check)


def register(app: typer.Typer) -> None:
    """Add ``health-check``, ``health``, ``health-checks`` and ``health-check-show`` to the
    ``connections`` command group."""
    client_command(app, "health-check")(health_check)
    client_command(app, "health")(health)
    client_command(app, "health-checks", paged=True)(health_checks)
    client_command(app, "health-check-show")(health_check_show)
