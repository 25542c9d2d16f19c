"""The bus that keeps every process's in-memory caches honest (API keys, connection state).

A cache entry names its row by id. When a unit of work changes such a row it says so with
:func:`interlink.core.db.note_change`; :meth:`interlink.core.db.Database.unit_of_work` then asks the
bus to tell every process, which evicts the id from all its caches:

* PostgreSQL: ``NOTIFY`` is sent inside the changing transaction, so it is delivered exactly when
  the change commits; each process ``LISTEN``s on a dedicated connection.
* Redis (SQLite deployments with several processes): a pub/sub channel, published after commit.
  On PostgreSQL the transactional NOTIFY is used even when Redis is configured.
* SQLite (embedded, one process): local eviction is enough.

If a listener connection drops, the process clears its caches when it reconnects, so a missed
message can never keep a revoked key or a disabled connection alive. Ids are unique across
tables (each kind has its own prefix), so one channel serves every cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Collection
from typing import Any

import sqlalchemy as sa
import structlog

from interlink.core import pg_listen

log = structlog.get_logger(__name__)
CHANNEL = "interlink_key_changes"
"""The NOTIFY / pub-sub channel (named after its first use; kept so mixed versions still hear each
other during a rolling upgrade)."""


Handler = Callable[[str], None]


async def pg_notify(session: Any, ids: Collection[str]) -> None:
    """``NOTIFY`` each id on :data:`CHANNEL` inside ``session``'s transaction (PostgreSQL)."""
    for item_id in ids:
        await session.execute(sa.select(sa.func.pg_notify(CHANNEL, item_id)))


class NotifyOnly:
    """The bus of a PostgreSQL :class:`~interlink.core.db.Database` that no runtime owns (a
    command-line tool, a script): it keeps no cache, but the processes that do must still hear of
    its changes."""

    async def notify_in_transaction(self, session: Any, ids: Collection[str]) -> None:
        await pg_notify(session, ids)

    async def publish_after_commit(self, ids: Collection[str]) -> None:
        return None


class InvalidationBus:
    """Delivers "row X changed" to every process. The base class is local-only (one process)."""

    def __init__(self, handler: Handler, on_reset: Callable[[], None]) -> None:
        self.handler = handler
        self.on_reset = on_reset

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def notify_in_transaction(self, session: Any, ids: Collection[str]) -> None:
        """Called inside the changing transaction, before it commits (PostgreSQL sends NOTIFY)."""
        return None

    async def publish_after_commit(self, ids: Collection[str]) -> None:
        """Called after the changing transaction committed."""
        for item_id in ids:
            self.handler(item_id)


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
            log.warning("cache_invalidation_listener_not_ready", bus=type(self).__name__)

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
                log.warning("cache_invalidation_listener_lost", error=str(exc), bus=type(self).__name__)
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

    async def notify_in_transaction(self, session: Any, ids: Collection[str]) -> None:
        await pg_notify(session, ids)

    async def publish_after_commit(self, ids: Collection[str]) -> None:
        # NOTIFY was sent in the transaction; evict locally too, without waiting for the echo.
        for item_id in ids:
            self.handler(item_id)


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

    async def publish_after_commit(self, ids: Collection[str]) -> None:
        import redis.asyncio as aioredis

        for item_id in ids:
            self.handler(item_id)
        if self._client is None:
            self._client = aioredis.from_url(self.url)
        for item_id in ids:
            await self._client.publish(CHANNEL, item_id)

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.aclose()
