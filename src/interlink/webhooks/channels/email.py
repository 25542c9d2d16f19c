"""EMAIL: one SMTP message per attempt, sent through ``aiosmtplib`` to the operator's SMTP server.

The server comes from ``INTERLINK_SMTP_*`` (:class:`SmtpConfig`); without ``INTERLINK_SMTP_HOST``
and ``INTERLINK_SMTP_FROM`` every attempt fails with error class ``unconfigured`` (and is retried
on the endpoint's schedule, so deliveries go out once SMTP is configured).

The message
-----------
* ``From`` is ``INTERLINK_SMTP_FROM``; ``To`` and the envelope recipients are ``channelConfig.to``.
* ``Subject`` is ``channelConfig.subjectTemplate`` (default :data:`DEFAULT_SUBJECT`) with the
  placeholders of :data:`SUBJECT_PLACEHOLDERS` filled in. Formatting is safe: bare names only (no
  attribute or index access, no format specs or conversions; ``{{`` and ``}}`` are literal
  braces), checked when the endpoint is saved (:func:`check_subject_template`).
* The body is ``text/plain; charset=utf-8`` (base64 transfer encoding, so no mail hop changes its
  bytes): the transformation's output, or the envelope ``{"type", "timestamp", "data"}``,
  pretty-printed as JSON, ending with a line feed.
* The Standard Webhooks headers ``webhook-id`` (the event id), ``webhook-timestamp`` and
  ``webhook-signature`` sign the decoded body exactly as for an HTTP delivery, so a recipient can
  verify it with any Standard Webhooks library.
* ``Message-ID`` is ``<{delivery id}@{sender domain}>``: every attempt of one delivery carries the
  same id, so a retried message is recognisable (and deduplicated by most mail systems).
  ``Auto-Submitted: auto-generated`` keeps auto-responders quiet.

Outcomes
--------
Accepted by the server (``250``): delivered; ``response_status`` is the reply code and
``response_body`` the server's reply text. When only some recipients were refused the message was
still accepted for the others: the delivery counts as delivered and the attempt's error message
lists the refused recipients with their replies. Failures: ``dns``, ``connect``, ``timeout``,
``tls`` (handshake, certificate, or STARTTLS not offered) as for HTTP; ``smtp_4xx`` (transient)
and ``smtp_5xx`` (refused) with the reply code as ``response_status``. All of them are retried on
the endpoint's schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING, Any, Final, Literal

import aiosmtplib

from interlink.core.clock import utcnow
from interlink.core.enums import DeliveryChannel
from interlink.webhooks import signing
from interlink.webhooks.channels.base import Channel, ChannelAttempt, OutboundMessage

if TYPE_CHECKING:
    from interlink.core.settings import Settings
    from interlink.webhooks.delivery import Work

Security = Literal["none", "starttls", "tls"]

DEFAULT_PORTS: Final[dict[str, int]] = {"none": 25, "starttls": 587, "tls": 465}
DEFAULT_SUBJECT: Final = "[Interlink] {type} ({eventId})"
SUBJECT_PLACEHOLDERS: Final = {
    "type": "the event type, e.g. invoice.paid",
    "eventId": "the event id (evt_...), also the webhook-id header",
    "deliveryId": "the delivery id (del_...)",
    "endpointId": "the endpoint id (ep_...)",
    "attempt": "the attempt number, 1 for the first",
    "timestamp": "when the event was accepted (ISO 8601, UTC)",
}
MAX_SUBJECT: Final = 900
MAX_CONNECTIONS: Final = 8
"""SMTP sessions one worker process holds open at once (servers limit connections per client)."""
QUIT_SECONDS: Final = 2.0

_FORMATTER = string.Formatter()


# -- configuration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpConfig:
    """The SMTP server EMAIL deliveries go through (``INTERLINK_SMTP_*``)."""

    host: str = ""
    port: int = 0
    username: str = ""
    password: str = field(default="", repr=False)
    security: Security = "starttls"
    from_address: str = ""
    timeout_seconds: float = 30.0
    tls_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    """TLS settings for ``starttls``/``tls`` (default: the system's trusted certificates)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value(),
            security=settings.smtp_security,
            from_address=settings.smtp_from,
            timeout_seconds=settings.smtp_timeout_seconds,
        )

    @property
    def missing(self) -> list[str]:
        """The settings that must still be set before mail can be sent."""
        out = []
        if not self.host:
            out.append("INTERLINK_SMTP_HOST")
        if not self.from_address:
            out.append("INTERLINK_SMTP_FROM")
        return out

    @property
    def configured(self) -> bool:
        return not self.missing

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def sender(self) -> str:
        """The bare envelope sender address of ``from_address`` (which may carry a display name)."""
        return parseaddr(self.from_address)[1] or self.from_address


