"""``lastUsedAt`` and usage counters: written in batches by the usage recorder, never one UPDATE
per request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from interlink.bootstrap import BootstrapResult, bootstrap_if_empty
from interlink.core.db import Database
from interlink.http.app import create_app
from interlink.keys.models import ApiKey
from interlink.keys.security import SecurityContext
from interlink.runtime import Runtime
from tests.api_helpers import make_key
from tests.conftest import auth, make_settings


@dataclass
class Statements:
    seen: list[tuple[str, bool, int]] = field(default_factory=list)

    def updates(self) -> list[tuple[str, bool, int]]:
        return [s for s in self.seen if s[0].lstrip().upper().startswith("UPDATE")]


@contextmanager
def count_statements(db: Database) -> Iterator[Statements]:
    """Record every statement sent to the database: (sql, executemany, parameter sets)."""
    statements = Statements()

    def listener(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
    ) -> None:
        count = len(parameters) if executemany else 1
        statements.seen.append((statement, executemany, count))

    event.listen(db.engine.sync_engine, "before_cursor_execute", listener)
    try:
        yield statements
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", listener)


@pytest.fixture
async def slow_flush_runtime(db_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime whose background flush never fires during a test: only explicit flushes write."""
    runtime = Runtime(make_settings(db_url, tmp_path / "data", key_usage_flush_seconds=3600))
    await runtime.start()
    yield runtime
    await runtime.stop()


async def usage_rows(runtime: Runtime, ids: list[str]) -> dict[str, tuple[int, datetime | None, str | None]]:
    async with runtime.db.unit_of_work(write=False) as session:
        rows = await session.execute(
            sa.select(ApiKey.id, ApiKey.usage_count, ApiKey.last_used_at, ApiKey.last_used_ip).where(
                ApiKey.id.in_(ids)
            )
        )
        return {r.id: (r.usage_count, r.last_used_at, r.last_used_ip) for r in rows}


