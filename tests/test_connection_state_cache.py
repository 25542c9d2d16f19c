"""Each process keeps a connection's call state (status, token version) in memory; a change made
by any process reaches every other at once: PostgreSQL LISTEN/NOTIFY, Redis pub/sub for SQLite
with several processes, local eviction for one SQLite process. Calls go through the proxy of two
runtimes (two processes' caches) on one database, against a real provider stand-in on loopback."""

from __future__ import annotations

import asyncio
import textwrap
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from interlink.bootstrap import bootstrap_if_empty
from interlink.connections.models import IntegrationConnection
from interlink.core.db import Database
from interlink.core.enums import IntegrationConnectionStatus
from interlink.core.settings import Settings
from interlink.runtime import Runtime
from tests.api_helpers import serve
from tests.conftest import auth, make_settings
from tests.echo_api import EchoApi, echo_api_fixture  # noqa: F401  (fixture)
from tests.services import REDIS_URL, need, redis_available

LONG_TTL = 3600.0  # the TTL can never be what refreshes the state in these tests
POLL_SECONDS = 5.0


def _settings(db_url: str, data_dir: Path, api: EchoApi, **overrides: Any) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    providers = data_dir / "providers.yaml"
    providers.write_text(
        textwrap.dedent(
            f"""\
            version: 1
            providers:
              - key: echo
                name: Echo
                category: CRM
                docs_url: https://example.com/docs
                auth_types: [BEARER]
                base_urls:
                  PRODUCTION: {api.base_url}
            """
        )
    )
    return make_settings(
        db_url,
        data_dir,
        providers_file=providers,
        allowed_target_networks=["127.0.0.0/8"],
        connection_cache_ttl_seconds=LONG_TTL,
        **overrides,
    )


