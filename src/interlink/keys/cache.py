"""The in-process verification cache of API keys.

A cached entry is a snapshot of a key row (:class:`CachedKey`). Entries live for
``key_cache_ttl_seconds``; revocation, rotation and updates are pushed to every process at once by
the invalidation bus (:mod:`interlink.core.invalidation`), so the TTL only bounds staleness if a
push is lost.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any


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
