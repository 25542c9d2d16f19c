"""Service settings, read from ``INTERLINK_*`` environment variables (see docs/configuration.md)."""

from __future__ import annotations

import ipaddress
import json
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from interlink.core.enums import IntegrationEnvironment, RetentionPolicy

CidrList = Annotated[list[str], NoDecode]
"""CIDRs, given as comma-separated text or a JSON list (see ``Settings._cidr_list``)."""

MAX_SERVE_PROCESSES = 64
"""The most API processes ``interlink serve --processes`` runs."""


class Settings(BaseSettings):
    """Every setting of the service. Field docs are the reference in docs/configuration.md."""

    model_config = SettingsConfigDict(env_prefix="INTERLINK_", env_file=None, extra="ignore")

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL. Empty means the embedded SQLite file `<data_dir>/interlink.db`. "
        "PostgreSQL: `postgresql+psycopg://user@host:5432/db`.",
    )
    data_dir: Path = Field(
        default=Path(".interlink"),
        description="Folder for the embedded database and, when not configured, generated local secrets.",
    )
    master_keys: str = Field(
        default="",
        description="Comma-separated `kid:base64(32 bytes)` AES-256 keys for secrets; the first encrypts. "
        "Empty: generated into `<data_dir>/local-secrets.json` with a warning.",
    )
    key_pepper: str = Field(
        default="",
        description="Server pepper (base64, ≥32 bytes) for API key hashes. Empty: generated into "
        "`<data_dir>/local-secrets.json` with a warning. Changing it invalidates every key.",
    )
    redis_url: str = Field(
        default="",
        description="Optional Redis URL (`redis://127.0.0.1:6379/0`): shared rate limits and cache "
        "invalidation across processes.",
    )
    host: str = Field(default="127.0.0.1", description="Address `interlink serve` binds to.")
    port: int = Field(default=8000, ge=0, le=65535, description="Port `interlink serve` binds to.")
    serve_processes: int = Field(
        default=1,
        ge=1,
        le=MAX_SERVE_PROCESSES,
        description="API processes `interlink serve` runs on its port (about one per core). Several "
        "processes on one SQLite file need `INTERLINK_REDIS_URL` for instant key revocation and "
        "shared rate limits (docs/operations.md).",
    )
    public_url: str = Field(
        default="",
        description="Public base URL; defaults to http://host:port. OAuth2 providers redirect to "
        "`<public URL>/v1/oauth/callback`: register that URL with each provider.",
    )
    log_level: str = Field(default="INFO", description="Log level: DEBUG, INFO, WARNING, ERROR.")
    log_format: Literal["json", "console"] = Field(default="json", description="Log line format.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest accepted request body.")
    db_pool_size: int = Field(default=10, ge=1, description="Connections per process (PostgreSQL).")
    db_max_overflow: int = Field(default=10, ge=0, description="Extra connections under load (PostgreSQL).")
    key_cache_ttl_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How long a verified key stays in the in-process cache. Revocations are pushed "
        "to every process at once; the TTL only bounds staleness if a push is lost.",
    )
    key_cache_size: int = Field(default=100_000, ge=0, description="Most keys kept in the cache.")
    connection_cache_ttl_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a process reuses a connection's status and token version for calls "
        "through it without reading them. Changes are pushed to every process at once; the TTL "
        "only bounds staleness if a push is lost (or on SQLite with several processes and no Redis). "
        "0 reads them on every call.",
    )
    connection_max_response_bytes: int = Field(
        default=10 * 1024 * 1024,  # outbound.config.DEFAULT_MAX_RESPONSE_BYTES
        ge=1024,
        le=1024 * 1024 * 1024,
        description="Largest provider answer a call through a connection (the proxy, connectors, "
        "health checks) reads. The passthrough proxy answers a larger one with a 502 (errorClass "
        "too_large), never passing it on cut short; the JSON form marks it truncated. Each answer "
        "is held in memory whole while it is passed on.",
    )
    key_usage_flush_seconds: float = Field(
        default=5.0, gt=0, description="How often lastUsedAt and usage counters are written (batched)."
    )
    key_environment: IntegrationEnvironment = Field(
        default=IntegrationEnvironment.PRODUCTION,
        description="Default environment tag of new keys (`il_live_`, `il_test_`, ...).",
    )
    default_rotation_grace_seconds: int = Field(
        default=86_400, ge=0, description="Grace period of a rotated key when the request names none."
    )
    trusted_proxies: CidrList = Field(
        default_factory=list,
        description="CIDRs of reverse proxies whose `X-Forwarded-For` is believed (comma-separated, "
        "e.g. `10.0.0.0/8,192.168.0.0/16`, or a JSON list).",
    )
    allowed_target_networks: CidrList = Field(
        default_factory=list,
        description="CIDRs that outbound requests (webhook deliveries, connections, health checks) may "
        "reach even though they are private, loopback, link-local or metadata addresses "
        '(comma-separated, e.g. `10.20.0.0/16`, or a JSON list, e.g. `["10.20.0.0/16"]`).',
    )
    bootstrap: bool = Field(
        default=True,
        description="On first start, create a `default` tenant and print a platform admin key once.",
    )
    secret_rotation_days: int = Field(
        default=90, ge=1, description="Default `rotateBy` of a stored secret, in days after (re)rotation."
    )
    security_new_ip_window_days: int = Field(
        default=30, ge=1, description="A source IP not seen for a key within this window counts as new."
    )
    audit_retention: RetentionPolicy = Field(
        default=RetentionPolicy.DAYS_365, description="How long audit events are kept (daily purge)."
    )
    security_event_retention: RetentionPolicy = Field(
        default=RetentionPolicy.DAYS_90, description="How long security events are kept (daily purge)."
    )
    api_request_retention: RetentionPolicy = Field(
        default=RetentionPolicy.DAYS_30,
        description="How long the outbound request log (`external_api_requests`) is kept (daily purge).",
    )
    outbound_log_flush_seconds: float = Field(
        default=0.5,
        gt=0,
        description="How often the outbound request log buffer is written (also as soon as "
        "`INTERLINK_OUTBOUND_LOG_BATCH_ROWS` calls wait, and on shutdown).",
    )
    outbound_log_batch_rows: int = Field(
        default=500, ge=1, description="Most outbound request log rows written in one INSERT."
    )
    worker_concurrency: int = Field(default=8, ge=1, description="Jobs one worker process runs at once.")
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port on which `interlink worker` serves Prometheus metrics (`/metrics`: delivery "
        "attempts, outbound requests, jobs of that process). Empty: not served.",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="Address the worker's metrics port listens on."
    )
    worker_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often an idle worker polls (PostgreSQL also wakes it by NOTIFY)."
    )
    worker_lease_seconds: float = Field(
        default=60.0, gt=1, description="How long a claimed job stays held without a heartbeat."
    )
    delivery_concurrency: int = Field(
        default=64, ge=1, description="Webhook deliveries one worker process sends at once."
    )
    delivery_batch_size: int = Field(
        default=128, ge=1, description="Most deliveries claimed from the database in one statement."
    )
    delivery_lease_seconds: float = Field(
        default=60.0,
        gt=1,
        description="How long a claimed delivery stays held without a heartbeat before another worker "
        "may take it over.",
    )
    smtp_host: str = Field(
        default="",
        description="SMTP server for EMAIL endpoints. Empty: EMAIL deliveries fail (and are retried) with "
        "error class `unconfigured`; EMAIL endpoints can still be created.",
    )
    smtp_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="SMTP port; 0 means the usual one for `INTERLINK_SMTP_SECURITY`: 25 (none), 587 "
        "(starttls), 465 (tls).",
    )
    smtp_username: str = Field(default="", description="SMTP login (AUTH) user; empty: no login.")
    smtp_password: SecretStr = Field(
        default=SecretStr(""), description="SMTP login password. A secret: never logged or shown."
    )
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        default="starttls",
        description="`starttls` (upgrade a plain connection; refused if the server does not offer it), "
        "`tls` (TLS from the first byte, usually port 465) or `none` (plain text: local relays only).",
    )
    smtp_from: str = Field(
        default="",
        description="Sender of EMAIL deliveries (`From` and envelope sender), e.g. `webhooks@example.com` "
        "or `Interlink <webhooks@example.com>`; its domain also names the `Message-ID`.",
    )
    smtp_timeout_seconds: float = Field(
        default=30.0, gt=0, le=300, description="Bound on one SMTP exchange (connect, TLS, login, send)."
    )
    providers_file: Path | None = Field(
        default=None,
        description="An operator's provider catalogue (YAML, same format as the built-in one) that adds "
        "providers or overrides them by `key` (merged field by field). Validated at start-up: an "
        "invalid file stops `interlink serve` with the file, line and field.",
    )
    connectors_file: Path | None = Field(
        default=None,
        description="An operator's connector specs (YAML, the format of docs/api.md#connectors) that add "
        "declarative REST connectors or override built-in ones by `key`. Validated at start-up against "
        "the provider catalogue: an invalid file stops `interlink serve` with the file, line and field.",
    )
    connection_refresh_window_minutes: int = Field(
        default=10,
        ge=1,
        le=1440,
        description="The `connections.refresh` job (every 5 minutes) refreshes OAuth2 access tokens "
        "that expire within this many minutes.",
    )
    connection_health_interval_seconds: int = Field(
        default=300,
        ge=60,
        le=86_400,
        description="How often the `connections.health` job checks each connection (a connection's "
        "`metadata.healthCheckIntervalSeconds` overrides it).",
    )
    connection_health_retention_days: int = Field(
        default=30,
        ge=30,
        le=3650,
        description="Connection health checks older than this many days are purged by the daily "
        "retention job (at least 30: the 30-day availability is computed from them).",
    )
    inbound_receipt_retention_days: int = Field(
        default=90,
        ge=7,
        le=3650,
        description="How long an inbound source remembers a provider event id (and what an accepted "
        "request's signature covered) to answer repeats as duplicates; older receipts are purged by "
        "the daily retention job. Keep it above the longest retry window of your providers.",
    )
    run_worker: bool = Field(
        default=True,
        description="Run the job worker inside `interlink serve`; turn off when running separate "
        "`interlink worker` processes.",
    )

    @field_validator("trusted_proxies", "allowed_target_networks", mode="before")
    @classmethod
    def _cidr_list(cls, value: object) -> object:
        """Text from the environment: a JSON list when it starts with ``[``, else comma-separated."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a JSON list; give CIDRs as a JSON list or comma-separated") from None
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("trusted_proxies", "allowed_target_networks")
    @classmethod
    def _valid_cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator("providers_file", "connectors_file", mode="before")
    @classmethod
    def _no_empty_path(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("smtp_from")
    @classmethod
    def _valid_sender(cls, value: str) -> str:
        if value and "@" not in parseaddr(value)[1]:
            raise ValueError("INTERLINK_SMTP_FROM must be an email address, e.g. webhooks@example.com")
        return value

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'interlink.db').as_posix()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
