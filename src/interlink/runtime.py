"""Wiring: the long-lived objects of one process, built from :class:`Settings`.

The HTTP app, the worker and the CLI's maintenance commands all start from a :class:`Runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
from typing import TYPE_CHECKING

import structlog

from interlink.connections.catalogue import ProviderCatalogue, load_catalogue
from interlink.connectors.registry import ConnectorRegistry, load_registry
from interlink.core.crypto import Keyring, load_local_secrets
from interlink.core.db import Database
from interlink.core.invalidation import InvalidationBus, PostgresBus, RedisBus
from interlink.core.settings import Settings
from interlink.jobs.worker import Worker, WorkerConfig
from interlink.keys.cache import VerificationCache
from interlink.keys.ratelimit import KeyRateLimiter
from interlink.keys.security import SecurityLog
from interlink.keys.service import KeyManager, KeyVerifier
from interlink.keys.usage import UsageRecorder
from interlink.outbound.client import OutboundService
from interlink.outbound.transport import HttpTransport
from interlink.webhooks.channels import SmtpConfig
from interlink.webhooks.delivery import DeliveryConfig, DeliveryWorker

if TYPE_CHECKING:
    from interlink.connections.client import ConnectionClients

log = structlog.get_logger(__name__)


def psycopg_dsn(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg://...`` → ``postgresql://...`` for a raw psycopg connection."""
    scheme, sep, rest = sqlalchemy_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


YOUNG_GENERATION_THRESHOLD = 10_000
"""Net container allocations between two young-generation collections in a serving process
(Python's default is 700)."""


