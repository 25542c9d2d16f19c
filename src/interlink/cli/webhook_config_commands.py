"""Client commands: ``interlink webhook-config show|set`` through the SDK.

Same conventions as the other client commands (``--url``, ``--api-key``, ``--tenant``, ``--json``;
API errors print the problem and exit 1, usage errors exit 2).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from interlink.cli.client_common import Connection, _api, _one, api_call, client_command
from interlink.core.enums import RetentionPolicy

webhook_config_app = typer.Typer(
    help="Show or change the tenant's webhook defaults (retries, retention, auto-disable, circuit breaker).",
    no_args_is_help=True,
)

_CIRCUIT = ("failureThreshold", "windowSeconds", "cooldownSeconds")


@client_command(webhook_config_app, "show")
def webhook_config_show(conn: Connection) -> None:
    """Show the tenant's webhook configuration (built-in values until first changed)."""
    found = api_call(conn, lambda client: client.webhook_config.get())
    _one(conn, found)


@client_command(webhook_config_app, "set")
def webhook_config_set(
    conn: Connection,
    retry: Annotated[
        list[int] | None, typer.Option("--retry", help="Seconds before each retry; repeat.")
    ] = None,
    default_retry: Annotated[
        bool, typer.Option("--default-retry", help="Use the built-in retry schedule.")
    ] = False,
    retention: Annotated[
        RetentionPolicy | None, typer.Option(help="Retention of new endpoints created without one.")
    ] = None,
    disable_after: Annotated[
        int | None,
        typer.Option("--disable-after", help="Seconds of failures with no success before auto-disable."),
    ] = None,
    circuit_threshold: Annotated[
        int | None, typer.Option("--circuit-threshold", help="Failures in a row that open the circuit.")
    ] = None,
    circuit_window: Annotated[
        int | None, typer.Option("--circuit-window", help="Seconds the failures must fall within.")
    ] = None,
    circuit_cooldown: Annotated[
        int | None, typer.Option("--circuit-cooldown", help="Seconds an open circuit waits before a probe.")
    ] = None,
    no_circuit_breaker: Annotated[
        bool, typer.Option("--no-circuit-breaker", help="Turn the circuit breaker off.")
    ] = False,
    default_timeout: Annotated[
        float | None,
        typer.Option("--default-timeout", help="Seconds per attempt for new endpoints created without one."),
    ] = None,
) -> None:
    """Change the options given; the others keep their value. Circuit options not given keep
    their current value."""
    if retry is not None and default_retry:
        raise typer.BadParameter("--retry and --default-retry cannot be used together")
    circuit = dict(zip(_CIRCUIT, (circuit_threshold, circuit_window, circuit_cooldown), strict=True))
    given_circuit = {k: v for k, v in circuit.items() if v is not None}
    if given_circuit and no_circuit_breaker:
        raise typer.BadParameter("--circuit-* options and --no-circuit-breaker cannot be used together")
    changes: dict[str, Any] = {}
    if retry is not None:
        changes["retry_schedule"] = retry
    if default_retry:
        changes["retry_schedule"] = None
    if retention is not None:
        changes["retention"] = retention
    if disable_after is not None:
        changes["disable_after_seconds"] = disable_after
    if default_timeout is not None:
        changes["default_timeout_seconds"] = default_timeout
    if no_circuit_breaker:
        changes["circuit_breaker"] = None
    if not changes and not given_circuit:
        raise typer.BadParameter("nothing to change: pass at least one option")
    with _api(conn) as client:
        if given_circuit:
            current = client.webhook_config.get().circuit_breaker
            merged = current.model_dump(by_alias=True) if current else {}
            merged.update(given_circuit)
            missing = [name for name in _CIRCUIT if name not in merged]
            if missing:
                raise typer.BadParameter(
                    "the circuit breaker is off: give --circuit-threshold, --circuit-window and "
                    "--circuit-cooldown to turn it on"
                )
            changes["circuit_breaker"] = merged
        changed = client.webhook_config.update(**changes)
    _one(conn, changed, "Webhook configuration")
