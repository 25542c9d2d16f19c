"""The worker loop: claim due jobs in batches, run them with bounded concurrency, keep leases alive.

Contracts:
* At least once: a job is finished (``succeeded``/``dead``) only after its handler returned or
  failed for good. A worker that dies mid-job loses nothing: the lease expires and another worker
  claims the job again (the only case in which a job runs twice).
* Handlers are ``async def handler(ctx: JobContext) -> None`` registered by kind. Raise
  :class:`RetryJob` to choose the delay, :class:`PermanentJobError` to stop retrying; any other
  exception retries with exponential backoff until ``max_attempts``.
* Shutdown stops claiming, waits up to ``shutdown_grace`` for jobs in flight, then hands the rest
  back (queued again, attempt not counted).
* Wake-ups: PostgreSQL ``LISTEN interlink_jobs`` (``enqueue`` notifies in its transaction);
  polling every ``poll_interval`` seconds is the fallback and the only mechanism on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from interlink.core import pg_listen
from interlink.core.context import correlation_id_var
from interlink.core.db import Database
from interlink.jobs import queue, schedules
from interlink.jobs.queue import ClaimedJob

log = structlog.get_logger(__name__)


class RetryJob(Exception):
    """Ask for another attempt after ``delay_seconds``."""

    def __init__(self, delay_seconds: float, reason: str = "retry requested") -> None:
        super().__init__(reason)
        self.delay_seconds = delay_seconds


class PermanentJobError(Exception):
    """The job can never succeed; mark it dead without further attempts."""


@dataclass(frozen=True)
class JobContext:
    job: ClaimedJob
    worker_id: str
    services: Any = None


Handler = Callable[[JobContext], Awaitable[None]]


@dataclass
class WorkerConfig:
    batch_size: int = 16
    concurrency: int = 8
    lease_seconds: float = 60.0
    poll_interval: float = 1.0
    shutdown_grace: float = 10.0
    listen_dsn: str | None = None
    run_schedules: bool = True


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


@dataclass
class Worker:
    """Runs jobs from the job table until stopped."""

    db: Database
    handlers: dict[str, Handler]
    config: WorkerConfig = field(default_factory=WorkerConfig)
    services: Any = None
    worker_id: str = field(default_factory=default_worker_id)

    def __post_init__(self) -> None:
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._claims: dict[str, ClaimedJob] = {}
        self._slots = asyncio.Semaphore(self.config.concurrency)
        self.processed = 0

    # -- public --------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish (non-blocking)."""
        self._stopping.set()
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Run until :meth:`stop`; then drain or release work in flight."""
        helpers = [asyncio.create_task(self._heartbeat_loop(), name="job-heartbeat")]
        if self.config.listen_dsn:
            helpers.append(asyncio.create_task(self._listen_loop(self.config.listen_dsn), name="job-listen"))
        log.info("worker_started", worker_id=self.worker_id, kinds=sorted(self.handlers))
        try:
            while not self._stopping.is_set():
                # Cleared before claiming, so a wake-up (NOTIFY or stop) that arrives while we
                # claim is not lost.
                self._wake.clear()
                try:
                    if self.config.run_schedules:
                        await schedules.fire_due(self.db)
                    claimed = await self.run_once()
                except Exception as exc:
                    log.warning("worker_cycle_failed", error=str(exc), error_type=type(exc).__name__)
                    claimed = 0
                if claimed == 0 and not self._stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=self.config.poll_interval)
        finally:
            await self._shutdown()
            helpers[0].cancel()  # the heartbeat only sleeps; the listener stops by itself
            _done, pending = await asyncio.wait(helpers, timeout=2)
            for task in pending:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            log.info("worker_stopped", worker_id=self.worker_id, processed=self.processed)

    async def run_once(self) -> int:
        """Claim one batch (as many as there are free slots) and start it. Returns jobs claimed."""
        free = self.config.concurrency - len(self._in_flight)
        if free <= 0:
            await asyncio.sleep(0.01)
            return 0
        jobs = await queue.claim(
            self.db,
            self.worker_id,
            min(free, self.config.batch_size),
            self.config.lease_seconds,
            kinds=list(self.handlers),
            exclude=list(self._in_flight),
        )
        for job in jobs:
            await self._slots.acquire()
            task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
            self._in_flight[job.id] = task
            self._claims[job.id] = job
        return len(jobs)

    async def drain(self, max_seconds: float = 30.0) -> None:
        """Run until no due job is left and nothing is in flight (tests and one-shot use)."""
        async with asyncio.timeout(max_seconds):
            while True:
                claimed = await self.run_once()
                if self._in_flight:
                    await asyncio.wait(list(self._in_flight.values()), return_when=asyncio.FIRST_COMPLETED)
                elif claimed == 0:
                    return

    # -- internals -----------------------------------------------------------------------

    async def _execute(self, job: ClaimedJob) -> None:
        token = correlation_id_var.set(job.correlation_id)
        try:
            handler = self.handlers.get(job.kind)
            try:
                if job.attempts > job.max_attempts:
                    raise PermanentJobError(f"gave up after {job.max_attempts} attempts (lease expiries)")
                if handler is None:
                    raise PermanentJobError(f"no handler for job kind {job.kind!r}")
                await handler(JobContext(job=job, worker_id=self.worker_id, services=self.services))
            except asyncio.CancelledError:
                raise
            except RetryJob as exc:
                await queue.fail(self.db, self.worker_id, job, str(exc), retry_in=exc.delay_seconds)
            except PermanentJobError as exc:
                await queue.fail(self.db, self.worker_id, job, str(exc), retry_in=None, permanent=True)
                log.warning("job_dead", job_id=job.id, kind=job.kind, error=str(exc))
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                outcome = await queue.fail(self.db, self.worker_id, job, detail, retry_in=None)
                log.warning(
                    "job_failed",
                    job_id=job.id,
                    kind=job.kind,
                    attempt=job.attempts,
                    outcome=outcome,
                    error=detail,
                )
            else:
                await queue.complete(self.db, self.worker_id, [job])
            self.processed += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away while recording: the lease will expire
            log.warning("job_result_not_recorded", job_id=job.id, error=str(exc))
        finally:
            correlation_id_var.reset(token)
            self._in_flight.pop(job.id, None)
            self._claims.pop(job.id, None)
            self._slots.release()

    async def _heartbeat_loop(self) -> None:
        interval = max(0.05, self.config.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            claims = list(self._claims.values())
            if claims:
                try:
                    held = await queue.heartbeat(self.db, self.worker_id, claims, self.config.lease_seconds)
                    if held < len(claims):
                        log.warning("job_leases_lost", held=held, running=len(claims))
                except Exception as exc:
                    log.warning("job_heartbeat_failed", error=str(exc))

    async def _listen_loop(self, dsn: str) -> None:
        while not self._stopping.is_set():
            try:
                await pg_listen.listen(
                    dsn,
                    queue.NOTIFY_CHANNEL,
                    lambda _payload: self._wake.set(),
                    should_stop=self._stopping.is_set,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job_listener_lost", error=str(exc))
                await asyncio.sleep(1.0)

    async def _shutdown(self) -> None:
        if not self._in_flight:
            return
        pending = list(self._in_flight.values())
        _done, still_running = await asyncio.wait(pending, timeout=self.config.shutdown_grace)
        if still_running:
            unfinished = [
                self._claims[job_id] for job_id, task in self._in_flight.items() if task in still_running
            ]
            for task in still_running:
                task.cancel()
            await asyncio.gather(*still_running, return_exceptions=True)
            try:
                released = await queue.release(self.db, self.worker_id, unfinished)
                log.info("worker_released_jobs", count=released)
            except Exception as exc:
                log.warning("worker_release_failed", error=str(exc))