# -- the subject -----------------------------------------------------------------------------------


def check_subject_template(template: str) -> str | None:
    """Why ``template`` cannot be used as a subject template, or None when it can."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        return f"is not a valid template ({exc}); write {{{{ and }}}} for literal braces"
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in SUBJECT_PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in SUBJECT_PLACEHOLDERS)
            return f"uses an unknown placeholder {{{name}}}; use {known}"
        if spec or conversion:
            return f"placeholder {{{name}}} takes no format spec or conversion"
    return None


def subject_values(work: Work) -> dict[str, str]:
    return {
        "type": work.event.type,
        "eventId": work.event.id,
        "deliveryId": work.delivery_id,
        "endpointId": work.endpoint.id,
        "attempt": str(work.attempts + 1),
        "timestamp": work.event.created_at.isoformat(),
    }


def render_subject(template: str, values: Mapping[str, str]) -> str:
    """Fill the placeholders; anything not a known bare placeholder is kept as written. The result
    is one line (control characters become spaces) of at most :data:`MAX_SUBJECT` characters."""
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError:
        parsed = [(template, None, None, None)]
    out: list[str] = []
    for literal, name, spec, conversion in parsed:
        out.append(literal)
        if name is None:
            continue
        if name in values and not spec and not conversion:
            out.append(values[name])
        else:
            out.append(
                "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            )
    text = "".join(ch if ch.isprintable() else " " for ch in "".join(out))
    return " ".join(text.split())[:MAX_SUBJECT]


# -- the message -----------------------------------------------------------------------------------


def recipients_of(work: Work) -> list[str]:
    """``channelConfig.to``, else the addresses of the stored ``mailto:`` url."""
    to = work.endpoint.channel_config.get("to")
    if isinstance(to, Sequence) and not isinstance(to, str) and to:
        return [str(a) for a in to]
    url = work.endpoint.url
    return [a for a in url.removeprefix("mailto:").split(",") if a] if url.startswith("mailto:") else []


def message_id(work: Work, config: SmtpConfig) -> str:
    domain = config.sender.rpartition("@")[2] or "interlink.invalid"
    return f"<{work.delivery_id}@{domain}>"


def build_message(
    work: Work, document: Any, config: SmtpConfig, recipients: Sequence[str], timestamp: int
) -> EmailMessage:
    """The signed message of one attempt (see the module docstring)."""
    msg = EmailMessage()
    msg["From"] = config.from_address
    msg["To"] = ", ".join(recipients)
    template = work.endpoint.channel_config.get("subjectTemplate") or DEFAULT_SUBJECT
    msg["Subject"] = render_subject(str(template), subject_values(work))
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id(work, config)
    msg["Auto-Submitted"] = "auto-generated"
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    msg.set_content(text, subtype="plain", charset="utf-8", cte="base64")
    signed_body = msg.get_content().encode("utf-8")  # exactly what the recipient decodes
    for name, value in (
        signing.sign(work.endpoint.secrets, work.event.id, timestamp, signed_body).as_dict().items()
    ):
        msg[name] = value
    return msg


# -- failures --------------------------------------------------------------------------------------


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _reply_class(code: int) -> str:
    if 400 <= code < 500:
        return "smtp_4xx"
    if 500 <= code < 600:
        return "smtp_5xx"
    return "other"


def classify(exc: BaseException, server: str) -> ChannelAttempt:
    """A failed SMTP exchange as an attempt: error class, reply code and text, readable message."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients
        codes = [r.code for r in refused]
        listing = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refused)
        transient = any(400 <= c < 500 for c in codes)
        code = next((c for c in codes if 400 <= c < 500), codes[0]) if transient else codes[0]
        return ChannelAttempt(
            status=code,
            response_body="\n".join(f"{r.recipient}: {r.code} {r.message}" for r in refused),
            error_class=_reply_class(code),
            message=f"the SMTP server refused every recipient: {listing}",
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = {
            aiosmtplib.SMTPSenderRefused: "refused the sender",
            aiosmtplib.SMTPDataError: "refused the message",
            aiosmtplib.SMTPAuthenticationError: "refused the login",
            aiosmtplib.SMTPHeloError: "refused EHLO/HELO",
            aiosmtplib.SMTPConnectResponseError: "refused the connection",
        }.get(type(exc), "answered")
        return ChannelAttempt(
            status=exc.code,
            response_body=exc.message,
            error_class=_reply_class(exc.code),
            message=f"the SMTP server {server} {what}: {exc.code} {exc.message}",
        )
    chain = _causes(exc)
    if any(isinstance(e, TimeoutError) for e in chain):
        return ChannelAttempt(
            error_class="timeout", message=f"no answer from the SMTP server {server} in time"
        )
    if any(isinstance(e, socket.gaierror) for e in chain):
        return ChannelAttempt(error_class="dns", message=f"the SMTP server's name did not resolve: {exc}")
    if any(isinstance(e, ssl.SSLError | ssl.CertificateError) for e in chain):
        tls = next(e for e in chain if isinstance(e, ssl.SSLError | ssl.CertificateError))
        return ChannelAttempt(error_class="tls", message=f"TLS with the SMTP server {server} failed: {tls}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        isinstance(exc, aiosmtplib.SMTPException) and "starttls" in exc.message.lower()
    ):
        return ChannelAttempt(error_class="tls", message=f"the SMTP server {server}: {exc.message}")
    if any(isinstance(e, ConnectionError | OSError) for e in chain):
        return ChannelAttempt(error_class="connect", message=f"connection to the SMTP server failed: {exc}")
    return ChannelAttempt(error_class="other", message=f"SMTP: {type(exc).__name__}: {exc}")


# -- the channel -----------------------------------------------------------------------------------


class EmailChannel(Channel):
    kind = DeliveryChannel.EMAIL

    def __init__(self, config: SmtpConfig | None = None) -> None:
        self.config = config or SmtpConfig()
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        self._local_hostname: str | None = None

    async def _hostname(self) -> str:
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn) or "localhost"
        return self._local_hostname

    async def send(self, message: OutboundMessage) -> ChannelAttempt:
        config = self.config
        work = message.work
        if not config.configured:
            return ChannelAttempt(
                error_class="unconfigured",
                message="EMAIL delivery needs an SMTP server: set " + " and ".join(config.missing),
            )
        if not work.endpoint.secrets:
            return ChannelAttempt(error_class="other", message="the endpoint has no active signing secret")
        recipients = recipients_of(work)
        if not recipients:
            return ChannelAttempt(error_class="other", message="the endpoint lists no recipients", final=True)
        msg = build_message(work, message.document, config, recipients, int(time.time()))
        recorded = {
            name: str(msg[name])
            for name in (
                "From",
                "To",
                "Subject",
                "Message-ID",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
            )
        }
        server = f"{config.host}:{config.effective_port}"
        async with self._slots:
            started = time.perf_counter()
            smtp = aiosmtplib.SMTP(
                hostname=config.host,
                port=config.effective_port,
                username=config.username or None,
                password=config.password if config.username else None,
                local_hostname=await self._hostname(),
                timeout=config.timeout_seconds,
                use_tls=config.security == "tls",
                start_tls=config.security == "starttls",
                tls_context=config.tls_context,
            )
            try:
                async with asyncio.timeout(config.timeout_seconds):
                    await smtp.connect()
                    refused, reply = await smtp.send_message(msg, sender=config.sender, recipients=recipients)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt = classify(exc, server)
                attempt.request_headers = recorded
                attempt.duration_ms = (time.perf_counter() - started) * 1000
                return attempt
            finally:
                await _quit(smtp)
        attempt = ChannelAttempt(
            request_headers=recorded,
            duration_ms=(time.perf_counter() - started) * 1000,
            status=250,
            response_body=reply,
        )
        if refused:
            listing = "; ".join(f"{addr}: {r.code} {r.message}" for addr, r in refused.items())
            accepted = len(recipients) - len(refused)
            attempt.message = f"accepted for {accepted} of {len(recipients)} recipients; refused: {listing}"
        return attempt


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    """End the session politely if it is open; a failing QUIT changes nothing about the attempt."""
    if smtp.is_connected:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(QUIT_SECONDS):
                await smtp.quit()
    with contextlib.suppress(Exception):
        smtp.close()
