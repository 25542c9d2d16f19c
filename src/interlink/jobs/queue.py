"""Queue operations on the job table. Every function is one short transaction or joins the caller's.

Claiming: ``UPDATE jobs SET status='running', locked_by=…, lease_expires_at=… WHERE id IN
(SELECT id … ORDER BY priority, run_at LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …`` on
PostgreSQL, so any number of workers claim disjoint batches without waiting on each other; on SQLite
the same statement runs under ``BEGIN IMMEDIATE`` (one writer at a time). Completion, failure and
heartbeats are fenced by ``locked_by``: a worker whose lease expired and whose job was claimed by
another can no longer change it.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.core.clock import utcnow
from interlink.core.context import current_correlation_id
from interlink.core.db import Database
from interlink.core.ids import new_id
from interlink.jobs.models import Job

NOTIFY_CHANNEL = "interlink_jobs"
QUEUED, RUNNING, SUCCEEDED, DEAD, CANCELLED = "queued", "running", "succeeded", "dead", "cancelled"
MAX_ERROR_CHARS = 4000


class Priority(IntEnum):
    """Lower runs first."""

    HIGH = 0
    NORMAL = 5
    LOW = 9


@dataclass(frozen=True)
class ClaimedJob:
    """A job held by one worker until ``lease_expires_at``."""

    id: str
    tenant_id: str | None
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    correlation_id: str | None
    lease_expires_at: datetime


def backoff_seconds(attempt: int, base: float = 5.0, cap: float = 3600.0, jitter: float = 0.2) -> float:
    """Exponential backoff ``base * 2^(attempt-1)``, capped, with ±``jitter`` spread."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return float(max(0.0, delay * (1 + random.uniform(-jitter, jitter))))


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
    run_at: datetime | None = None,
    priority: int = Priority.NORMAL,
    max_attempts: int = 8,
    dedupe_key: str | None = None,
    correlation_id: str | None = None,
) -> Job:
    """Add a job in the caller's transaction. With ``dedupe_key``, a second enqueue returns the first job."""
    now = utcnow()
    job = Job(
        id=new_id("job"),
        tenant_id=tenant_id,
        kind=kind,
        payload=payload or {},
        status=QUEUED,
        priority=int(priority),
        run_at=run_at or now,
        attempts=0,
        max_attempts=max_attempts,
        dedupe_key=dedupe_key,
        correlation_id=correlation_id or current_correlation_id(),
        created_at=now,
        updated_at=now,
    )
    if dedupe_key is not None:
        existing = await session.scalar(sa.select(Job).where(Job.dedupe_key == dedupe_key))
        if existing is not None:
            return existing
        try:
            async with session.begin_nested():
                session.add(job)
        except IntegrityError:
            existing = await session.scalar(sa.select(Job).where(Job.dedupe_key == dedupe_key))
            assert existing is not None
            return existing
    else:
        session.add(job)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, kind)))
    return job


async def claim(
    db: Database,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    kinds: list[str] | None = None,
    exclude: Collection[str] = (),
) -> list[ClaimedJob]:
    """Claim up to ``limit`` due jobs (and jobs whose lease expired) for ``worker_id``.

    ``exclude`` names jobs the caller is still running: a worker never claims its own job again
    while it runs, even after the lease expired."""
    now = utcnow()
    due = sa.or_(
        sa.and_(Job.status == QUEUED, Job.run_at <= now),
        sa.and_(Job.status == RUNNING, Job.lease_expires_at < now),
    )
    pick = sa.select(Job.id).where(due)
    if kinds:
        pick = pick.where(Job.kind.in_(kinds))
    if exclude:
        pick = pick.where(Job.id.not_in(list(exclude)))
    pick = pick.order_by(Job.priority, Job.run_at).limit(limit)
    if not db.is_sqlite:
        pick = pick.with_for_update(skip_locked=True)
    lease_until = now + timedelta(seconds=lease_seconds)
    stmt = (
        sa.update(Job)
        .where(Job.id.in_(pick.scalar_subquery()))
        .values(
            status=RUNNING,
            locked_by=worker_id,
            lease_expires_at=lease_until,
            attempts=Job.attempts + 1,
            updated_at=now,
        )
        .returning(
            Job.id, Job.tenant_id, Job.kind, Job.payload, Job.attempts, Job.max_attempts, Job.correlation_id
        )
        .execution_options(synchronize_session=False)
    )
    async with db.unit_of_work() as session:
        rows = (await session.execute(stmt)).all()
    claimed = [
        ClaimedJob(
            r.id,
            r.tenant_id,
            r.kind,
            dict(r.payload or {}),
            r.attempts,
            r.max_attempts,
            r.correlation_id,
            lease_until,
        )
        for r in rows
    ]
    claimed.sort(key=lambda j: j.id)
    return claimed


async def _update_held(
    db: Database, worker_id: str, jobs: Sequence[ClaimedJob], values: dict[str, Any]
) -> int:
    """Update running jobs still held by this claim: the fence is the worker *and* the attempt
    number, so neither another worker nor an older claim of the same job can change it."""
    if not jobs:
        return 0
    held = [(job.id, job.attempts) for job in jobs]
    async with db.unit_of_work() as session:
        result = await session.execute(
            sa.update(Job)
            .where(
                sa.tuple_(Job.id, Job.attempts).in_(held), Job.locked_by == worker_id, Job.status == RUNNING
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def complete(db: Database, worker_id: str, jobs: Sequence[ClaimedJob]) -> int:
    """Mark jobs succeeded (only claims this worker still holds). Returns how many changed."""
    now = utcnow()
    return await _update_held(
        db,
        worker_id,
        jobs,
        {
            "status": SUCCEEDED,
            "finished_at": now,
            "updated_at": now,
            "locked_by": None,
            "lease_expires_at": None,
        },
    )


async def fail(
    db: Database,
    worker_id: str,
    job: ClaimedJob,
    error: str,
    *,
    retry_in: float | None,
    permanent: bool = False,
) -> str | None:
    """Record a failed attempt: requeue after ``retry_in`` seconds, or ``dead`` when out of attempts.

    Returns the new status, or None when the claim was no longer held (nothing changed)."""
    now = utcnow()
    dead = permanent or job.attempts >= job.max_attempts
    values: dict[str, Any] = {
        "last_error": error[:MAX_ERROR_CHARS],
        "updated_at": now,
        "locked_by": None,
        "lease_expires_at": None,
    }
    if dead:
        values.update(status=DEAD, finished_at=now)
    else:
        delay = retry_in if retry_in is not None else backoff_seconds(job.attempts)
        values.update(status=QUEUED, run_at=now + timedelta(seconds=delay))
    if not await _update_held(db, worker_id, [job], values):
        return None
    return DEAD if dead else QUEUED


async def heartbeat(db: Database, worker_id: str, jobs: Sequence[ClaimedJob], lease_seconds: float) -> int:
    """Extend the lease of claims this worker still holds; returns how many it still holds."""
    now = utcnow()
    return await _update_held(
        db, worker_id, jobs, {"lease_expires_at": now + timedelta(seconds=lease_seconds), "updated_at": now}
    )


async def release(db: Database, worker_id: str, jobs: Sequence[ClaimedJob]) -> int:
    """Give jobs back unfinished (graceful shutdown): queued again at once, the attempt not counted."""
    now = utcnow()
    return await _update_held(
        db,
        worker_id,
        jobs,
        {
            "status": QUEUED,
            "run_at": now,
            "attempts": Job.attempts - 1,
            "locked_by": None,
            "lease_expires_at": None,
            "updated_at": now,
        },
    )


async def get_job(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id)
