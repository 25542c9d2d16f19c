"""Which job kinds exist, who handles them, and the schedules every deployment has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from interlink.core import retention
from interlink.core.db import Database
from interlink.jobs.schedules import ensure_schedule
from interlink.jobs.worker import Handler, JobContext

if TYPE_CHECKING:
    from interlink.runtime import Runtime

RETENTION_PURGE = "retention.purge"

BUILTIN_SCHEDULES = {
    # name: (kind, cron)
    "retention.daily": (RETENTION_PURGE, "17 3 * * *"),
}


def build_handlers(runtime: Runtime) -> dict[str, Handler]:
    """Every job kind this version can run, bound to the process's runtime."""

    async def purge_retention(_ctx: JobContext) -> None:
        await retention.purge(
            runtime.db, runtime.settings.audit_retention, runtime.settings.security_event_retention
        )

    return {RETENTION_PURGE: purge_retention}


async def ensure_builtin_schedules(db: Database) -> None:
    """Create the built-in schedules that are missing; safe to call from every process at start.
    Schedules that exist keep their state (an operator may have disabled one)."""
    async with db.unit_of_work() as session:
        for name, (kind, cron) in BUILTIN_SCHEDULES.items():
            await ensure_schedule(session, name, kind, cron)
