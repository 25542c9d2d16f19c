"""Batched ``lastUsedAt`` and usage counters: one UPDATE per key per flush, not one per request."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import structlog

from interlink.core.clock import utcnow
from interlink.core.db import Database
from interlink.keys.models import ApiKey

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Pending:
    count: int
    last_used_at: datetime
    last_ip: str | None


class UsageRecorder:
    """Accumulates uses in memory and writes them every ``interval`` seconds (and on shutdown).

    A crash loses at most one interval of usage counts: counters are statistics, not records.
    Flushes never overlap: when :meth:`flush` returns, every use recorded before the call has been
    written (or the call raised and the uses stay pending for the next flush).
    """

    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self._pending: dict[str, _Pending] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, key_id: str, ip: str | None) -> None:
        pending = self._pending.get(key_id)
        now = utcnow()
        if pending is None:
            self._pending[key_id] = _Pending(1, now, ip)
        else:
            pending.count += 1
            pending.last_used_at = now
            if ip:
                pending.last_ip = ip

    async def flush(self) -> int:
        """Write what has accumulated; returns the number of keys updated."""
        async with self._lock:
            return await self._flush()

    def _restore(self, batch: dict[str, _Pending]) -> None:
        for key_id, p in batch.items():
            current = self._pending.get(key_id)
            if current is None:
                self._pending[key_id] = p
                continue
            current.count += p.count
            if p.last_used_at > current.last_used_at:
                current.last_used_at = p.last_used_at
                current.last_ip = p.last_ip or current.last_ip
            elif current.last_ip is None:
                current.last_ip = p.last_ip

    async def _flush(self) -> int:
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        last_used = sa.case(
            (
                sa.or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < sa.bindparam("b_at")),
                sa.bindparam("b_at"),
            ),
            else_=ApiKey.last_used_at,
        )
        stmt = (
            sa.update(ApiKey)
            .where(ApiKey.id == sa.bindparam("b_id"))
            .values(
                usage_count=ApiKey.usage_count + sa.bindparam("b_count"),
                last_used_at=last_used,
                last_used_ip=sa.func.coalesce(sa.bindparam("b_ip", type_=sa.String()), ApiKey.last_used_ip),
            )
            .execution_options(synchronize_session=False)
        )
        params = [
            {"b_id": key_id, "b_count": p.count, "b_at": p.last_used_at, "b_ip": p.last_ip}
            for key_id, p in batch.items()
        ]
        try:
            async with self.db.unit_of_work() as session:
                conn = await session.connection()
                await conn.execute(stmt, params)
        except BaseException:
            self._restore(batch)  # put them back for the next flush
            raise
        return len(params)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            # Shielded: stopping the loop must not abandon a batch halfway; stop() waits for it.
            flushing = asyncio.ensure_future(self.flush())
            try:
                await asyncio.shield(flushing)
            except asyncio.CancelledError:
                await asyncio.gather(flushing, return_exceptions=True)
                raise
            except Exception as exc:
                log.warning("key_usage_flush_failed", error=str(exc))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="key-usage-flush")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception as exc:
            log.warning("key_usage_final_flush_failed", error=str(exc))
