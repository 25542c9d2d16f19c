"""Pydantic types of replays (the guide's WebhookReplayRequest) and their records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from interlink.core.enums import DeliveryStatus
from interlink.core.schemas import ApiModel, RequestModel, UtcDatetime

ReplayKind = Literal["delivery", "event", "endpoint"]
SkipReasonName = Literal[
    "sending",
    "endpoint_disabled",
    "endpoint_deleted",
    "payload_purged",
    "not_subscribed",
    "filtered_out",
    "status_changed",
]


class WebhookReplayRequest(RequestModel):
    """Send again what was sent before. Give exactly one of:

    * ``deliveryId``: resend that delivery;
    * ``eventId`` (and optionally ``endpointIds``): resend the event to every endpoint that is
      enabled, subscribed to its type and whose filter matches, or only to the listed ones,
      creating deliveries for endpoints it never went to;
    * ``endpointId`` with ``since`` and ``until``: recover every delivery of that endpoint in
      ``statuses`` (default ``FAILED``) whose event was created in ``[since, until)``.

    The same ``requestId`` returns the first replay (200) instead of replaying again.
    """

    request_id: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Your id for this replay (printable ASCII, no spaces); a repeat returns the first one.",
    )
    delivery_id: str | None = Field(default=None, max_length=64, description="A delivery id (`del_...`).")
    event_id: str | None = Field(default=None, max_length=64, description="An event id (`evt_...`).")
    endpoint_ids: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="With eventId: resend only to these endpoints "
        "(still subject to their subscription and filter).",
    )
    endpoint_id: str | None = Field(
        default=None,
        max_length=64,
        description="With since and until: the endpoint whose deliveries to recover.",
    )
    since: UtcDatetime | None = Field(default=None, description="Events created at or after this time.")
    until: UtcDatetime | None = Field(default=None, description="Events created before this time.")
    statuses: list[DeliveryStatus] | None = Field(
        default=None,
        min_length=1,
        max_length=3,
        description="With endpointId: which final states to recover (FAILED, DELIVERED, CANCELLED); "
        "default FAILED.",
    )


class ReplaySkip(ApiModel):
    """Something the replay left alone, and why."""

    endpoint_id: str
    event_id: str
    delivery_id: str | None = None
    reason: SkipReasonName = Field(
        description="`sending` (an attempt is in flight), `endpoint_disabled`, `endpoint_deleted`, "
        "`payload_purged` (retention removed the payload), `not_subscribed`, `filtered_out` (the "
        "endpoint's filter does not match), `status_changed` (it changed state meanwhile)."
    )


class WebhookReplayInfo(ApiModel):
    """A recorded replay: what was asked and which deliveries it requeued or created."""

    id: str
    tenant_id: str
    request_id: str
    kind: ReplayKind
    request: dict[str, Any] = Field(description="The request, normalised (what a repeat is compared with).")
    delivery_ids: list[str] = Field(description="Deliveries requeued or created, now due.")
    delivery_count: int
    created_count: int = Field(
        description="How many of deliveryIds are new (endpoints the event never went to)."
    )
    skipped: list[ReplaySkip]
    skipped_count: int
    actor_key_id: str | None
    correlation_id: str | None
    created_at: datetime
    created: bool | None = Field(
        default=None,
        description="On create: false when an earlier replay with the same requestId was returned.",
    )
