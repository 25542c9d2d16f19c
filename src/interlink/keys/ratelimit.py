"""Per-key rate limits with the ``limits`` library: in memory, or in Redis shared by all processes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    @property
    def headers(self) -> dict[str, str]:
        """IETF ``RateLimit-*`` headers (plus ``Retry-After`` when refused)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, self.reset_seconds))
        return headers


class KeyRateLimiter:
    """Sliding-window-counter limits keyed by API key id."""

    def __init__(self, redis_url: str = "") -> None:
        storage: Storage
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            created = storage_from_string(uri, implementation="redispy")
            assert isinstance(created, Storage)
            storage = created
        else:
            storage = MemoryStorage()
        self.storage = storage
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[tuple[int, int], RateLimitItem] = {}

    def _item(self, limit: int, period: int) -> RateLimitItem:
        item = self._items.get((limit, period))
        if item is None:
            item = RateLimitItemPerSecond(limit, period, namespace="interlink-key")
            self._items[(limit, period)] = item
        return item

    async def hit(self, key_id: str, limit: int, period_seconds: int) -> RateLimitDecision:
        """Count one use of ``key_id``; refuse when the window is full."""
        item = self._item(limit, period_seconds)
        allowed = await self.strategy.hit(item, key_id)
        stats = await self.strategy.get_window_stats(item, key_id)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return RateLimitDecision(
            allowed=allowed, limit=limit, remaining=max(0, stats.remaining), reset_seconds=reset
        )

    async def reset(self) -> None:
        await self.storage.reset()
