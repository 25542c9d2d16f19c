"""The eleven enums of the integration guide.

Names follow the guide; the values are Interlink's own. Every value is a lower- or upper-case
string that is stored as-is in VARCHAR columns, so adding a value never needs a migration.
"""

from __future__ import annotations

from enum import StrEnum


class ApiKeyStatus(StrEnum):
    """Lifecycle state of an API key."""

    ACTIVE = "ACTIVE"
    """Usable."""
    ROTATING = "ROTATING"
    """Replaced by a newer key; still usable until its grace period ends."""
    EXPIRED = "EXPIRED"
    """Past its ``expiresAt`` or its rotation grace period; refused."""
    REVOKED = "REVOKED"
    """Revoked by an operator; refused at once in every process."""


class ApiKeyScope(StrEnum):
    """Permission carried by an API key. Each route names the scope it needs.

    ``admin`` implies every other scope. ``*:write`` does not imply ``*:read``.
    """

    ADMIN = "admin"
    """Everything, including key management."""
    TENANTS_READ = "tenants:read"
    TENANTS_WRITE = "tenants:write"
    """Create and change tenants (platform keys only)."""
    KEYS_READ = "keys:read"
    KEYS_WRITE = "keys:write"
    """Create, rotate and revoke keys (never with more scopes than the caller holds)."""
    KEYS_VERIFY = "keys:verify"
    """Call ``POST /v1/keys/verify`` to check keys presented to a host application."""
    AUDIT_READ = "audit:read"
    """Read audit events and security events."""
    SECRETS_READ = "secrets:read"
    """Read secret metadata (never values)."""
    SECRETS_WRITE = "secrets:write"
    EVENTS_READ = "events:read"
    EVENTS_WRITE = "events:write"
    WEBHOOKS_READ = "webhooks:read"
    WEBHOOKS_WRITE = "webhooks:write"
    CONNECTIONS_READ = "connections:read"
    CONNECTIONS_WRITE = "connections:write"
    MAPPINGS_READ = "mappings:read"
    MAPPINGS_WRITE = "mappings:write"


class TokenType(StrEnum):
    """What kind of credential a stored secret or key is."""

    API_KEY = "API_KEY"
    """An Interlink API key or a provider's static API key."""
    BEARER = "BEARER"
    """A static bearer token."""
    BASIC = "BASIC"
    """A username and password pair."""
    OAUTH2_ACCESS = "OAUTH2_ACCESS"
    OAUTH2_REFRESH = "OAUTH2_REFRESH"
    OAUTH2_CLIENT_SECRET = "OAUTH2_CLIENT_SECRET"  # noqa: S105 - a type name, not a secret
    WEBHOOK_SECRET = "WEBHOOK_SECRET"  # noqa: S105 - a type name, not a secret
    """A signing secret for webhooks (``whsec_``)."""
    GENERIC = "GENERIC"
    """Anything else."""


class RetentionPolicy(StrEnum):
    """How long payloads, attempts and audit records are kept."""

    NONE = "NONE"
    """Payloads are dropped as soon as they are no longer needed."""
    DAYS_1 = "DAYS_1"
    DAYS_7 = "DAYS_7"
    DAYS_30 = "DAYS_30"
    DAYS_90 = "DAYS_90"
    DAYS_365 = "DAYS_365"
    FOREVER = "FOREVER"

    @property
    def days(self) -> int | None:
        """Days to keep, 0 for NONE, None for FOREVER."""
        table = {"NONE": 0, "DAYS_1": 1, "DAYS_7": 7, "DAYS_30": 30, "DAYS_90": 90, "DAYS_365": 365}
        return table.get(self.value)


class DeliveryStatus(StrEnum):
    """State of one webhook delivery (one event to one endpoint)."""

    PENDING = "PENDING"
    """Waiting for its first attempt."""
    SENDING = "SENDING"
    """Claimed by a worker; an attempt is in flight."""
    RETRYING = "RETRYING"
    """An attempt failed; another is scheduled."""
    DELIVERED = "DELIVERED"
    """An attempt succeeded."""
    FAILED = "FAILED"
    """Retries exhausted or the endpoint refused for good."""
    CANCELLED = "CANCELLED"
    """Dropped by an operator or because the endpoint was deleted."""


class DeliveryChannel(StrEnum):
    """How a delivery reaches its endpoint."""

    WEBHOOK = "WEBHOOK"
    """Signed HTTP POST."""
    EMAIL = "EMAIL"
    """SMTP message."""
    SLACK = "SLACK"
    """Slack incoming-webhook message."""


class IntegrationCategory(StrEnum):
    """What a provider does."""

    ACCOUNTING = "ACCOUNTING"
    CRM = "CRM"
    PAYMENTS = "PAYMENTS"
    COMMUNICATION = "COMMUNICATION"
    ECOMMERCE = "ECOMMERCE"
    DEVELOPER_TOOLS = "DEVELOPER_TOOLS"
    PRODUCTIVITY = "PRODUCTIVITY"
    SUPPORT = "SUPPORT"
    MARKETING = "MARKETING"
    PROJECT_MANAGEMENT = "PROJECT_MANAGEMENT"
    ERP = "ERP"
    STORAGE = "STORAGE"
    ANALYTICS = "ANALYTICS"
    HR = "HR"
    OTHER = "OTHER"


class IntegrationConnectionStatus(StrEnum):
    """State of a tenant's connection to a provider."""

    PENDING = "PENDING"
    """Created; waiting for credentials or an OAuth2 callback."""
    ACTIVE = "ACTIVE"
    """Credentials valid; usable."""
    EXPIRED = "EXPIRED"
    """Credentials expired and could not be refreshed."""
    ERROR = "ERROR"
    """The provider refused the credentials or keeps failing."""
    DISABLED = "DISABLED"
    """Turned off by the tenant or an operator."""
    REVOKED = "REVOKED"
    """Access revoked at the provider or deleted by the tenant."""


class IntegrationProviderStatus(StrEnum):
    """Availability of a provider in the catalogue."""

    ACTIVE = "ACTIVE"
    BETA = "BETA"
    DEPRECATED = "DEPRECATED"
    """Existing connections keep working; new ones are discouraged."""
    DISABLED = "DISABLED"
    """No new connections."""


class IntegrationEnvironment(StrEnum):
    """Which of a provider's (or Interlink's) environments something belongs to."""

    PRODUCTION = "PRODUCTION"
    STAGING = "STAGING"
    SANDBOX = "SANDBOX"
    DEVELOPMENT = "DEVELOPMENT"

    @property
    def key_tag(self) -> str:
        """Short tag used inside API keys: ``il_<tag>_...``."""
        return {"PRODUCTION": "live", "STAGING": "stage", "SANDBOX": "test", "DEVELOPMENT": "dev"}[self.value]


class AuthenticationType(StrEnum):
    """How Interlink authenticates to a provider."""

    NONE = "NONE"
    API_KEY = "API_KEY"
    BASIC = "BASIC"
    BEARER = "BEARER"
    OAUTH2_AUTHORIZATION_CODE = "OAUTH2_AUTHORIZATION_CODE"
    OAUTH2_CLIENT_CREDENTIALS = "OAUTH2_CLIENT_CREDENTIALS"
    HMAC = "HMAC"
