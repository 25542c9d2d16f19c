"""The database layer: units of work, SQLite writer queueing, aware datetimes, after-commit hooks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from interlink.core.actor import system_actor
from interlink.core.db import Database, after_commit
from interlink.core.enums import IntegrationEnvironment
from interlink.core.models import Tenant
from interlink.core.tenancy import create_tenant
from interlink.keys.format import KEY_RE
from interlink.runtime import Runtime


async def test_concurrent_writers_all_commit(runtime: Runtime) -> None:
    """Forty concurrent writing units of work: none fails with 'database is locked'."""

    async def write(i: int) -> None:
        async with runtime.db.unit_of_work() as session:
            await session.execute(sa.select(sa.func.count()).select_from(Tenant))
            await create_tenant(session, system_actor("ten_system"), f"Tenant {i}", f"tenant-{i}")

    await asyncio.gather(*(write(i) for i in range(40)))
    async with runtime.db.unit_of_work(write=False) as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Tenant)) == 40


async def test_datetimes_come_back_aware_utc(runtime: Runtime) -> None:
    local = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    async with runtime.db.unit_of_work() as session:
        tenant = await create_tenant(session, system_actor("ten_system"), "Clocky", "clocky")
        tenant.created_at = local
    async with runtime.db.unit_of_work(write=False) as session:
        stored = await session.get(Tenant, tenant.id)
        assert stored is not None
        assert stored.created_at.tzinfo is not None
        assert stored.created_at == local
        assert stored.created_at.astimezone(UTC).hour == 1


async def test_naive_datetimes_are_refused(runtime: Runtime) -> None:
    with pytest.raises(sa.exc.StatementError):
        async with runtime.db.unit_of_work() as session:
            tenant = await create_tenant(session, system_actor("ten_system"), "Naive", "naive")
            tenant.created_at = datetime(2026, 1, 1)  # naive on purpose
            await session.flush()


async def test_after_commit_runs_only_after_commit(runtime: Runtime) -> None:
    ran: list[str] = []

    async def hook() -> None:
        ran.append("committed")

    async with runtime.db.unit_of_work() as session:
        after_commit(session, hook)
        assert ran == []
    assert ran == ["committed"]

    with pytest.raises(RuntimeError):
        async with runtime.db.unit_of_work() as session:
            after_commit(session, hook)
            raise RuntimeError("boom")
    assert ran == ["committed"]


async def test_rollback_on_error_leaves_nothing(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError):
        async with runtime.db.unit_of_work() as session:
            await create_tenant(session, system_actor("ten_system"), "Ghost", "ghost")
            raise RuntimeError("boom")
    async with runtime.db.unit_of_work(write=False) as session:
        assert await session.scalar(sa.select(Tenant).where(Tenant.slug == "ghost")) is None


def test_sqlite_url_detection() -> None:
    assert Database("sqlite+aiosqlite:///:memory:").is_sqlite
    assert KEY_RE.pattern.startswith("^il_")
    assert IntegrationEnvironment.SANDBOX.key_tag == "test"
