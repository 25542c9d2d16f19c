"""Imports every table so ``Base.metadata`` is complete (migrations, tests)."""

from interlink.core.models import AuditEvent, IntegrationSecret, Tenant
from interlink.jobs.models import Job, JobSchedule
from interlink.keys.models import ApiKey, SecurityEvent
from interlink.webhooks.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointSecret,
    WebhookEvent,
    WebhookEventType,
)

__all__ = [
    "ApiKey",
    "AuditEvent",
    "IntegrationSecret",
    "Job",
    "JobSchedule",
    "SecurityEvent",
    "Tenant",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEndpointSecret",
    "WebhookEvent",
    "WebhookEventType",
]
