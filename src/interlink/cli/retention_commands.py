"""``interlink retention``: run the retention purges now, on ``INTERLINK_DATABASE_URL``.

The same purges the built-in schedules run (``retention.daily``: audit and security events and the
outbound request log; ``webhooks.retention``, hourly: delivery attempts and event payloads); safe to
run while workers run them too. Each purge is audited per tenant, as when scheduled.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from interlink.cli.common import load_settings, refuse_unless_migrated

retention_app = typer.Typer(help="Purge expired data now (server-side).", no_args_is_help=True)


@retention_app.command("run")
def retention_run(
    webhooks: Annotated[
        bool, typer.Option("--webhooks/--no-webhooks", help="Purge webhook attempts and payloads.")
    ] = True,
    audit: Annotated[
        bool,
        typer.Option(
            "--audit/--no-audit", help="Purge audit and security events and the outbound request log."
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Purge what every RetentionPolicy says has expired, and print what went, per tenant."""
    settings = load_settings()
    refuse_unless_migrated(settings, "purge")

    async def _run() -> dict[str, Any]:
        from interlink.core import retention
        from interlink.core.db import Database
        from interlink.webhooks import retention as webhook_retention

        db = Database(settings.effective_database_url)
        out: dict[str, Any] = {}
        try:
            if webhooks:
                purged = await webhook_retention.purge(db)
                out["webhooks"] = {
                    tenant: {"attempts": c.attempts, "payloads": c.payloads}
                    for tenant, c in sorted(purged.tenants.items())
                }
            if audit:
                core = await retention.purge(
                    db,
                    settings.audit_retention,
                    settings.security_event_retention,
                    settings.api_request_retention,
                    health_check_days=settings.connection_health_retention_days,
                    inbound_receipt_days=settings.inbound_receipt_retention_days,
                )
                tenants = {
                    *core.audit_events,
                    *core.api_requests,
                    *core.health_checks,
                    *core.inbound_receipts,
                    *(t for t in core.security_events if t),
                }
                out["audit"] = {
                    tenant: {
                        "auditEvents": core.audit_events.get(tenant, 0),
                        "securityEvents": core.security_events.get(tenant, 0),
                        "apiRequests": core.api_requests.get(tenant, 0),
                        "healthChecks": core.health_checks.get(tenant, 0),
                        "inboundReceipts": core.inbound_receipts.get(tenant, 0),
                    }
                    for tenant in sorted(tenants)
                }
        finally:
            await db.dispose()
        return out

    result = asyncio.run(_run())
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if webhooks:
        rows = result["webhooks"]
        attempts = sum(r["attempts"] for r in rows.values())
        payloads = sum(r["payloads"] for r in rows.values())
        typer.echo(
            f"webhooks: {attempts} attempt(s) and {payloads} payload(s) purged in {len(rows)} tenant(s)"
        )
        for tenant, counts in rows.items():
            typer.echo(f"  {tenant}: {counts['attempts']} attempt(s), {counts['payloads']} payload(s)")
    if audit:
        rows = result["audit"]
        events = sum(r["auditEvents"] for r in rows.values())
        security = sum(r["securityEvents"] for r in rows.values())
        requests = sum(r["apiRequests"] for r in rows.values())
        checks = sum(r["healthChecks"] for r in rows.values())
        typer.echo(
            f"audit: {events} audit event(s), {security} security event(s), {requests} "
            f"outbound request log row(s) and {checks} connection health check(s) purged"
        )
