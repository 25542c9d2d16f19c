"""Delivery channels: one :class:`Channel` per :class:`DeliveryChannel` (WEBHOOK, EMAIL, SLACK).

:func:`build_channels` makes the set a delivery :class:`~interlink.webhooks.delivery.Sender` uses;
see :mod:`interlink.webhooks.channels.base` for the interface and its contract.
"""

from __future__ import annotations

from interlink.core.enums import DeliveryChannel
from interlink.outbound.transport import HttpTransport
from interlink.webhooks.channels.base import Channel, ChannelAttempt, OutboundMessage
from interlink.webhooks.channels.email import EmailChannel, SmtpConfig
from interlink.webhooks.channels.slack import SlackChannel
from interlink.webhooks.channels.webhook import WebhookChannel

__all__ = [
    "Channel",
    "ChannelAttempt",
    "EmailChannel",
    "OutboundMessage",
    "SlackChannel",
    "SmtpConfig",
    "WebhookChannel",
    "build_channels",
]


def build_channels(
    transport: HttpTransport, smtp: SmtpConfig | None = None
) -> dict[DeliveryChannel, Channel]:
    """Every channel: WEBHOOK and SLACK over ``transport``, EMAIL through ``smtp``."""
    channels: list[Channel] = [WebhookChannel(transport), EmailChannel(smtp), SlackChannel(transport)]
    return {c.kind: c for c in channels}