async def test_usage_count_after_requests(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    created = await make_key(client, admin_headers)
    headers = auth(created["key"])
    started = datetime.now(UTC)
    for _ in range(7):
        assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    # A refused request is not a use.
    assert (
        await client.post("/v1/keys", json={"name": "x", "scopes": ["keys:read"]}, headers=headers)
    ).status_code == 403
    await runtime.usage.flush()
    shown = (await client.get(f"/v1/keys/{created['id']}", headers=admin_headers)).json()
    assert shown["usageCount"] == 7
    assert shown["lastUsedIp"] == "127.0.0.1"
    last_used = datetime.fromisoformat(shown["lastUsedAt"])
    assert started - timedelta(seconds=1) <= last_used <= datetime.now(UTC) + timedelta(seconds=1)
    for _ in range(3):
        assert (await client.get("/v1/keys", headers=headers)).status_code == 200
    await runtime.usage.flush()
    again = (await client.get(f"/v1/keys/{created['id']}", headers=admin_headers)).json()
    assert again["usageCount"] == 10
    assert datetime.fromisoformat(again["lastUsedAt"]) >= last_used


async def test_background_flush_writes_counts(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    """The recorder flushes by itself (0.2 s in tests); poll the row rather than flushing."""
    import asyncio

    created = await make_key(client, admin_headers)
    for _ in range(5):
        assert (await client.get("/v1/keys", headers=auth(created["key"]))).status_code == 200
    for _ in range(100):
        count, _at, _ip = (await usage_rows(runtime, [created["id"]]))[created["id"]]
        if count == 5:
            break
        await asyncio.sleep(0.05)
    assert count == 5


async def test_no_update_per_request_one_executemany_per_flush(slow_flush_runtime: Runtime) -> None:
    runtime = slow_flush_runtime
    admin = await bootstrap_if_empty(runtime)
    assert admin is not None
    app = create_app(runtime.settings, runtime, access_log=False)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as client:
        keys = [await make_key(client, auth(admin.key), name=f"k{i}") for i in range(3)]
    await runtime.usage.flush()  # the admin key's own uses so far
    context = SecurityContext("192.0.2.1")
    for key in keys:  # warm the cache: the first verification reads the row
        assert (await runtime.verifier.verify(key["key"], ip="192.0.2.1", context=context)).valid
    uses = {keys[0]["id"]: 25, keys[1]["id"]: 10, keys[2]["id"]: 1}
    with count_statements(runtime.db) as statements:
        for key in keys:
            for _ in range(uses[key["id"]] - 1):
                result = await runtime.verifier.verify(key["key"], ip="192.0.2.9", context=context)
                assert result.valid
        assert statements.seen == []  # the warm hot path touches no database at all
        written = await runtime.usage.flush()
    assert written == 3
    updates = statements.updates()
    assert len(updates) == 1
    sql, executemany, parameter_sets = updates[0]
    assert "api_keys" in sql
    assert executemany is True and parameter_sets == 3
    rows = await usage_rows(runtime, list(uses))
    assert {key_id: row[0] for key_id, row in rows.items()} == uses
    assert {row[2] for key_id, row in rows.items() if uses[key_id] > 1} == {"192.0.2.9"}
    assert rows[keys[2]["id"]][2] == "192.0.2.1"
    assert all(row[1] is not None for row in rows.values())
    # Nothing pending: a second flush writes nothing.
    with count_statements(runtime.db) as statements:
        assert await runtime.usage.flush() == 0
    assert statements.seen == []


async def test_no_update_per_http_request(slow_flush_runtime: Runtime) -> None:
    runtime = slow_flush_runtime
    admin: BootstrapResult | None = await bootstrap_if_empty(runtime)
    assert admin is not None
    app = create_app(runtime.settings, runtime, access_log=False)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://interlink.test") as client:
        key = await make_key(client, auth(admin.key), scopes=["keys:verify"])
        target = await make_key(client, auth(admin.key))
        await runtime.usage.flush()
        with count_statements(runtime.db) as statements:
            for _ in range(20):
                response = await client.post(
                    "/v1/keys/verify", json={"key": target["key"]}, headers=auth(key["key"])
                )
                assert response.json()["valid"] is True
        assert statements.updates() == []
        with count_statements(runtime.db) as statements:
            await runtime.usage.flush()
        assert len(statements.updates()) == 1
    rows = await usage_rows(runtime, [key["id"], target["id"]])
    assert rows[key["id"]][0] == 20 and rows[target["id"]][0] == 20


async def test_stop_flushes_pending_usage(db_url: str, tmp_path: Path) -> None:
    settings = make_settings(db_url, tmp_path / "data", key_usage_flush_seconds=3600)
    runtime = Runtime(settings)
    await runtime.start()
    admin = await bootstrap_if_empty(runtime)
    assert admin is not None
    for _ in range(4):
        assert (await runtime.verifier.verify(admin.key, ip=None, context=SecurityContext())).valid
    await runtime.stop()
    reader = Runtime(settings)
    try:
        rows = await usage_rows(reader, [admin.key_id])
    finally:
        await reader.stop()
    assert rows[admin.key_id][0] == 4


async def test_failed_flush_keeps_counts(slow_flush_runtime: Runtime) -> None:
    runtime = slow_flush_runtime
    admin = await bootstrap_if_empty(runtime)
    assert admin is not None
    for _ in range(3):
        assert (await runtime.verifier.verify(admin.key, ip="192.0.2.5", context=SecurityContext())).valid
    real_db = runtime.usage.db
    runtime.usage.db = Database("sqlite+aiosqlite:////nonexistent-dir/nowhere.db")
    with pytest.raises(Exception):  # noqa: B017 - any driver error
        await runtime.usage.flush()
    await runtime.usage.db.dispose()
    runtime.usage.db = real_db
    assert (await runtime.verifier.verify(admin.key, ip="192.0.2.6", context=SecurityContext())).valid
    assert await runtime.usage.flush() == 1
    rows = await usage_rows(runtime, [admin.key_id])
    assert rows[admin.key_id][0] == 4
    assert rows[admin.key_id][2] == "192.0.2.6"


async def test_flush_waits_for_a_flush_in_flight(slow_flush_runtime: Runtime) -> None:
    """When flush() returns, every use recorded before the call is in the database, even if
    another flush (the background one) had already taken the batch."""
    import asyncio

    runtime = slow_flush_runtime
    admin = await bootstrap_if_empty(runtime)
    assert admin is not None
    await runtime.usage.flush()
    total = (await usage_rows(runtime, [admin.key_id]))[admin.key_id][0]
    for _ in range(5):
        for _ in range(3):
            assert (await runtime.verifier.verify(admin.key, ip=None, context=SecurityContext())).valid
        total += 3
        in_flight = asyncio.create_task(runtime.usage.flush())
        await asyncio.sleep(0)
        await runtime.usage.flush()
        assert (await usage_rows(runtime, [admin.key_id]))[admin.key_id][0] == total
        await in_flight
