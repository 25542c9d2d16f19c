"""``/v1/inbound-sources`` (configuration, webhooks scopes) and ``POST /v1/inbound/{sourceId}``
(public: authenticated by the provider's signature, see :mod:`interlink.webhooks.inbound.receiver`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from interlink.core.actor import Actor
from interlink.core.context import current_correlation_id
from interlink.core.enums import ApiKeyScope
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut
from interlink.http.auth import client_ip, get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses
from interlink.webhooks.inbound.receiver import InboundContext, InboundReceiver
from interlink.webhooks.inbound.schemas import (
    InboundAccepted,
    InboundSecretRotate,
    InboundSourceCreate,
    InboundSourceCreated,
    InboundSourceInfo,
    InboundSourceSecret,
    InboundSourceUpdate,
    source_info,
)
from interlink.webhooks.inbound.sources import InboundSources, RevealedSourceSecret, SourceSpec

router = APIRouter(prefix="/v1/inbound-sources", tags=["inbound sources"], responses=STANDARD_ERRORS)
receive_router = APIRouter(prefix="/v1/inbound", tags=["inbound sources"])

SourceId = Path(max_length=64, description="An inbound source id (`isrc_...`).")


def _sources(request: Request) -> InboundSources:
    runtime = get_runtime(request)
    return InboundSources(runtime.keyring, runtime.settings.max_body_bytes)


def _secret(revealed: RevealedSourceSecret) -> InboundSourceSecret:
    return InboundSourceSecret(
        source_id=revealed.source_id,
        secret_id=revealed.secret_id,
        secret=revealed.value,
        created_at=revealed.created_at,
        previous_expires_at=revealed.previous_expires_at,
    )


@router.post("", status_code=201, response_model=InboundSourceCreated)
async def create_source(
    body: InboundSourceCreate, request: Request, actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE))
) -> InboundSourceCreated:
    """Create a source; the answer holds its signing secret, shown only here (and on rotation)."""
    spec = SourceSpec(
        name=body.name,
        scheme=body.scheme,
        connection_id=body.connection_id,
        description=body.description,
        scheme_options=body.options_dict(),
        secret=body.secret,
        tolerance_seconds=body.tolerance_seconds,
        ip_allowlist=body.ip_allowlist,
        max_body_bytes=body.max_body_bytes,
        event_type=body.event_type_dict(),
        dedupe=body.dedupe_dict(),
        dedupe_given="dedupe" in body.model_fields_set,
        enabled=body.enabled,
    )
    async with get_runtime(request).db.unit_of_work() as session:
        row, revealed = await _sources(request).create(session, actor, spec)
    return InboundSourceCreated(**source_info(row).model_dump(), signing_secret=_secret(revealed))


@router.get("", response_model=PageOut[InboundSourceInfo])
async def list_sources(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> PageOut[InboundSourceInfo]:
    """Inbound sources of the tenant, newest first."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await _sources(request).list_sources(session, actor, PageRequest(limit, after))
    return PageOut[InboundSourceInfo](
        data=[source_info(r) for r in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.get("/{source_id}", response_model=InboundSourceInfo)
async def get_source(
    request: Request, source_id: str = SourceId, actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ))
) -> InboundSourceInfo:
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        row = await _sources(request).get(session, actor, source_id)
    return source_info(row)


@router.patch("/{source_id}", response_model=InboundSourceInfo)
async def update_source(
    body: InboundSourceUpdate,
    request: Request,
    source_id: str = SourceId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> InboundSourceInfo:
    """Change a source (the scheme cannot change); ``null`` resets a field to its default."""
    async with get_runtime(request).db.unit_of_work() as session:
        row = await _sources(request).update(session, actor, source_id, body.changes())
    return source_info(row)


@router.delete("/{source_id}", status_code=204, response_class=Response)
async def delete_source(
    request: Request, source_id: str = SourceId, actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE))
) -> Response:
    """Delete the source: the receiver answers 404 for it from now on."""
    async with get_runtime(request).db.unit_of_work() as session:
        await _sources(request).delete(session, actor, source_id)
    return Response(status_code=204)


@router.post("/{source_id}/secret/rotate", status_code=201, response_model=InboundSourceSecret)
async def rotate_source_secret(
    request: Request,
    body: InboundSecretRotate | None = None,
    source_id: str = SourceId,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> InboundSourceSecret:
    """Add a signing secret (the provider's new one, or generated); older ones verify for
    ``overlapSeconds`` more (default 24 h)."""
    body = body or InboundSecretRotate()
    async with get_runtime(request).db.unit_of_work() as session:
        revealed = await _sources(request).rotate_secret(
            session, actor, source_id, secret=body.secret, overlap_seconds=body.overlap_seconds
        )
    return _secret(revealed)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it outgrows ``limit`` (reading stops there)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@receive_router.post(
    "/{source_id}",
    response_model=InboundAccepted,
    responses=error_responses(400, 401, 403, 404, 413, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        },
        "security": [],
    },
)
async def receive(request: Request, source_id: str = SourceId) -> InboundAccepted:
    """Receive a provider's webhook. No API key: the request is authenticated by the signature
    scheme of the source. Failures answer problem+json with a ``reason``."""
    runtime = get_runtime(request)
    receiver = InboundReceiver(runtime.db, runtime.keyring, runtime.security)
    context = InboundContext(
        client_ip(request, runtime), request.headers.get("user-agent"), current_correlation_id()
    )
    declared = request.headers.get("content-length")
    source = await receiver.open(
        source_id, context, int(declared) if declared and declared.isdigit() else None
    )
    body = await _read_body(request, source.max_body_bytes)
    if body is None:
        await receiver.too_large(source, context)
    result = await receiver.receive(source, dict(request.headers), body, context)
    return InboundAccepted(
        event_id=result.event_id,
        event_type=result.event_type,
        duplicate=result.duplicate,
        deliveries=result.deliveries,
    )
