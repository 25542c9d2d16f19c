"""A worker process killed with SIGKILL mid-batch loses nothing: leases expire, another worker finishes.

Also: the retention purge job deletes expired audit and security events and audits itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import sqlalchemy as sa

from interlink.core import clock
from interlink.core.actor import system_actor
from interlink.core.enums import RetentionPolicy
from interlink.core.models import AuditEvent
from interlink.core.retention import purge
from interlink.core.tenancy import create_tenant
from interlink.jobs import queue
from interlink.jobs.models import Job
from interlink.jobs.worker import JobContext, Worker, WorkerConfig
from interlink.keys.models import SecurityEvent
from interlink.runtime import Runtime

VICTIM = textwrap.dedent(
    """
    import asyncio, sys
    from interlink.core.db import Database
    from interlink.jobs.worker import Worker, WorkerConfig

    async def slow(ctx):
        print("running", ctx.job.id, flush=True)
        await asyncio.sleep(3600)

    async def main():
        worker = Worker(Database(sys.argv[1]), {"crashy": slow},
                        WorkerConfig(concurrency=5, batch_size=5, lease_seconds=2, poll_interval=0.1,
                                     run_schedules=False))
        await worker.run()

    asyncio.run(main())
    """
)


async def test_sigkilled_worker_loses_no_job(runtime: Runtime) -> None:
    async with runtime.db.unit_of_work() as session:
        ids = [(await queue.enqueue(session, "crashy", {"i": i})).id for i in range(12)]

    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, runtime.db.url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert victim.stdout is not None
        started: list[str] = []
        while len(started) < 5:
            line = victim.stdout.readline()
            assert line, "the worker exited before running its batch"
            if line.startswith("running"):
                started.append(line)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)

    async with runtime.db.unit_of_work(write=False) as session:
        running = await session.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.status == "running")
        )
    assert running == 5  # held by the dead worker

    ran: list[str] = []

    async def finish(ctx: JobContext) -> None:
        ran.append(ctx.job.id)

    rescuer = Worker(runtime.db, {"crashy": finish}, WorkerConfig(run_schedules=False, lease_seconds=2))
    deadline = time.monotonic() + 20
    while len(set(ran)) < len(ids) and time.monotonic() < deadline:
        await rescuer.drain()
        time.sleep(0.2)  # wait for the dead worker's leases (2 s) to expire
    assert sorted(set(ran)) == sorted(ids)
    async with runtime.db.unit_of_work(write=False) as session:
        statuses = (await session.scalars(sa.select(Job.status))).all()
    assert set(statuses) == {"succeeded"}


async def test_retention_purges_old_rows_and_audits_itself(runtime: Runtime) -> None:
    async with runtime.db.unit_of_work() as session:
        tenant = await create_tenant(session, system_actor("ten_system"), "Old Co", "old-co")
    clock.shift(timedelta(days=-100))
    async with runtime.db.unit_of_work() as session:
        older = await create_tenant(session, system_actor(tenant.id), "Older Co", "older-co")
        session.add(
            SecurityEvent(
                id="sev_01M89XPD3TD96A2CX5AP2F3M6Q",
                tenant_id=tenant.id,
                event_type="auth.failed",
                risk_score=30,
                details={},
                occurred_at=clock.utcnow(),
            )
        )
    clock.reset()

    result = await purge(runtime.db, RetentionPolicy.DAYS_30, RetentionPolicy.DAYS_90)
    assert result.security_events == {tenant.id: 1}
    assert result.audit_events == {older.id: 1}  # its tenant.created row is 100 days old
    async with runtime.db.unit_of_work(write=False) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(SecurityEvent)) == 0
        rows = (await session.execute(sa.select(AuditEvent.tenant_id, AuditEvent.action))).all()
    assert sorted(rows) == sorted(
        [(tenant.id, "tenant.created"), (tenant.id, "retention.purged"), (older.id, "retention.purged")]
    )

    again = await purge(runtime.db, RetentionPolicy.DAYS_30, RetentionPolicy.DAYS_90)
    assert again.security_events == {} and again.audit_events == {}
