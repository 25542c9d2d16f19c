"""Revocation reaches every process at once: two runtimes (separate caches) on one database,
invalidated by PostgreSQL LISTEN/NOTIFY or by Redis pub/sub; a dropped listener clears the cache."""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from interlink.bootstrap import bootstrap_if_empty
from interlink.core.crypto import keyed_hash
from interlink.core.invalidation import CHANNEL, PostgresBus, RedisBus
from interlink.core.settings import Settings
from interlink.runtime import Runtime, psycopg_dsn
from tests.api_helpers import serve
from tests.conftest import auth, make_settings
from tests.services import REDIS_URL, need, redis_available

POLL_SECONDS = 5.0
LONG_TTL = 3600.0  # the cache TTL can never be what evicts an entry in these tests


async def verify(client: httpx.AsyncClient, admin_key: str, key: str) -> str:
    response = await client.post("/v1/keys/verify", json={"key": key}, headers=auth(admin_key))
    assert response.status_code == 200, response.text
    return str(response.json()["code"])


async def poll(predicate: Any, what: str) -> None:
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"not within {POLL_SECONDS}s: {what}")
        await asyncio.sleep(0.02)


async def two_processes_see_revocation(settings_a: Settings, settings_b: Settings) -> None:
    async with AsyncExitStack() as stack:
        runtime_a, client_a = await stack.enter_async_context(serve(settings_a))
        runtime_b, client_b = await stack.enter_async_context(serve(settings_b))
        admin = await bootstrap_if_empty(runtime_a)
        assert admin is not None
        made = await client_a.post(
            "/v1/keys", json={"name": "shared", "scopes": ["keys:read"]}, headers=auth(admin.key)
        )
        key = made.json()["key"]
        key_hash = keyed_hash(runtime_a.keys.pepper, key)
        assert await verify(client_a, admin.key, key) == "valid"
        assert await verify(client_b, admin.key, key) == "valid"
        assert runtime_a.cache.get(key_hash) is not None
        assert runtime_b.cache.get(key_hash) is not None

        revoked = await client_a.post(f"/v1/keys/{made.json()['id']}/revoke", headers=auth(admin.key))
        assert revoked.status_code == 200
        assert runtime_a.cache.get(key_hash) is None
        assert await verify(client_a, admin.key, key) == "revoked"

        async def b_evicted() -> bool:
            return runtime_b.cache.get(key_hash) is None

        await poll(b_evicted, "process B evicts the revoked key")
        assert await verify(client_b, admin.key, key) == "revoked"


async def test_postgres_listen_notify_revokes_in_every_process(pg_url: str, tmp_path: Path) -> None:
    settings_a = make_settings(pg_url, tmp_path / "a", key_cache_ttl_seconds=LONG_TTL)
    settings_b = make_settings(pg_url, tmp_path / "b", key_cache_ttl_seconds=LONG_TTL)
    probe = Runtime(settings_a)
    assert isinstance(probe.bus, PostgresBus)
    await probe.stop()
    # With Redis configured too, invalidation stays on the transactional NOTIFY.
    if redis_available():
        with_redis = Runtime(make_settings(pg_url, tmp_path / "c", redis_url=REDIS_URL))
        assert isinstance(with_redis.bus, PostgresBus)
        await with_redis.stop()
    await two_processes_see_revocation(settings_a, settings_b)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # PostgreSQL always uses NOTIFY
async def test_redis_revokes_in_every_process(db_url: str, tmp_path: Path) -> None:
    need(redis_available(), f"Redis not reachable at {REDIS_URL}")
    settings_a = make_settings(db_url, tmp_path / "a", key_cache_ttl_seconds=LONG_TTL, redis_url=REDIS_URL)
    settings_b = make_settings(db_url, tmp_path / "b", key_cache_ttl_seconds=LONG_TTL, redis_url=REDIS_URL)
    probe = Runtime(settings_a)
    assert isinstance(probe.bus, RedisBus)
    await probe.stop()
    await two_processes_see_revocation(settings_a, settings_b)


