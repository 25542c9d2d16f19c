"""SDK resource for ``/v1/webhook-config`` (blocking and asyncio): ``client.webhook_config``.

The tenant's webhook defaults (:class:`WebhookConfig`): retry schedule, retention, auto-disable
window, circuit breaker and default timeout. :meth:`WebhookConfigResource.update` changes only the
arguments given; ``retry_schedule=None`` restores the built-in schedule and
``circuit_breaker=None`` turns the breaker off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from interlink.client._base import (
    NOT_GIVEN,
    AsyncResource,
    Call,
    NotGiven,
    SyncResource,
    body,
    call,
    model_or_mapping,
)
from interlink.core.enums import RetentionPolicy
from interlink.webhooks.config_schemas import CircuitBreakerConfig, WebhookConfig

__all__ = ["AsyncWebhookConfigResource", "CircuitBreakerConfig", "WebhookConfig", "WebhookConfigResource"]

PATH = "/v1/webhook-config"
BreakerArg = CircuitBreakerConfig | Mapping[str, Any] | None


def _update_call(
    retry_schedule: Sequence[int] | NotGiven | None,
    retention: RetentionPolicy | str | NotGiven,
    disable_after_seconds: int | NotGiven,
    circuit_breaker: BreakerArg | NotGiven,
    default_timeout_seconds: float | NotGiven,
    tenant_id: str | None,
) -> Call[WebhookConfig]:
    """Change the arguments given (``PUT``, so re-sending is safe)."""
    schedule = list(retry_schedule) if isinstance(retry_schedule, Sequence) else retry_schedule
    payload = body(
        {
            "retrySchedule": schedule,
            "retention": retention,
            "disableAfterSeconds": disable_after_seconds,
            "circuitBreaker": model_or_mapping(circuit_breaker),
            "defaultTimeoutSeconds": default_timeout_seconds,
        },
        drop_none=False,
    )
    return call(WebhookConfig, "PUT", PATH, json=payload, tenant_id=tenant_id)


class WebhookConfigResource(SyncResource):
    """``/v1/webhook-config``: the tenant's webhook defaults."""

    def get(self, *, tenant_id: str | None = None) -> WebhookConfig:
        """The configuration (built-in values until first changed; ``created_at`` is then None)."""
        return self._send(call(WebhookConfig, "GET", PATH, tenant_id=tenant_id))

    def update(
        self,
        *,
        retry_schedule: Sequence[int] | NotGiven | None = NOT_GIVEN,
        retention: RetentionPolicy | str | NotGiven = NOT_GIVEN,
        disable_after_seconds: int | NotGiven = NOT_GIVEN,
        circuit_breaker: BreakerArg | NotGiven = NOT_GIVEN,
        default_timeout_seconds: float | NotGiven = NOT_GIVEN,
        tenant_id: str | None = None,
    ) -> WebhookConfig:
        """Change the arguments given (audited); the others keep their value."""
        return self._send(_update_call(
            retry_schedule, retention, disable_after_seconds, circuit_breaker, default_timeout_seconds,
            tenant_id,
        ))  # fmt: skip


class AsyncWebhookConfigResource(AsyncResource):
    """``/v1/webhook-config`` with ``await`` (same surface as :class:`WebhookConfigResource`)."""

    async def get(self, *, tenant_id: str | None = None) -> WebhookConfig:
        """The configuration (built-in values until first changed; ``created_at`` is then None)."""
        return await self._send(call(WebhookConfig, "GET", PATH, tenant_id=tenant_id))

    async def update(
        self,
        *,
        retry_schedule: Sequence[int] | NotGiven | None = NOT_GIVEN,
        retention: RetentionPolicy | str | NotGiven = NOT_GIVEN,
        disable_after_seconds: int | NotGiven = NOT_GIVEN,
        circuit_breaker: BreakerArg | NotGiven = NOT_GIVEN,
        default_timeout_seconds: float | NotGiven = NOT_GIVEN,
        tenant_id: str | None = None,
    ) -> WebhookConfig:
        """Change the arguments given (audited); the others keep their value."""
        return await self._send(_update_call(
            retry_schedule, retention, disable_after_seconds, circuit_breaker, default_timeout_seconds,
            tenant_id,
        ))  # fmt: skip
