"""The verification cache: TTL, size bound, eviction by key id, and the invalidation race guard."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event

from interlink.bootstrap import BootstrapResult
from interlink.core.crypto import keyed_hash
from interlink.keys import cache as cache_module
from interlink.keys.cache import CachedKey, VerificationCache
from interlink.keys.security import SecurityContext
from interlink.runtime import Runtime
from tests.conftest import auth


def entry(key_id: str) -> CachedKey:
    return CachedKey(
        id=key_id,
        tenant_id="ten_x",
        kind="tenant",
        name=key_id,
        prefix="il_live_abcdef",
        key_hash=f"hash-{key_id}",
        environment="PRODUCTION",
        scopes=frozenset({"keys:read"}),
        status="ACTIVE",
        expires_at=None,
        grace_until=None,
        allowed_networks=(),
        rate_limit=None,
        rate_limit_period_seconds=None,
        meta={},
        expires_at_dt=None,
    )


def test_put_get_invalidate_clear() -> None:
    cache = VerificationCache(ttl_seconds=60, max_size=10)
    cache.put(entry("a"))
    cache.put(entry("b"))
    assert cache.get("hash-a") == entry("a") and len(cache) == 2
    cache.invalidate("a")
    assert cache.get("hash-a") is None and cache.get("hash-b") is not None
    cache.invalidate("never-cached")
    cache.clear()
    assert len(cache) == 0 and cache.get("hash-b") is None


def test_entries_expire_after_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: now[0])
    cache = VerificationCache(ttl_seconds=30, max_size=10)
    cache.put(entry("a"))
    now[0] += 29.9
    assert cache.get("hash-a") is not None
    now[0] += 0.2
    assert cache.get("hash-a") is None
    assert len(cache) == 0


def test_size_is_bounded() -> None:
    cache = VerificationCache(ttl_seconds=60, max_size=3)
    for name in "abcde":
        cache.put(entry(name))
    assert len(cache) == 3
    assert cache.get("hash-a") is None and cache.get("hash-b") is None
    assert all(cache.get(f"hash-{n}") is not None for n in "cde")
    cache.invalidate("a")  # evicted entries leave no dangling id mapping behind
    assert len(cache) == 3


def test_disabled_cache_keeps_nothing() -> None:
    for cache in (
        VerificationCache(ttl_seconds=0, max_size=10),
        VerificationCache(ttl_seconds=60, max_size=0),
    ):
        cache.put(entry("a"))
        assert cache.get("hash-a") is None


def test_stale_put_after_invalidation_is_ignored() -> None:
    cache = VerificationCache(ttl_seconds=60, max_size=10)
    seen = cache.generation
    cache.invalidate("a")  # a revocation arrives while the row is being read
    cache.put(entry("a"), seen)
    assert cache.get("hash-a") is None
    seen = cache.generation
    cache.clear()
    cache.put(entry("a"), seen)
    assert cache.get("hash-a") is None
    cache.put(entry("a"), cache.generation)
    assert cache.get("hash-a") is not None


async def test_revocation_racing_with_a_cache_miss_is_not_cached(
    client: httpx.AsyncClient, admin: BootstrapResult, runtime: Runtime
) -> None:
    made = await client.post(
        "/v1/keys", json={"name": "race", "scopes": ["keys:read"]}, headers=auth(admin.key)
    )
    key, key_id = made.json()["key"], made.json()["id"]
    key_hash = keyed_hash(runtime.keys.pepper, key)
    assert runtime.cache.get(key_hash) is None

    def invalidate_during_read(_c: Any, _cu: Any, statement: str, *_rest: Any) -> None:
        if "FROM api_keys" in statement:
            runtime.cache.invalidate(key_id)  # as a NOTIFY for this key would, mid-read

    engine = runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", invalidate_during_read)
    try:
        result = await runtime.verifier.verify(key, ip=None, context=SecurityContext())
    finally:
        event.remove(engine, "before_cursor_execute", invalidate_during_read)
    assert result.valid
    assert runtime.cache.get(key_hash) is None  # the possibly stale row was not kept
    assert (await runtime.verifier.verify(key, ip=None, context=SecurityContext())).valid
    assert runtime.cache.get(key_hash) is not None