async def test_updates_and_rotations_reach_other_processes(pg_url: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        runtime_a, client_a = await stack.enter_async_context(
            serve(make_settings(pg_url, tmp_path / "a", key_cache_ttl_seconds=LONG_TTL))
        )
        _runtime_b, client_b = await stack.enter_async_context(
            serve(make_settings(pg_url, tmp_path / "b", key_cache_ttl_seconds=LONG_TTL))
        )
        admin = await bootstrap_if_empty(runtime_a)
        assert admin is not None
        made = (
            await client_a.post(
                "/v1/keys", json={"name": "k", "scopes": ["keys:read"]}, headers=auth(admin.key)
            )
        ).json()
        assert await verify(client_b, admin.key, made["key"]) == "valid"
        await client_a.patch(
            f"/v1/keys/{made['id']}", json={"allowedIps": ["192.0.2.0/24"]}, headers=auth(admin.key)
        )

        async def denied_in_b() -> bool:
            return await verify(client_b, admin.key, made["key"]) == "ip_denied"

        await poll(denied_in_b, "process B sees the new allowed IP range")
        await client_a.patch(f"/v1/keys/{made['id']}", json={"allowedIps": []}, headers=auth(admin.key))

        async def valid_in_b() -> bool:
            return await verify(client_b, admin.key, made["key"]) == "valid"

        await poll(valid_in_b, "process B sees the range removed")
        await client_a.post(
            f"/v1/keys/{made['id']}/rotate", json={"gracePeriodSeconds": 0}, headers=auth(admin.key)
        )

        async def expired_in_b() -> bool:
            return await verify(client_b, admin.key, made["key"]) == "expired"

        await poll(expired_in_b, "process B sees the rotation without grace")


async def listener_pids(pg_url: str) -> list[int]:
    with psycopg.connect(psycopg_dsn(pg_url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
            (f"LISTEN {CHANNEL}",),
        ).fetchall()
    return sorted(int(r[0]) for r in rows)


async def test_dropped_listener_clears_cache_and_recovers(pg_url: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        runtime_a, client_a = await stack.enter_async_context(
            serve(make_settings(pg_url, tmp_path / "a", key_cache_ttl_seconds=LONG_TTL))
        )
        runtime_b, client_b = await stack.enter_async_context(
            serve(make_settings(pg_url, tmp_path / "b", key_cache_ttl_seconds=LONG_TTL))
        )
        admin = await bootstrap_if_empty(runtime_a)
        assert admin is not None
        made = (
            await client_a.post(
                "/v1/keys", json={"name": "k", "scopes": ["keys:read"]}, headers=auth(admin.key)
            )
        ).json()
        key_hash = keyed_hash(runtime_a.keys.pepper, made["key"])
        assert await verify(client_b, admin.key, made["key"]) == "valid"
        assert runtime_b.cache.get(key_hash) is not None and len(runtime_b.cache) >= 2

        before = await listener_pids(pg_url)
        assert len(before) == 2  # one listener per process
        with psycopg.connect(psycopg_dsn(pg_url), autocommit=True) as conn:
            for pid in before:
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # Revoke while the listeners are down: the NOTIFY may be lost, the revocation must not be.
        revoked = await client_a.post(f"/v1/keys/{made['id']}/revoke", headers=auth(admin.key))
        assert revoked.status_code == 200

        async def b_cleared() -> bool:
            return len(runtime_b.cache) == 0 or runtime_b.cache.get(key_hash) is None

        await poll(b_cleared, "process B drops its cache when its listener is lost")
        assert await verify(client_b, admin.key, made["key"]) == "revoked"

        async def reconnected() -> bool:
            pids = await listener_pids(pg_url)
            return len(pids) == 2 and not set(pids) & set(before)

        await poll(reconnected, "both processes LISTEN again on new connections")

        # After reconnecting, a later revocation is pushed as before.
        second = (
            await client_a.post(
                "/v1/keys", json={"name": "k2", "scopes": ["keys:read"]}, headers=auth(admin.key)
            )
        ).json()
        second_hash = keyed_hash(runtime_a.keys.pepper, second["key"])
        assert await verify(client_b, admin.key, second["key"]) == "valid"
        assert runtime_b.cache.get(second_hash) is not None
        await client_a.post(f"/v1/keys/{second['id']}/revoke", headers=auth(admin.key))

        async def b_evicted() -> bool:
            return runtime_b.cache.get(second_hash) is None

        await poll(b_evicted, "process B evicts after the listener reconnected")
        assert await verify(client_b, admin.key, second["key"]) == "revoked"


async def test_listener_loss_clears_the_whole_cache(pg_url: str, tmp_path: Path) -> None:
    """The clearing itself, observed directly: entries that no message touches are dropped too."""
    async with serve(make_settings(pg_url, tmp_path / "a", key_cache_ttl_seconds=LONG_TTL)) as (
        runtime,
        client,
    ):
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        keys = []
        for i in range(3):
            made = await client.post(
                "/v1/keys", json={"name": f"k{i}", "scopes": ["keys:read"]}, headers=auth(admin.key)
            )
            keys.append(made.json()["key"])
        for key in keys:
            assert await verify(client, admin.key, key) == "valid"
        hashes = [keyed_hash(runtime.keys.pepper, k) for k in keys]
        assert all(runtime.cache.get(h) is not None for h in hashes)
        pids = await listener_pids(pg_url)
        assert len(pids) == 1
        with psycopg.connect(psycopg_dsn(pg_url), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pids[0],))

        async def all_dropped() -> bool:
            return all(runtime.cache.get(h) is None for h in hashes)

        await poll(all_dropped, "every cached key is dropped when the listener connection is lost")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_dropped_redis_listener_clears_cache_and_recovers(db_url: str, tmp_path: Path) -> None:
    need(redis_available(), f"Redis not reachable at {REDIS_URL}")
    import redis.asyncio as aioredis

    settings = make_settings(db_url, tmp_path / "a", key_cache_ttl_seconds=LONG_TTL, redis_url=REDIS_URL)
    async with serve(settings) as (runtime, client):
        bus = runtime.bus
        assert isinstance(bus, RedisBus)
        admin = await bootstrap_if_empty(runtime)
        assert admin is not None
        made = (
            await client.post(
                "/v1/keys", json={"name": "k", "scopes": ["keys:read"]}, headers=auth(admin.key)
            )
        ).json()
        key_hash = keyed_hash(runtime.keys.pepper, made["key"])
        assert await verify(client, admin.key, made["key"]) == "valid"
        assert runtime.cache.get(key_hash) is not None
        redis = aioredis.from_url(REDIS_URL)
        try:

            async def listener_ids() -> list[str]:
                clients = await redis.client_list()
                return [str(c["id"]) for c in clients if c.get("name") == bus.client_name]

            before = await listener_ids()
            assert len(before) == 1
            await redis.client_kill_filter(_id=before[0])

            async def cleared() -> bool:
                return runtime.cache.get(key_hash) is None

            await poll(cleared, "the cache is dropped when the Redis listener is lost")

            async def reconnected() -> bool:
                ids = await listener_ids()
                return len(ids) == 1 and ids != before

            await poll(reconnected, "the listener subscribes again on a new connection")
            assert await verify(client, admin.key, made["key"]) == "valid"
            assert runtime.cache.get(key_hash) is not None
            # Messages from other processes are received again after the reconnect.
            await redis.publish(CHANNEL, made["id"])
            await poll(cleared, "an invalidation published after the reconnect is applied")
        finally:
            await redis.aclose()
