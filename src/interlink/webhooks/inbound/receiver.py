"""The inbound receiver: ``POST /v1/inbound/{sourceId}`` from a provider, verified and fanned out.

Checks, in order (each failure answers problem+json with a ``reason`` and writes an
``inbound.rejected`` security event, bounded like every unattributed failure by
:class:`~interlink.keys.security.SecurityLog`, so a flood costs a bounded number of writes):

1. the source exists, is not deleted and is enabled, else 404 ``unknown_source`` (the same
   answer for all three: nothing more is revealed);
2. the client IP (``X-Forwarded-For`` believed only from trusted proxies) is in the source's
   allowlist, when it has one, else 403 ``ip_not_allowed``;
3. the body fits the source's ``maxBodyBytes``, else 413 ``body_too_large`` (checked on the
   declared length and while reading);
4. the signature verifies with one of the active secrets, else 401 with the scheme's reason
   (``missing_signature``, ``malformed_header``, ``bad_signature``,
   ``timestamp_out_of_tolerance``);
5. the body is JSON nested at most :data:`MAX_BODY_DEPTH` levels, without NUL characters in its
   strings (keys or values) or NaN/Infinity (:func:`~interlink.core.jsoncheck.check_json`: no
   database stores those the same way), else 422 ``malformed_body`` naming the place; the
   provider's event id (``dedupe``) is present when the source dedupes, else 422
   ``missing_event_id``; the payload matches the JSON Schema of its event type when one is
   registered, else 422 ``payload_invalid``.

An accepted request becomes one event (``source = "inbound:<sourceId>"``, ``metadata.inbound``
naming the source, connection and provider event id) fanned out by
:func:`interlink.webhooks.ingest.ingest`, in the same transaction as its receipt
(``webhook_inbound_receipts``). The receipt's unique ``(source_id, dedupe_key)`` makes repeats
race-safe: a repeat, or the loser of two concurrent posts, answers 200 with the first event id
and ``duplicate: true``, and nothing is written twice. Every accepted request also leaves a
receipt of what its signature covered (:data:`REPLAY_PREFIX`), so a captured request sent again
is a duplicate even with a new unsigned event id (GitHub's and Shopify's delivery ids are not
signed): for schemes that sign no timestamp, a byte-identical body is the same event. A JSON body
that is not an object is wrapped as ``{"data": <body>}``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, NoReturn

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from interlink.core.actor import Actor
from interlink.core.clock import utcnow
from interlink.core.crypto import Keyring
from interlink.core.db import Database
from interlink.core.errors import Forbidden, InterlinkError, NotFound, Unauthorized, ValidationFailed
from interlink.core.ids import new_id
from interlink.core.jsoncheck import MAX_JSON_DEPTH, check_json, deeper_than
from interlink.core.purge import BatchHook, purge_in_batches
from interlink.keys.security import SecurityContext, SecurityEventType, SecurityLog
from interlink.webhooks import ingest
from interlink.webhooks.inbound import schemes
from interlink.webhooks.inbound.models import WebhookInboundReceipt
from interlink.webhooks.inbound.sources import ReceiverSource, load_for_receiver

UNKNOWN_TYPE: Final = "unknown"
MAX_DEDUPE_KEY: Final = 200
REPLAY_PREFIX: Final = "replay:sha256:"
"""Receipts of what a signature covered (``REPLAY_PREFIX`` + its SHA-256), beside the provider's
event ids: a replayed request is a duplicate even when its unsigned headers changed."""
MAX_BODY_DEPTH: Final = MAX_JSON_DEPTH
"""The deepest nesting of arrays and objects accepted in a body: a stored event must stay readable
(the API's JSON answers and deliveries nest the payload a few levels further)."""
_TYPE_BAD_CHARS: Final = re.compile(r"[^A-Za-z0-9._:-]")


class PayloadTooLarge(InterlinkError):
    status = 413
    code = "payload-too-large"
    title = "Payload too large"


@dataclass(frozen=True)
class InboundContext:
    source_ip: str | None
    user_agent: str | None
    correlation_id: str | None


@dataclass(frozen=True)
class InboundResult:
    event_id: str
    event_type: str
    duplicate: bool
    deliveries: int


def _ip_allowed(ip: str | None, allowlist: list[str]) -> bool:
    """True when ``ip`` is in one of the ranges (any IP when there are none). An IPv4 client seen
    as an IPv4-mapped IPv6 address (``::ffff:203.0.113.9``, a server listening on ``::``) is
    matched by its IPv4 address too."""
    if not allowlist:
        return True
    if ip is None:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    candidates: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    networks = [ipaddress.ip_network(net, strict=False) for net in allowlist]
    return any(candidate in network for candidate in candidates for network in networks)


async def purge_receipts(
    db: Database,
    retention_days: int,
    on_batch: BatchHook | None = None,
) -> dict[str, int]:
    """Delete receipts older than ``retention_days`` in batches (each its own transaction, in which
    ``on_batch`` gets the batch's rows per tenant); counts per tenant. A provider event repeated
    after its receipt is gone is taken as new."""
    cutoff = utcnow() - timedelta(days=retention_days)
    return await purge_in_batches(
        db, WebhookInboundReceipt, WebhookInboundReceipt.created_at < cutoff, on_batch=on_batch
    )


def _lookup(body: Any, path: str) -> Any:
    node = body
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _value(config: Mapping[str, str], headers: Mapping[str, str], body: Any) -> str | None:
    kind, name = config.get("from"), config.get("field", "")
    if kind == "fixed":
        return name
    raw = headers.get(name.lower()) if kind == "header" else _lookup(body, name)
    if raw is None or isinstance(raw, (dict, list, bool)):
        return None
    text = str(raw).strip()
    return text or None


def event_type_of(config: Mapping[str, str], headers: Mapping[str, str], body: Any) -> str:
    """The event type a request maps to: prefix + value, with characters outside the event type
    alphabet replaced (``orders/create`` becomes ``orders.create``)."""
    value = _value(config, headers, body) or UNKNOWN_TYPE
    name = _TYPE_BAD_CHARS.sub("_", config.get("prefix", "") + value.replace("/", "."))
    if not name[0].isalnum():
        name = "x" + name
    return name[:200]


class InboundReceiver:
    """Runs the checks of the module docstring for one process."""

    def __init__(self, db: Database, keyring: Keyring, security: SecurityLog) -> None:
        self.db = db
        self.keyring = keyring
        self.security = security

    async def reject(
        self,
        error: InterlinkError,
        reason: str,
        *,
        source_id: str,
        tenant_id: str | None,
        context: InboundContext,
    ) -> NoReturn:
        """Record an ``inbound.rejected`` security event and raise ``error``."""
        await self.security.failure(
            SecurityEventType.INBOUND_REJECTED,
            tenant_id=tenant_id,
            key_id=None,
            key_prefix=None,
            context=SecurityContext(context.source_ip, context.user_agent, context.correlation_id),
            reason=reason,
            details={"sourceId": source_id[:64], "status": error.status},
        )
        raise error

    async def open(
        self, source_id: str, context: InboundContext, declared_length: int | None
    ) -> ReceiverSource:
        """Steps 1-3 before the body is read: the source, the client IP and the declared size."""
        async with self.db.unit_of_work(write=False) as session:
            source = await load_for_receiver(session, self.keyring, source_id)
        if source is None or not source.enabled:
            await self.reject(
                NotFound("inbound source not found", extra={"reason": "unknown_source"}),
                "unknown_source",
                source_id=source_id,
                tenant_id=None,
                context=context,
            )
        if not _ip_allowed(context.source_ip, source.ip_allowlist):
            await self.reject(
                Forbidden(
                    "this source does not accept requests from your IP address",
                    extra={"reason": "ip_not_allowed"},
                ),
                "ip_not_allowed",
                source_id=source.id,
                tenant_id=source.tenant_id,
                context=context,
            )
        if declared_length is not None and declared_length > source.max_body_bytes:
            await self.too_large(source, context)
        return source

    async def too_large(self, source: ReceiverSource, context: InboundContext) -> NoReturn:
        await self.reject(
            PayloadTooLarge(
                f"the request body exceeds this source's limit of {source.max_body_bytes} bytes",
                extra={"reason": "body_too_large"},
            ),
            "body_too_large",
            source_id=source.id,
            tenant_id=source.tenant_id,
            context=context,
        )

    async def receive(
        self, source: ReceiverSource, headers: Mapping[str, str], body: bytes, context: InboundContext
    ) -> InboundResult:
        """Steps 4-5, then store and fan out (see the module docstring)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        if len(body) > source.max_body_bytes:
            await self.too_large(source, context)
        try:
            verified = schemes.verify(
                source.scheme,
                source.scheme_options,
                source.secrets,
                lowered,
                body,
                now=int(utcnow().timestamp()),
                tolerance=source.tolerance_seconds,
            )
        except schemes.VerificationFailed as exc:
            await self.reject(
                Unauthorized(exc.detail, reason=exc.reason.value),
                exc.reason.value,
                source_id=source.id,
                tenant_id=source.tenant_id,
                context=context,
            )
        try:
            document: Any = json.loads(body)
            too_deep = deeper_than(document, MAX_BODY_DEPTH)
        except (UnicodeDecodeError, ValueError):
            await self.reject(
                ValidationFailed("the body is not JSON", field="body", extra={"reason": "malformed_body"}),
                "malformed_body",
                source_id=source.id,
                tenant_id=source.tenant_id,
                context=context,
            )
        except RecursionError:  # nested far beyond the limit: the parser gave up
            too_deep = True
        if too_deep:
            await self.reject(
                ValidationFailed(
                    f"the body nests arrays and objects more than {MAX_BODY_DEPTH} levels deep",
                    field="body",
                    extra={"reason": "malformed_body"},
                ),
                "malformed_body",
                source_id=source.id,
                tenant_id=source.tenant_id,
                context=context,
            )
        try:
            check_json(document)
        except ValidationFailed as exc:  # NUL or NaN: no database stores it as the payload
            await self.reject(
                ValidationFailed(exc.detail, extra={**exc.extra, "reason": "malformed_body"}),
                "malformed_body",
                source_id=source.id,
                tenant_id=source.tenant_id,
                context=context,
            )
        dedupe_key: str | None = None
        if source.dedupe_config is not None:
            dedupe_key = _value(source.dedupe_config, lowered, document)
            if dedupe_key is None or len(dedupe_key) > MAX_DEDUPE_KEY:
                where = source.dedupe_config["field"]
                await self.reject(
                    ValidationFailed(
                        f"the provider event id ({source.dedupe_config['from']} {where}) is missing "
                        "or too long",
                        field=where,
                        extra={"reason": "missing_event_id"},
                    ),
                    "missing_event_id",
                    source_id=source.id,
                    tenant_id=source.tenant_id,
                    context=context,
                )
        payload = document if isinstance(document, dict) else {"data": document}
        event_type = event_type_of(source.event_type_config, lowered, document)
        try:
            replay_key = REPLAY_PREFIX + hashlib.sha256(verified.signed).hexdigest()
            return await self._store(source, event_type, payload, dedupe_key, replay_key, context)
        except ValidationFailed as exc:  # the payload does not match the event type's JSON Schema
            await self.reject(
                ValidationFailed(exc.detail, extra={**exc.extra, "reason": "payload_invalid"}),
                "payload_invalid",
                source_id=source.id,
                tenant_id=source.tenant_id,
                context=context,
            )

    async def _store(
        self,
        source: ReceiverSource,
        event_type: str,
        payload: dict[str, Any],
        dedupe_key: str | None,
        replay_key: str,
        context: InboundContext,
    ) -> InboundResult:
        actor = Actor(
            tenant_id=source.tenant_id,
            key_id=None,
            home_tenant_id=source.tenant_id,
            actor_type="inbound",
            source_ip=context.source_ip,
            user_agent=(context.user_agent or "")[:400] or None,
            correlation_id=context.correlation_id,
        )
        async with self.db.unit_of_work() as session:
            keys = [replay_key] if dedupe_key is None else [dedupe_key, replay_key]
            receipts = [
                WebhookInboundReceipt(
                    id=new_id("ircp"),
                    tenant_id=source.tenant_id,
                    source_id=source.id,
                    dedupe_key=key,
                    event_id=None,
                    created_at=utcnow(),
                )
                for key in keys
            ]
            try:
                async with session.begin_nested():
                    session.add_all(receipts)
            except IntegrityError:
                winner = await session.scalar(
                    sa.select(WebhookInboundReceipt)
                    .where(
                        WebhookInboundReceipt.source_id == source.id,
                        WebhookInboundReceipt.dedupe_key.in_(keys),
                        WebhookInboundReceipt.event_id.is_not(None),
                    )
                    .limit(1)
                )
                if winner is None or winner.event_id is None:
                    raise
                return InboundResult(winner.event_id, event_type, True, 0)
            result = await ingest.ingest(
                session,
                actor,
                ingest.EventSpec(
                    type=event_type,
                    payload=payload,
                    metadata={
                        "inbound": {
                            "sourceId": source.id,
                            "connectionId": source.connection_id,
                            "providerEventId": dedupe_key,
                        }
                    },
                    correlation_id=context.correlation_id,
                    source=f"inbound:{source.id}",
                ),
            )
            for receipt in receipts:
                receipt.event_id = result.event.id
            return InboundResult(result.event.id, event_type, False, len(result.deliveries))
