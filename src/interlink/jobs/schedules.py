"""Cron schedules that fire once per tick across any number of workers.

Each tick enqueues one job with the dedupe key ``schedule:<name>:<tick time>``; the key is unique
in the job table, so two workers racing on the same tick still create exactly one job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.clock import utcnow
from interlink.core.db import Database
from interlink.core.errors import ValidationFailed
from interlink.jobs import queue
from interlink.jobs.models import JobSchedule


def next_tick(cron: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that ``cron`` names (UTC)."""
    result: datetime = croniter(cron, after).get_next(datetime)
    return result


def validate_cron(cron: str) -> None:
    if not croniter.is_valid(cron):
        raise ValidationFailed(f"{cron!r} is not a valid cron expression", field="cron")


async def upsert_schedule(
    session: AsyncSession,
    name: str,
    kind: str,
    cron: str,
    payload: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
    enabled: bool = True,
) -> JobSchedule:
    """Create or change a schedule; the next tick is recomputed when the cron expression changes."""
    validate_cron(cron)
    now = utcnow()
    schedule = await session.get(JobSchedule, name)
    if schedule is None:
        schedule = JobSchedule(
            name=name,
            tenant_id=tenant_id,
            kind=kind,
            cron=cron,
            payload=payload or {},
            enabled=enabled,
            next_run_at=next_tick(cron, now),
            created_at=now,
            updated_at=now,
        )
        session.add(schedule)
        return schedule
    if schedule.cron != cron:
        schedule.next_run_at = next_tick(cron, now)
    schedule.kind, schedule.cron, schedule.payload, schedule.enabled = kind, cron, payload or {}, enabled
    schedule.tenant_id = tenant_id
    schedule.updated_at = now
    return schedule


async def ensure_schedule(session: AsyncSession, name: str, kind: str, cron: str) -> None:
    """Create the schedule if it does not exist; an existing one (maybe disabled by an operator)
    is left as it is. Safe when several processes start at once."""
    validate_cron(cron)
    if await session.get(JobSchedule, name) is not None:
        return
    now = utcnow()
    try:
        async with session.begin_nested():
            session.add(
                JobSchedule(
                    name=name,
                    kind=kind,
                    cron=cron,
                    payload={},
                    enabled=True,
                    next_run_at=next_tick(cron, now),
                    created_at=now,
                    updated_at=now,
                )
            )
    except IntegrityError:
        pass  # another process created it first


async def fire_due(db: Database, limit: int = 100) -> int:
    """Enqueue one job for every due schedule and advance it. Returns the number of jobs enqueued.

    Missed ticks (all workers down) are not replayed one by one: the schedule fires once and moves
    to its next tick after now.
    """
    now = utcnow()
    fired = 0
    async with db.unit_of_work() as session:
        stmt = (
            sa.select(JobSchedule)
            .where(JobSchedule.enabled.is_(True), JobSchedule.next_run_at <= now)
            .order_by(JobSchedule.next_run_at)
            .limit(limit)
        )
        if not db.is_sqlite:
            stmt = stmt.with_for_update(skip_locked=True)
        for schedule in (await session.scalars(stmt)).all():
            tick = schedule.next_run_at
            job = await queue.enqueue(
                session,
                schedule.kind,
                {**schedule.payload, "scheduledFor": tick.isoformat()},
                tenant_id=schedule.tenant_id,
                dedupe_key=f"schedule:{schedule.name}:{tick.isoformat()}",
            )
            if job.created_at >= now:
                fired += 1
            schedule.last_run_at = tick
            schedule.next_run_at = next_tick(schedule.cron, max(now, tick))
            schedule.updated_at = now
    return fired
