"""The job engine on SQLite and PostgreSQL: claim, retry, leases, priorities, schedules, shutdown."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import sqlalchemy as sa

from interlink.core import clock
from interlink.core.db import Database
from interlink.core.settings import Settings
from interlink.jobs import queue, schedules
from interlink.jobs.models import Job
from interlink.jobs.queue import Priority
from interlink.jobs.worker import JobContext, PermanentJobError, RetryJob, Worker, WorkerConfig
from interlink.runtime import Runtime


async def _enqueue(db: Database, kind: str, n: int = 1, **kwargs: object) -> list[str]:
    async with db.unit_of_work() as session:
        jobs = [await queue.enqueue(session, kind, {"n": i}, **kwargs) for i in range(n)]  # type: ignore[arg-type]
    return [j.id for j in jobs]


async def _job(db: Database, job_id: str) -> Job:
    async with db.unit_of_work(write=False) as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


def _worker(db: Database, handlers: dict, **config: object) -> Worker:  # type: ignore[type-arg]
    return Worker(db, handlers, WorkerConfig(run_schedules=False, **config))  # type: ignore[arg-type]


async def test_jobs_run_once_and_succeed(runtime: Runtime) -> None:
    seen: list[int] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx.job.payload["n"])

    ids = await _enqueue(runtime.db, "count", 20)
    await _worker(runtime.db, {"count": handler}).drain()
    assert sorted(seen) == list(range(20))
    for job_id in ids:
        job = await _job(runtime.db, job_id)
        assert (job.status, job.attempts, job.locked_by) == ("succeeded", 1, None)
        assert job.finished_at is not None


async def test_failures_retry_with_backoff_then_die(runtime: Runtime) -> None:
    async def broken(_ctx: JobContext) -> None:
        raise ValueError("upstream said no")

    [job_id] = await _enqueue(runtime.db, "broken", max_attempts=3)
    worker = _worker(runtime.db, {"broken": broken})
    await worker.drain()
    job = await _job(runtime.db, job_id)
    assert job.status == "queued" and job.attempts == 1
    assert "upstream said no" in (job.last_error or "")
    delay = (job.run_at - clock.utcnow()).total_seconds()
    assert 3.5 <= delay <= 6.5  # 5 s ± 20 %

    for _ in range(2):
        clock.shift(timedelta(hours=2))
        await worker.drain()
    job = await _job(runtime.db, job_id)
    assert job.status == "dead" and job.attempts == 3


async def test_retry_job_and_permanent_error(runtime: Runtime) -> None:
    async def later(_ctx: JobContext) -> None:
        raise RetryJob(120, "rate limited upstream")

    async def hopeless(_ctx: JobContext) -> None:
        raise PermanentJobError("bad payload")

    [later_id] = await _enqueue(runtime.db, "later")
    [hopeless_id] = await _enqueue(runtime.db, "hopeless")
    await _worker(runtime.db, {"later": later, "hopeless": hopeless}).drain()
    later_job = await _job(runtime.db, later_id)
    assert later_job.status == "queued"
    assert 115 <= (later_job.run_at - clock.utcnow()).total_seconds() <= 121
    hopeless_job = await _job(runtime.db, hopeless_id)
    assert hopeless_job.status == "dead" and hopeless_job.attempts == 1


async def test_dedupe_key_returns_the_first_job(runtime: Runtime) -> None:
    first = await _enqueue(runtime.db, "once", dedupe_key="import:42")
    second = await _enqueue(runtime.db, "once", dedupe_key="import:42")
    assert first == second
    async with runtime.db.unit_of_work(write=False) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Job)) == 1


async def test_expired_lease_is_reclaimed_and_old_holder_is_fenced(runtime: Runtime) -> None:
    [job_id] = await _enqueue(runtime.db, "slow")
    held = await queue.claim(runtime.db, "worker-a", 10, lease_seconds=30)
    assert [j.id for j in held] == [job_id]
    assert await queue.claim(runtime.db, "worker-b", 10, lease_seconds=30) == []

    clock.shift(timedelta(seconds=31))
    again = await queue.claim(runtime.db, "worker-b", 10, lease_seconds=30)
    assert [j.id for j in again] == [job_id]
    assert again[0].attempts == 2
    assert await queue.complete(runtime.db, "worker-a", held) == 0  # fenced: another worker
    assert await queue.complete(runtime.db, "worker-b", again) == 1
    assert (await _job(runtime.db, job_id)).status == "succeeded"


async def test_an_older_claim_of_the_same_worker_is_fenced(runtime: Runtime) -> None:
    """A worker that re-claims its own expired job cannot finish it with the stale claim."""
    [job_id] = await _enqueue(runtime.db, "slow")
    first = await queue.claim(runtime.db, "worker-a", 1, lease_seconds=30)
    assert await queue.claim(runtime.db, "worker-a", 1, 30, exclude=[job_id]) == []  # never while running
    clock.shift(timedelta(seconds=31))
    second = await queue.claim(runtime.db, "worker-a", 1, lease_seconds=30)
    assert [j.attempts for j in first + second] == [1, 2]
    assert await queue.complete(runtime.db, "worker-a", first) == 0
    assert await queue.fail(runtime.db, "worker-a", first[0], "stale", retry_in=1) is None
    assert await queue.heartbeat(runtime.db, "worker-a", first, 30) == 0
    assert (await _job(runtime.db, job_id)).status == "running"
    assert await queue.complete(runtime.db, "worker-a", second) == 1


async def test_heartbeat_keeps_the_lease(runtime: Runtime) -> None:
    [job_id] = await _enqueue(runtime.db, "long")
    held = await queue.claim(runtime.db, "worker-a", 1, lease_seconds=30)
    assert [j.id for j in held] == [job_id]
    clock.shift(timedelta(seconds=20))
    assert await queue.heartbeat(runtime.db, "worker-a", held, 30) == 1
    clock.shift(timedelta(seconds=20))
    assert await queue.claim(runtime.db, "worker-b", 1, lease_seconds=30) == []


async def test_priority_and_delayed_runs(runtime: Runtime) -> None:
    [low] = await _enqueue(runtime.db, "p", priority=Priority.LOW)
    [high] = await _enqueue(runtime.db, "p", priority=Priority.HIGH)
    [later] = await _enqueue(runtime.db, "p", run_at=clock.utcnow() + timedelta(minutes=10))
    first = await queue.claim(runtime.db, "w", 1, 30)
    second = await queue.claim(runtime.db, "w", 1, 30)
    assert [first[0].id, second[0].id] == [high, low]
    assert await queue.claim(runtime.db, "w", 5, 30) == []
    assert await queue.complete(runtime.db, "w", first + second) == 2
    clock.shift(timedelta(minutes=11))
    assert [j.id for j in await queue.claim(runtime.db, "w", 5, 30)] == [later]


async def test_schedule_fires_once_per_tick_across_workers(runtime: Runtime, settings: Settings) -> None:
    async with runtime.db.unit_of_work() as session:
        await schedules.upsert_schedule(session, "nightly", "report", "0 2 * * *")
    other = Database(settings.effective_database_url)
    try:
        clock.shift(timedelta(days=1, hours=1))
        results = await asyncio.gather(
            *(schedules.fire_due(db) for db in (runtime.db, other, runtime.db, other))
        )
        assert sum(results) == 1
        async with runtime.db.unit_of_work(write=False) as session:
            jobs = (await session.scalars(sa.select(Job).where(Job.kind == "report"))).all()
        assert len(jobs) == 1
        assert jobs[0].dedupe_key is not None and jobs[0].dedupe_key.startswith("schedule:nightly:")
        assert sum(await asyncio.gather(schedules.fire_due(runtime.db), schedules.fire_due(other))) == 0
    finally:
        await other.dispose()


async def test_invalid_cron_is_refused(runtime: Runtime) -> None:
    from interlink.core.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        async with runtime.db.unit_of_work() as session:
            await schedules.upsert_schedule(session, "bad", "x", "every tuesday")


async def test_shutdown_hands_back_unfinished_jobs(runtime: Runtime) -> None:
    started = asyncio.Event()

    async def stuck(_ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(60)

    [job_id] = await _enqueue(runtime.db, "stuck")
    worker = _worker(runtime.db, {"stuck": stuck}, shutdown_grace=0.2, poll_interval=0.05)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    await asyncio.wait_for(task, 10)
    job = await _job(runtime.db, job_id)
    assert (job.status, job.attempts, job.locked_by) == ("queued", 0, None)


async def test_concurrent_claimers_never_share_a_job(runtime: Runtime, settings: Settings) -> None:
    await _enqueue(runtime.db, "bulk", 300)
    dbs = [runtime.db, Database(settings.effective_database_url), Database(settings.effective_database_url)]
    claimed: dict[str, str] = {}

    async def claimer(db: Database, name: str) -> None:
        while batch := await queue.claim(db, name, 7, 30):
            for job in batch:
                assert job.id not in claimed, f"{job.id} claimed by {claimed.get(job.id)} and {name}"
                claimed[job.id] = name

    try:
        await asyncio.gather(*(claimer(db, f"w{i}") for i, db in enumerate(dbs)))
    finally:
        for db in dbs[1:]:
            await db.dispose()
    assert len(claimed) == 300


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)  # SQLite workers poll
async def test_postgres_notify_wakes_an_idle_worker(runtime: Runtime) -> None:
    assert not runtime.db.is_sqlite
    done = asyncio.Event()

    async def handler(_ctx: JobContext) -> None:
        done.set()

    worker = runtime.make_worker()
    worker.handlers = {"ping": handler}
    worker.config.poll_interval = 60.0
    worker.config.run_schedules = False
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)  # the worker is idle, waiting up to 60 s
        await _enqueue(runtime.db, "ping")
        await asyncio.wait_for(done.wait(), timeout=10)
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


async def test_builtin_schedules_are_created_once_and_keep_operator_changes(
    runtime: Runtime, settings: Settings
) -> None:
    from interlink.jobs.models import JobSchedule
    from interlink.jobs.registry import BUILTIN_SCHEDULES, ensure_builtin_schedules

    other = Database(settings.effective_database_url)
    try:
        await asyncio.gather(*(ensure_builtin_schedules(db) for db in (runtime.db, other, runtime.db, other)))
    finally:
        await other.dispose()
    async with runtime.db.unit_of_work() as session:
        rows = (await session.scalars(sa.select(JobSchedule))).all()
        assert sorted(r.name for r in rows) == sorted(BUILTIN_SCHEDULES)
        rows[0].enabled = False  # an operator turns one off
    await ensure_builtin_schedules(runtime.db)
    async with runtime.db.unit_of_work(write=False) as session:
        assert (await session.get(JobSchedule, rows[0].name)).enabled is False  # type: ignore[union-attr]
