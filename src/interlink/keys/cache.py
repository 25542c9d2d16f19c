"""The in-process verification cache and the bus that keeps every process's cache honest.

A cached entry is a snapshot of a key row (:class:`CachedKey`). Entries live for
``key_cache_ttl_seconds``; revocation, rotation and updates are pushed to every process at once:

* PostgreSQL: ``NOTIFY interlink_key_changes`` is sent inside the changing transaction, so it is
  delivered exactly when the change commits; each process ``LISTEN``s on a dedicated connection.
* Redis (SQLite deployments with several processes): a pub/sub channel, published after commit.
  On PostgreSQL the transactional NOTIFY is used even when Redis is configured.
* SQLite (embedded, one process): local eviction is enough.

If a listener connection drops, the process clears its whole cache when it reconnects, so a missed
message can never keep a revoked key alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from interlink.core import pg_listen

log = structlog.get_logger(__name__)
CHANNEL = "interlink_key_changes"


@dataclass(frozen=True, slots=True)
class CachedKey:
    """What verification needs to know about a key, without touching the database."""

    id: str
    tenant_id: str
    kind: str
    name: str
    prefix: str
    key_hash: str
    environment: str
    scopes: frozenset[str]
    status: str
    expires_at: float | None
    grace_until: float | None
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    rate_limit: int | None
    rate_limit_period_seconds: int | None
    meta: dict[str, Any]
    expires_at_dt: datetime | None


class VerificationCache:
    """Bounded map from key hash to :class:`CachedKey`, with a TTL and eviction by key id.

    ``generation`` counts invalidations. A reader that loaded a row from the database passes the
    generation it saw *before* the read to :meth:`put`; if any invalidation arrived meanwhile the
    entry is not cached, so a revocation racing with a cache miss cannot leave a stale entry behind.
    """

    def __init__(self, ttl_seconds: float, max_size: int) -> None:
        self.ttl = ttl_seconds
        self.max_size = max_size
        self.generation = 0
        self._entries: dict[str, tuple[CachedKey, float]] = {}
        self._hash_by_id: dict[str, str] = {}

    def get(self, key_hash: str) -> CachedKey | None:
        hit = self._entries.get(key_hash)
        if hit is None:
            return None
        if hit[1] < time.monotonic():
            self._drop(key_hash)
            return None
        return hit[0]

    def put(self, entry: CachedKey, generation: int | None = None) -> None:
        """Cache ``entry``, unless an invalidation happened since ``generation`` was read."""
        if self.max_size <= 0 or self.ttl <= 0:
            return
        if generation is not None and generation != self.generation:
            return
        if len(self._entries) >= self.max_size:
            oldest = next(iter(self._entries))
            self._drop(oldest)
        self._entries[entry.key_hash] = (entry, time.monotonic() + self.ttl)
        self._hash_by_id[entry.id] = entry.key_hash

    def invalidate(self, key_id: str) -> None:
        self.generation += 1
        key_hash = self._hash_by_id.get(key_id)
        if key_hash is not None:
            self._drop(key_hash)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._hash_by_id.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key_hash: str) -> None:
        entry = self._entries.pop(key_hash, None)
        if entry is not None:
            self._hash_by_id.pop(entry[0].id, None)


Handler = Callable[[str], None]


class InvalidationBus:
    """Delivers "key X changed" to every process. The base class is local-only (one process)."""

    def __init__(self, handler: Handler, on_reset: Callable[[], None]) -> None:
        self.handler = handler
        self.on_reset = on_reset

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish_after_commit(self, key_ids: list[str]) -> None:
        """Called after the changing transaction committed."""
        for key_id in key_ids:
            self.handler(key_id)


class _ListenerBus(InvalidationBus):
    """Common loop for buses that hold a listening connection and reconnect on failure."""

    def __init__(self, handler: Handler, on_reset: Callable[[], None]) -> None:
        super().__init__(handler, on_reset)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__}-listener")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=5)
        except TimeoutError:
            log.warning("key_invalidation_listener_not_ready", bus=type(self).__name__)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=2)
            except (TimeoutError, Exception):
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task

    async def _run(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                await self._listen(self._mark_ready)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("key_invalidation_listener_lost", error=str(exc), bus=type(self).__name__)
            if self._stopping:
                return
            delay = 0.2 if self._ready.is_set() else min(delay * 2, 5.0)
            self._ready.clear()
            self.on_reset()
            await asyncio.sleep(delay)

    def _mark_ready(self) -> None:
        self.on_reset()
        self._ready.set()

    async def _listen(self, ready: Callable[[], None]) -> None:
        raise NotImplementedError


class PostgresBus(_ListenerBus):
    """LISTEN/NOTIFY on PostgreSQL; publishing happens inside the changing transaction."""

    def __init__(self, handler: Handler, on_reset: Callable[[], None], dsn: str) -> None:
        super().__init__(handler, on_reset)
        self.dsn = dsn

    async def _listen(self, ready: Callable[[], None]) -> None:
        await pg_listen.listen(
            self.dsn, CHANNEL, self.handler, should_stop=lambda: self._stopping, on_ready=ready
        )

    async def publish_after_commit(self, key_ids: list[str]) -> None:
        # NOTIFY was sent in the transaction; evict locally too, without waiting for the echo.
        for key_id in key_ids:
            self.handler(key_id)


class RedisBus(_ListenerBus):
    """Redis pub/sub; used whenever ``INTERLINK_REDIS_URL`` is set."""

    def __init__(self, handler: Handler, on_reset: Callable[[], None], url: str) -> None:
        super().__init__(handler, on_reset)
        self.url = url
        self._client: Any = None
        self.client_name = f"interlink-key-listener-{os.getpid()}-{id(self):x}"
        """Name of the listening connection, as shown by Redis ``CLIENT LIST``."""

    async def _listen(self, ready: Callable[[], None]) -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.url, client_name=self.client_name)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            ready()
            # Wait in short slices so that stop() ends the loop without cancelling a read.
            while not self._stopping:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self.handler(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()

    async def publish_after_commit(self, key_ids: list[str]) -> None:
        import redis.asyncio as aioredis

        for key_id in key_ids:
            self.handler(key_id)
        if self._client is None:
            self._client = aioredis.from_url(self.url)
        for key_id in key_ids:
            await self._client.publish(CHANNEL, key_id)

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.aclose()


NotifyInTransaction = Callable[[Any, list[str]], Awaitable[None]]
