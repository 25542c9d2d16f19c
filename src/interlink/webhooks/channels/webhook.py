"""WEBHOOK: a signed HTTP POST of the body to the endpoint's url.

``Content-Type: application/json``, the endpoint's custom headers and the Standard Webhooks
headers ``webhook-id`` (the event id), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature`` (one ``v1,`` signature per active secret). Sent through the shared
:class:`HttpTransport` (no redirects, SSRF-checked, answers capped); 2xx is delivered, 410
disables the endpoint, everything else is retried.
"""

from __future__ import annotations

import time

from interlink.core.enums import DeliveryChannel
from interlink.outbound.transport import HttpTransport, TransportError
from interlink.webhooks import signing
from interlink.webhooks.channels.base import (
    Channel,
    ChannelAttempt,
    OutboundMessage,
    custom_headers,
    http_attempt,
)


class WebhookChannel(Channel):
    kind = DeliveryChannel.WEBHOOK

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    async def send(self, message: OutboundMessage) -> ChannelAttempt:
        work = message.work
        endpoint = work.endpoint
        if not endpoint.secrets:
            return ChannelAttempt(error_class="other", message="the endpoint has no active signing secret")
        signed = signing.sign(endpoint.secrets, work.event.id, int(time.time()), message.body)
        headers = custom_headers(endpoint)
        headers["Content-Type"] = "application/json"
        headers.update(signed.as_dict())
        recorded = dict(headers)
        recorded["User-Agent"] = self.transport.user_agent
        try:
            response = await self.transport.send(
                "POST", endpoint.url, headers, message.body, endpoint.timeout_seconds
            )
        except TransportError as exc:
            return ChannelAttempt(
                request_headers=recorded,
                duration_ms=exc.duration_ms,
                error_class=exc.error_class,
                message=exc.message,
            )
        return http_attempt(recorded, response)