async def poll(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + POLL_SECONDS
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {POLL_SECONDS}s: {what}")
        await asyncio.sleep(0.02)


async def create_connection(client: httpx.AsyncClient, key: str, name: str, token: str) -> str:
    """A BEARER connection to the echo provider; its id."""
    created = await client.post(
        "/v1/connections",
        json={
            "providerKey": "echo",
            "name": name,
            "environment": "PRODUCTION",
            "authType": "BEARER",
            "credentials": {"token": token},
        },
        headers=auth(key),
    )
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def proxy(client: httpx.AsyncClient, key: str, connection_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/connections/{connection_id}/proxy", json={"path": "/echo/state"}, headers=auth(key)
    )


async def proxy_until_cached(
    runtime: Runtime, client: httpx.AsyncClient, key: str, connection_id: str
) -> None:
    """Call through ``connection_id`` until this process holds its state. The announcement of the
    connection's own creation may reach the process while the first call reads the state; that read
    is then rightly not kept, and a later call caches it."""

    async def cached() -> bool:
        called = await proxy(client, key, connection_id)
        assert called.status_code == 200, called.text
        return connection_id in runtime.connection_clients._states

    await poll(cached, "the process caches the connection's state")


async def two_processes_follow_changes(settings_a: Settings, settings_b: Settings, api: EchoApi) -> None:
    async with AsyncExitStack() as stack:
        runtime_a, client_a = await stack.enter_async_context(serve(settings_a))
        runtime_b, client_b = await stack.enter_async_context(serve(settings_b))
        admin = await bootstrap_if_empty(runtime_a)
        assert admin is not None
        connection_id = await create_connection(client_a, admin.key, "shared", "first-token")
        first = await proxy(client_b, admin.key, connection_id)
        assert first.status_code == 200, first.text
        assert first.json()["data"]["headers"]["authorization"] == "Bearer first-token"
        await proxy_until_cached(runtime_b, client_b, admin.key, connection_id)  # B calls from memory

        disabled = await client_a.patch(
            f"/v1/connections/{connection_id}", json={"status": "DISABLED"}, headers=auth(admin.key)
        )
        assert disabled.status_code == 200, disabled.text

        async def refused_in_b() -> bool:
            return (await proxy(client_b, admin.key, connection_id)).status_code == 409

        await poll(refused_in_b, "process B refuses calls through the disabled connection")
        calls = api.requests
        assert (await proxy(client_b, admin.key, connection_id)).json()["connectionStatus"] == "DISABLED"
        assert api.requests == calls  # nothing was sent

        await client_a.patch(
            f"/v1/connections/{connection_id}",
            json={"status": "ACTIVE", "credentials": {"token": "second-token"}},
            headers=auth(admin.key),
        )

        async def new_token_in_b() -> bool:
            answer = await proxy(client_b, admin.key, connection_id)
            return answer.status_code == 200 and (
                answer.json()["data"]["headers"]["authorization"] == "Bearer second-token"
            )

        await poll(new_token_in_b, "process B calls again, with the replaced credentials")

        deleted = await client_a.delete(f"/v1/connections/{connection_id}", headers=auth(admin.key))
        assert deleted.status_code == 204

        async def gone_in_b() -> bool:
            return (await proxy(client_b, admin.key, connection_id)).status_code == 404

        await poll(gone_in_b, "process B answers 404 for the deleted connection")


async def test_postgres_notify_reaches_every_process(pg_url: str, tmp_path: Path, echo_api: EchoApi) -> None:
    await two_processes_follow_changes(
        _settings(pg_url, tmp_path / "a", echo_api), _settings(pg_url, tmp_path / "b", echo_api), echo_api
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_redis_reaches_every_sqlite_process(db_url: str, tmp_path: Path, echo_api: EchoApi) -> None:
    need(redis_available(), f"Redis not reachable at {REDIS_URL}")
    await two_processes_follow_changes(
        _settings(db_url, tmp_path / "a", echo_api, redis_url=REDIS_URL),
        _settings(db_url, tmp_path / "b", echo_api, redis_url=REDIS_URL),
        echo_api,
    )


async def test_one_process_applies_a_change_to_the_next_call(
    db_url: str, tmp_path: Path, echo_api: EchoApi
) -> None:
    async with serve(_settings(db_url, tmp_path / "a", echo_api)) as (runtime, client):
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        connection_id = await create_connection(client, admin.key, "one", "t")
        assert (await proxy(client, admin.key, connection_id)).status_code == 200
        await client.patch(
            f"/v1/connections/{connection_id}", json={"status": "DISABLED"}, headers=auth(admin.key)
        )
        assert (await proxy(client, admin.key, connection_id)).status_code == 409  # no waiting


async def test_a_change_during_a_read_is_not_cached(db_url: str, tmp_path: Path, echo_api: EchoApi) -> None:
    """A state read that started before an invalidation arrived may hold the old row: it serves
    that one call but is not kept."""
    async with serve(_settings(db_url, tmp_path / "a", echo_api)) as (runtime, client):
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        connection_id = await create_connection(client, admin.key, "race", "t")
        clients = runtime.connection_clients
        reader = clients._state
        real_read = reader.read

        async def read_then_change(tenant_id: str, item_id: str) -> tuple[Any, ...] | None:
            row = await real_read(tenant_id, item_id)
            clients.forget(item_id)  # as if the bus delivered a change while the row was in flight
            return row

        reader.read = read_then_change  # type: ignore[method-assign]
        try:
            assert (await proxy(client, admin.key, connection_id)).status_code == 200
        finally:
            reader.read = real_read  # type: ignore[method-assign]
        assert connection_id not in clients._states
        await proxy_until_cached(runtime, client, admin.key, connection_id)


async def test_a_change_made_without_a_runtime_still_reaches_the_processes(
    pg_url: str, tmp_path: Path, echo_api: EchoApi
) -> None:
    """A tool or script that writes through a bare :class:`Database` (no runtime, no cache of its
    own) on PostgreSQL still announces the change to the processes that cache it."""
    async with serve(_settings(pg_url, tmp_path / "a", echo_api)) as (runtime, client):
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        connection_id = await create_connection(client, admin.key, "scripted", "t")
        await proxy_until_cached(runtime, client, admin.key, connection_id)
        tool = Database(pg_url)
        try:
            async with tool.unit_of_work() as session:
                row = await session.get(IntegrationConnection, connection_id)
                assert row is not None
                row.status = IntegrationConnectionStatus.DISABLED
        finally:
            await tool.dispose()

        async def refused() -> bool:
            return (await proxy(client, admin.key, connection_id)).status_code == 409

        await poll(refused, "the process refuses calls after a change made by a bare Database")