def tune_garbage_collector() -> None:
    """Set the garbage collector up for a long-running serving process, once start-up is complete
    (``interlink serve`` and ``interlink worker``).

    * Every object alive now (modules, the app, the catalogue, pools: what a started process keeps
      until it exits) leaves the collector's sight (``gc.freeze``), so full collections only walk
      what requests and jobs allocate; on the proxy route this cut the server's CPU per call by
      about a fifth.
    * The young generation is collected after :data:`YOUNG_GENERATION_THRESHOLD` net allocations
      instead of 700. At 700, a young collection ran every few requests and caught the state of the
      requests in flight (dozens at a time), which survived, was promoted and walked again by the
      older generations' collections: about a tenth of the proxy server's CPU went to the
      collector. Nearly everything a request allocates is freed by reference counting; what is left
      in cycles waits at most 10,000 allocations (a few megabytes at worst), and a young collection
      pauses for about a millisecond.

    See docs/benchmarks.md. Not for processes that build and drop many runtimes (tests): frozen
    objects are never collected."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


class Runtime:
    """Everything a process needs; ``start``/``stop`` run background tasks (listeners, flushers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The provider catalogue first: an invalid one raises CatalogueError before anything opens.
        self.providers: ProviderCatalogue = load_catalogue(settings.providers_file)
        # Then the connectors, checked against it (ConnectorSpecError names file, line and field).
        self.connectors: ConnectorRegistry = load_registry(settings.connectors_file, self.providers)
        self._provider_sync_task: asyncio.Task[None] | None = None
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(
            settings.effective_database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        local = load_local_secrets(
            settings.master_keys, settings.key_pepper, settings.data_dir, allow_generate=settings.is_sqlite
        )
        self.local_secrets = local
        self.keyring = Keyring.from_spec(local.master_keys)
        self.cache = VerificationCache(settings.key_cache_ttl_seconds, settings.key_cache_size)
        self.bus = self._make_bus()
        self.db.invalidation = self.bus
        self.limiter = KeyRateLimiter(settings.redis_url)
        self.usage = UsageRecorder(self.db, settings.key_usage_flush_seconds)
        self.security = SecurityLog(self.db, settings.security_new_ip_window_days)
        self.keys = KeyManager(
            local.key_pepper,
            default_environment=settings.key_environment,
            default_grace_seconds=settings.default_rotation_grace_seconds,
            new_ip_window_days=settings.security_new_ip_window_days,
        )
        self.verifier = KeyVerifier(
            self.db, local.key_pepper, self.cache, self.limiter, self.usage, self.security
        )
        self.trusted_proxy_networks = [
            ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies
        ]
        self.allowed_target_networks = [
            ipaddress.ip_network(n, strict=False) for n in settings.allowed_target_networks
        ]
        self.known_tenants: set[str] = set()
        self.worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self.transport = HttpTransport(allowed_networks=self.allowed_target_networks)
        self.outbound = OutboundService(
            db=self.db,
            redis_url=settings.redis_url,
            allowed_networks=self.allowed_target_networks,
            log_flush_seconds=settings.outbound_log_flush_seconds,
            log_batch_rows=settings.outbound_log_batch_rows,
        )
        self.smtp = SmtpConfig.from_settings(settings)
        self.delivery_worker: DeliveryWorker | None = None
        self._delivery_task: asyncio.Task[None] | None = None
        self._started = False
        self._connection_clients: ConnectionClients | None = None

    @property
    def connection_clients(self) -> ConnectionClients:
        """Calls to providers through connections (one per process: credential plans are shared)."""
        if self._connection_clients is None:
            from interlink.connections.client import ConnectionClients

            self._connection_clients = ConnectionClients.build(self)
        return self._connection_clients

    def _make_bus(self) -> InvalidationBus:
        """PostgreSQL: NOTIFY sent inside the changing transaction, so an invalidation exists
        exactly when the change commits (Redis, if configured, only shares rate limits). SQLite
        with Redis (several local processes): Redis pub/sub. SQLite alone: one process, local."""
        if not self.db.is_sqlite:
            return PostgresBus(self._invalidate, self._clear_caches, psycopg_dsn(self.db.url))
        if self.settings.redis_url:
            return RedisBus(self._invalidate, self._clear_caches, self.settings.redis_url)
        return InvalidationBus(self._invalidate, self._clear_caches)

    def _invalidate(self, item_id: str) -> None:
        """Row ``item_id`` changed: drop it from every in-process cache (ids are unique across
        tables, so each cache ignores ids it does not hold)."""
        self.cache.invalidate(item_id)
        if self._connection_clients is not None:
            self._connection_clients.forget(item_id)

    def _clear_caches(self) -> None:
        self.cache.clear()
        if self._connection_clients is not None:
            self._connection_clients.forget_all()

    def make_worker(self) -> Worker:
        """A job worker bound to this runtime (LISTEN wake-ups on PostgreSQL)."""
        from interlink.jobs.registry import build_handlers

        config = WorkerConfig(
            concurrency=self.settings.worker_concurrency,
            batch_size=self.settings.worker_concurrency,
            lease_seconds=self.settings.worker_lease_seconds,
            poll_interval=self.settings.worker_poll_seconds,
            listen_dsn=None if self.db.is_sqlite else psycopg_dsn(self.db.url),
        )
        return Worker(self.db, build_handlers(self), config, services=self)

    def make_delivery_worker(self) -> DeliveryWorker:
        """A webhook delivery worker bound to this runtime (LISTEN wake-ups on PostgreSQL)."""
        config = DeliveryConfig(
            concurrency=self.settings.delivery_concurrency,
            batch_size=self.settings.delivery_batch_size,
            lease_seconds=self.settings.delivery_lease_seconds,
            poll_interval=self.settings.worker_poll_seconds,
            listen_dsn=None if self.db.is_sqlite else psycopg_dsn(self.db.url),
        )
        return DeliveryWorker(self.db, self.keyring, self.transport, config, smtp=self.smtp)

    async def start(self, *, with_worker: bool = False) -> None:
        """Start background tasks; ``with_worker`` also runs a job worker in this process."""
        if self._started:
            return
        await self.bus.start()
        self.usage.start()
        self.outbound.start()
        await self._sync_providers()
        if with_worker:
            from interlink.jobs.registry import ensure_builtin_schedules

            await ensure_builtin_schedules(self.db)
            self.worker = self.make_worker()
            self._worker_task = asyncio.create_task(self.worker.run(), name="job-worker")
            self.delivery_worker = self.make_delivery_worker()
            self._delivery_task = asyncio.create_task(self.delivery_worker.run(), name="delivery-worker")
        self._started = True

    async def _sync_providers(self) -> None:
        """Mirror the catalogue into ``integration_providers``; if the database does not answer,
        keep trying in the background (with backoff) instead of failing the start."""
        from interlink.connections.providers import sync_providers

        try:
            await sync_providers(self.db, self.providers)
        except Exception as exc:
            log.warning("provider_catalogue_sync_failed", error=str(exc)[:500], retrying=True)
            self._provider_sync_task = asyncio.create_task(self._retry_provider_sync(), name="provider-sync")

    async def _retry_provider_sync(self) -> None:
        from interlink.connections.providers import sync_providers

        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await sync_providers(self.db, self.providers)
                return
            except Exception as exc:
                log.warning("provider_catalogue_sync_failed", error=str(exc)[:500], retrying=True)
                delay = min(delay * 2, 60.0)

    async def stop(self) -> None:
        if self._started:
            if self.worker is not None and self._worker_task is not None:
                self.worker.stop()
                with contextlib.suppress(Exception):
                    await self._worker_task
                self.worker, self._worker_task = None, None
            if self.delivery_worker is not None and self._delivery_task is not None:
                self.delivery_worker.stop()
                with contextlib.suppress(Exception):
                    await self._delivery_task
                self.delivery_worker, self._delivery_task = None, None
            if self._provider_sync_task is not None:
                self._provider_sync_task.cancel()
                with contextlib.suppress(BaseException):
                    await self._provider_sync_task
                self._provider_sync_task = None
            await self.usage.stop()
            await self.bus.stop()
            self._started = False
        await self.transport.close()
        await self.outbound.close()
        await self.db.dispose()
