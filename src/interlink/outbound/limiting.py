"""Outbound rate limits and 429 blocks: in memory, or in Redis shared by every process.

* **Rate limits** use the ``limits`` library's moving window (exact: no burst at window edges),
  keyed ``conn:<connection>`` for a connection's limit and ``host:<host>`` for a provider host's.
  :meth:`OutboundLimiter.acquire` takes a slot, waiting for one (until the oldest request in the
  window leaves it) for at most the limit's ``max_wait_seconds``; past that the call fails
  ``rate_limited`` without being sent.
* **Blocks.** A 429 answer with ``Retry-After`` (or a reset time with nothing remaining) blocks the
  connection for that long: :meth:`OutboundLimiter.block` stores the block and every call for the
  connection, in every worker and process, waits until it passes before sending anything. With
  Redis the block is a key ``interlink:outbound:block:<connection>`` whose TTL is the time left
  (set to the longer of the current and the new block by a small script), so processes on
  machines with different clocks agree; without Redis it is a per-process dictionary. A block
  lasts at most :data:`MAX_BLOCK_SECONDS` (a day): a ``Retry-After`` date years ahead, a typo of the
  provider's, cannot stop a connection for good; the first call after a day asks again.
* **Redis down.** Limits and blocks fail open (the call goes ahead, a warning is logged): an
  outage of the shared store must not stop every outbound call.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from typing import Any, Final

import structlog
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from interlink.outbound.config import RateLimit

log = structlog.get_logger(__name__)

BLOCK_PREFIX: Final = "interlink:outbound:block:"
MAX_BLOCK_SECONDS: Final = 86_400.0
"""The longest a 429 blocks a connection."""
NAMESPACE: Final = "interlink-outbound"
_EXTEND_BLOCK = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


class RateLimitWaitExceeded(Exception):
    """No slot within ``max_wait_seconds``; ``retry_in`` says when one is expected."""

    def __init__(self, key: str, retry_in: float) -> None:
        super().__init__(f"rate limit of {key} reached; a slot frees in {retry_in:.1f} s")
        self.key = key
        self.retry_in = retry_in


class OutboundLimiter:
    def __init__(self, redis_url: str = "") -> None:
        self.redis_url = redis_url
        storage: Storage
        if redis_url:
            uri = redis_url if redis_url.startswith("async+") else "async+" + redis_url
            created = storage_from_string(uri, implementation="redispy")
            assert isinstance(created, Storage)
            storage = created
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self._items: dict[tuple[int, int], RateLimitItem] = {}
        self._blocks: dict[str, float] = {}  # memory: key -> monotonic time the block ends
        self._redis: Any = None
        self._extend: Any = None

    @property
    def shared(self) -> bool:
        return bool(self.redis_url)

    @property
    def may_block(self) -> bool:
        """False when no block can exist (no shared store, none in memory): nothing to wait for."""
        return bool(self.redis_url) or bool(self._blocks)

    def _item(self, limit: RateLimit) -> RateLimitItem:
        item = self._items.get((limit.limit, limit.period_seconds))
        if item is None:
            item = RateLimitItemPerSecond(limit.limit, limit.period_seconds, namespace=NAMESPACE)
            self._items[(limit.limit, limit.period_seconds)] = item
        return item

    def _client(self) -> Any:
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url)
            self._extend = self._redis.register_script(_EXTEND_BLOCK)
        return self._redis

    async def acquire(self, key: str, limit: RateLimit) -> float:
        """Take a slot of ``limit`` for ``key``; returns the seconds waited for it."""
        item = self._item(limit)
        waited = 0.0
        while True:
            try:
                if await self.strategy.hit(item, key):
                    return waited
                stats = await self.strategy.get_window_stats(item, key)
            except Exception as exc:  # the shared store is down: fail open
                log.warning("outbound_rate_limit_unavailable", error=str(exc))
                return waited
            retry_in = max(0.001, stats.reset_time - time.time())
            if waited + retry_in > limit.max_wait_seconds:
                raise RateLimitWaitExceeded(key, retry_in)
            # a little jitter so waiting workers do not all retry at the same instant
            pause = retry_in + random.uniform(0, min(0.05, retry_in / 10))
            await asyncio.sleep(pause)
            waited += pause

    async def blocked_for(self, key: str) -> float:
        """Seconds left of the block on ``key`` (0 when none)."""
        if not self.redis_url:
            until = self._blocks.get(key)
            if until is None:
                return 0.0
            left = until - time.monotonic()
            if left <= 0:
                self._blocks.pop(key, None)
                return 0.0
            return left
        try:
            ttl = await self._client().pttl(BLOCK_PREFIX + key)
        except Exception as exc:
            log.warning("outbound_block_unavailable", error=str(exc))
            return 0.0
        return max(0.0, int(ttl) / 1000.0) if int(ttl) > 0 else 0.0

    async def block(self, key: str, seconds: float) -> None:
        """Block ``key`` for ``seconds``, at most :data:`MAX_BLOCK_SECONDS` (keeping a longer block
        that is already there)."""
        if seconds <= 0:
            return
        seconds = min(seconds, MAX_BLOCK_SECONDS)
        if not self.redis_url:
            until = time.monotonic() + seconds
            if until > self._blocks.get(key, 0.0):
                self._blocks[key] = until
            return
        try:
            self._client()
            await self._extend(keys=[BLOCK_PREFIX + key], args=[max(1, math.ceil(seconds * 1000))])
        except Exception as exc:
            log.warning("outbound_block_unavailable", error=str(exc))

    async def reset(self) -> None:
        """Forget in-memory windows and blocks (shared Redis state is left alone: other processes
        and the key limiter use it too)."""
        if not self.redis_url:
            await self.storage.reset()
        self._blocks.clear()

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
