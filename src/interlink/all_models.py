"""Imports every table so ``Base.metadata`` is complete (migrations, tests)."""

from interlink.connections.models import IntegrationConnection, IntegrationProvider
from interlink.core.models import AuditEvent, IntegrationSecret, Tenant
from interlink.jobs.models import Job, JobSchedule
from interlink.keys.models import ApiKey, SecurityEvent
from interlink.outbound.models import ExternalApiRequest
from interlink.webhooks.inbound.models import (
    WebhookInboundReceipt,
    WebhookInboundSecret,
    WebhookInboundSource,
)
from interlink.webhooks.models import (
    TenantWebhookConfig,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointSecret,
    WebhookEvent,
    WebhookEventType,
    WebhookReplay,
)

__all__ = [
    "ApiKey",
    "AuditEvent",
    "ExternalApiRequest",
    "IntegrationConnection",
    "IntegrationProvider",
    "IntegrationSecret",
    "Job",
    "JobSchedule",
    "SecurityEvent",
    "Tenant",
    "TenantWebhookConfig",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEndpointSecret",
    "WebhookEvent",
    "WebhookEventType",
    "WebhookInboundReceipt",
    "WebhookInboundSecret",
    "WebhookInboundSource",
    "WebhookReplay",
]
