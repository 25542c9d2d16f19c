"""The channel interface: how one delivery attempt reaches an endpoint of one :class:`DeliveryChannel`.

A channel turns an :class:`OutboundMessage` (the claimed delivery and its body, already
transformed or wrapped in the envelope) into a :class:`ChannelAttempt`: what was sent (request
headers), what came back (status, headers, body) and, on failure, an error class and a message.
Channels never raise for a failed attempt and never decide about retries: the delivery engine
(:class:`interlink.webhooks.delivery.Sender`) turns every attempt into an ``Outcome`` through one
path, so retry schedules, ``Retry-After``, attempt rows, error classes and endpoint disabling
work the same on every channel.

Contract of :class:`ChannelAttempt`:

* ``error_class is None`` means delivered. ``message`` may still be set (a partial refusal worth
  recording, e.g. some EMAIL recipients refused).
* ``status`` is the answer's code: the HTTP status, or the SMTP reply code for EMAIL.
* ``response_headers`` are looked up for ``Retry-After`` (seconds or HTTP date).
* ``final`` fails the delivery without retrying; ``disable_reason`` also disables the endpoint
  (the target is gone: HTTP 410, a removed Slack hook).
* ``request_headers`` are recorded after credential-like values are redacted; messages must not
  hold a credential (a channel whose target URL is one scrubs it, see :meth:`Channel.scrub`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from interlink.core.enums import DeliveryChannel
from interlink.outbound.transport import TransportResponse

if TYPE_CHECKING:
    from interlink.webhooks.delivery import EndpointView, Work

GONE_REASON = "the endpoint answered 410 Gone"


@dataclass(frozen=True)
class OutboundMessage:
    """One attempt to send: the claimed delivery and what it carries.

    ``document`` is the endpoint transformation's output (``transformed``) or the default envelope
    ``{"type", "timestamp", "data"}``; ``body`` is ``document`` as compact UTF-8 JSON."""

    work: Work
    document: Any
    body: bytes
    transformed: bool


@dataclass
class ChannelAttempt:
    """What one attempt did (see the module contract)."""

    request_headers: dict[str, str] = field(default_factory=dict)
    duration_ms: float | None = None
    status: int | None = None
    response_headers: dict[str, str] | None = None
    response_body: str | None = None
    error_class: str | None = None
    message: str | None = None
    final: bool = False
    disable_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error_class is None


class Channel(abc.ABC):
    """Sends attempts of one channel. Implementations are shared by every delivery of a worker."""

    kind: ClassVar[DeliveryChannel]

    @abc.abstractmethod
    async def send(self, message: OutboundMessage) -> ChannelAttempt:
        """Make one attempt. Failures are returned as a :class:`ChannelAttempt`, not raised."""

    def scrub(self, text: str, endpoint: EndpointView) -> str:
        """``text`` without the endpoint's credentials (for messages about unexpected errors)."""
        return text


def custom_headers(endpoint: EndpointView) -> dict[str, str]:
    """The endpoint's own headers, never overriding the Standard Webhooks ones."""
    return {k: v for k, v in endpoint.headers.items() if not k.lower().startswith("webhook-")}


def http_attempt(request_headers: dict[str, str], response: TransportResponse) -> ChannelAttempt:
    """An HTTP answer as an attempt: 2xx delivered; 410 final and disabling; else ``http_<n>xx``."""
    status = response.status
    attempt = ChannelAttempt(
        request_headers=request_headers,
        duration_ms=response.duration_ms,
        status=status,
        response_headers=dict(response.headers),
        response_body=response.body.decode("utf-8", errors="replace"),
    )
    if 200 <= status < 300:
        return attempt
    attempt.error_class = f"http_{status // 100}xx"
    attempt.message = f"the endpoint answered HTTP {status}"
    if status == 410:
        attempt.message = GONE_REASON
        attempt.final = True
        attempt.disable_reason = GONE_REASON
    return attempt
