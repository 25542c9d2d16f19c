"""Which job kinds exist, who handles them, and the schedules every deployment has."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from interlink.connections import health as connection_health
from interlink.connections import oauth as connection_oauth
from interlink.core import retention
from interlink.core.db import Database
from interlink.jobs.schedules import ensure_schedule
from interlink.jobs.worker import Handler, JobContext
from interlink.webhooks import retention as webhook_retention

if TYPE_CHECKING:
    from interlink.runtime import Runtime

RETENTION_PURGE = "retention.purge"
WEBHOOK_RETENTION_PURGE = "webhooks.retention.purge"
CONNECTIONS_REFRESH = "connections.refresh"
CONNECTIONS_HEALTH = "connections.health"

BUILTIN_SCHEDULES = {
    # name: (kind, cron)
    "retention.daily": (RETENTION_PURGE, "17 3 * * *"),
    "webhooks.retention": (WEBHOOK_RETENTION_PURGE, "41 * * * *"),
    "connections.refresh": (CONNECTIONS_REFRESH, "*/5 * * * *"),
    "connections.health": (CONNECTIONS_HEALTH, "* * * * *"),
}


def build_handlers(runtime: Runtime) -> dict[str, Handler]:
    """Every job kind this version can run, bound to the process's runtime."""

    async def purge_retention(_ctx: JobContext) -> None:
        await retention.purge(
            runtime.db,
            runtime.settings.audit_retention,
            runtime.settings.security_event_retention,
            runtime.settings.api_request_retention,
            health_check_days=runtime.settings.connection_health_retention_days,
            inbound_receipt_days=runtime.settings.inbound_receipt_retention_days,
        )

    async def purge_webhook_retention(_ctx: JobContext) -> None:
        await webhook_retention.purge(runtime.db)

    async def refresh_connections(_ctx: JobContext) -> None:
        window = timedelta(minutes=runtime.settings.connection_refresh_window_minutes)
        await connection_oauth.refresh_expiring(runtime, window)

    async def check_connection_health(_ctx: JobContext) -> None:
        await connection_health.run_due(runtime)

    return {
        RETENTION_PURGE: purge_retention,
        WEBHOOK_RETENTION_PURGE: purge_webhook_retention,
        CONNECTIONS_REFRESH: refresh_connections,
        CONNECTIONS_HEALTH: check_connection_health,
    }


async def ensure_builtin_schedules(db: Database) -> None:
    """Create the built-in schedules that are missing; safe to call from every process at start.
    Schedules that exist keep their state (an operator may have disabled one)."""
    async with db.unit_of_work() as session:
        for name, (kind, cron) in BUILTIN_SCHEDULES.items():
            await ensure_schedule(session, name, kind, cron)
