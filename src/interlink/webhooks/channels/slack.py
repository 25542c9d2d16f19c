"""SLACK: a message posted to a Slack incoming-webhook URL.

The request is ``POST <hook url>`` with ``{"text", "blocks", "username"?, "icon_emoji"?}``
(``username`` and ``icon_emoji`` from ``channelConfig``). The message shows the event type (a
header block), the event id and acceptance time, and the payload pretty-printed in a code block,
truncated to Slack's 3,000 characters per text block (a context line says how much was left out).
With a transformation, the code block shows its output instead of the payload, and an output
that is itself a Slack message (a JSON object with ``text`` or ``blocks``) is posted as it is.

Slack answers ``200 ok``. ``410`` (any body), and ``403``/``404`` with one of :data:`GONE_CODES`
(``no_service``, ``channel_is_archived``, ``action_prohibited``, ...) mean the hook no longer
accepts messages: the delivery fails and the endpoint is disabled, like a 410 from a webhook.
``429`` and everything else are retried (``Retry-After`` honoured). Slack does not verify
signatures, so nothing is signed; attempts are recorded like any other.

Hook URLs are credentials (whoever holds one can post to the channel). Endpoints store them
encrypted and show :func:`redact_url`'s form; error messages are scrubbed of them
(:meth:`SlackChannel.scrub`).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from interlink.core.enums import DeliveryChannel
from interlink.outbound.transport import HttpTransport, TransportError
from interlink.webhooks.channels.base import (
    Channel,
    ChannelAttempt,
    OutboundMessage,
    custom_headers,
    http_attempt,
)

if TYPE_CHECKING:
    from interlink.webhooks.delivery import EndpointView

REDACTED: Final = "[redacted]"
MAX_TEXT_BLOCK: Final = 3000
"""Slack's limit on the text of one section block."""
MAX_HEADER: Final = 150
"""Slack's limit on a header block's plain text."""
GONE_CODES: Final = frozenset(
    {
        "no_service",
        "no_team",
        "team_disabled",
        "channel_not_found",
        "channel_is_archived",
        "action_prohibited",
        "invalid_token",
    }
)
"""Error codes in Slack's answer body (with 403, 404 or 410) that mean the hook is gone."""
_CODE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FENCE = "```"
_MORE = "\n…"


def redact_url(url: str) -> str:
    """``url`` with its last path segment (the hook's token) replaced by ``[redacted]``; scheme,
    host and the other path segments are kept, query and fragment dropped. Idempotent."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.netloc:
        return REDACTED
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never keep user:password@
    segments = parts.path.split("/")[1:] if parts.path.startswith("/") else []
    kept = segments[:-1]
    return f"{parts.scheme}://{netloc}/" + "/".join([*kept, REDACTED])


def _escape(text: str) -> str:
    """Slack mrkdwn: only ``&``, ``<`` and ``>`` are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code_block(text: str) -> tuple[str, int]:
    """A mrkdwn code block of at most :data:`MAX_TEXT_BLOCK` characters and how many characters
    of ``text`` were left out."""
    text = text.replace(_FENCE, "``\u200b`")  # a fence inside the payload would end the block
    budget = MAX_TEXT_BLOCK - 2 * len(_FENCE) - 2 - len(_MORE)  # fences, their newlines, the marker
    shown = text
    escaped = _escape(shown)
    while len(escaped) > budget:
        shown = shown[: max(0, len(shown) - (len(escaped) - budget) - 1)]
        escaped = _escape(shown)
    omitted = len(text) - len(shown)
    if omitted:
        escaped = escaped.rstrip() + _MORE
    return f"{_FENCE}\n{escaped}\n{_FENCE}", omitted


def slack_message(message: OutboundMessage) -> dict[str, Any]:
    """The JSON posted to the hook (see the module docstring)."""
    work = message.work
    config = work.endpoint.channel_config
    document = message.document
    if message.transformed and isinstance(document, dict) and ("text" in document or "blocks" in document):
        out = dict(document)
    else:
        shown = document if message.transformed else work.event.payload
        pretty = json.dumps(shown, indent=2, ensure_ascii=False, allow_nan=False)
        code, omitted = _code_block(pretty)
        accepted = work.event.created_at.isoformat(timespec="seconds")
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": work.event.type[:MAX_HEADER]}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*Event* `{_escape(work.event.id)}`  ·  *accepted* {accepted}",
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": code}},
        ]
        if omitted:
            blocks.append(
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": f"Truncated: {omitted:,} of {len(pretty):,} characters not shown.",
                        }
                    ],
                }
            )
        out = {"text": _escape(f"{work.event.type} ({work.event.id})"), "blocks": blocks}
    if "username" in config:
        out.setdefault("username", config["username"])
    if "iconEmoji" in config:
        out.setdefault("icon_emoji", config["iconEmoji"])
    return out


def _answer_code(body: str | None) -> str | None:
    code = (body or "").strip()
    return code if _CODE_RE.match(code) else None


class SlackChannel(Channel):
    kind = DeliveryChannel.SLACK

    def __init__(self, transport: HttpTransport) -> None:
        self.transport = transport

    def scrub(self, text: str, endpoint: EndpointView) -> str:
        url = endpoint.url
        if not url:
            return text
        text = text.replace(url, redact_url(url))
        token = urlsplit(url).path.rsplit("/", 1)[-1]
        if len(token) >= 4:
            text = text.replace(token, REDACTED)
        return text

    async def send(self, message: OutboundMessage) -> ChannelAttempt:
        endpoint = message.work.endpoint
        if not endpoint.url:
            return ChannelAttempt(
                error_class="other",
                message="the Slack webhook url cannot be decrypted (master key missing or value altered)",
            )
        body = json.dumps(slack_message(message), ensure_ascii=False, allow_nan=False).encode()
        headers = custom_headers(endpoint)
        headers["Content-Type"] = "application/json; charset=utf-8"
        recorded = dict(headers)
        recorded["User-Agent"] = self.transport.user_agent
        try:
            response = await self.transport.send(
                "POST", endpoint.url, headers, body, endpoint.timeout_seconds
            )
        except TransportError as exc:
            return ChannelAttempt(
                request_headers=recorded,
                duration_ms=exc.duration_ms,
                error_class=exc.error_class,
                message=self.scrub(exc.message, endpoint),
            )
        attempt = http_attempt(recorded, response)
        if attempt.succeeded:
            return attempt
        status = response.status
        code = _answer_code(attempt.response_body)
        attempt.message = f"Slack answered HTTP {status}" + (f" {code}" if code else "")
        if status == 410 or (status in (403, 404) and code in GONE_CODES):
            reason = (
                f"Slack answered {status} {code or 'Gone'}: the incoming webhook no longer accepts messages"
            )
            attempt.message = reason
            attempt.final = True
            attempt.disable_reason = reason
        return attempt
