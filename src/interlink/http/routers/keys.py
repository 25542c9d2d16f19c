"""``/v1/keys``: create, list, show, update, rotate, revoke and verify API keys."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope, ApiKeyStatus
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut
from interlink.http.auth import client_ip, get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses
from interlink.http.verify_path import verify_for
from interlink.keys.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRevoke,
    ApiKeyRotate,
    ApiKeyRotated,
    ApiKeyUpdate,
    VerifyKeyRequest,
    VerifyKeyResponse,
    key_info,
)
from interlink.keys.service import KeySpec, KeyUpdate, effective_status

router = APIRouter(prefix="/v1/keys", tags=["keys"], responses=STANDARD_ERRORS)


def _info(row: object) -> ApiKeyInfo:
    return ApiKeyInfo(**key_info(row, effective_status(row)))  # type: ignore[arg-type]


@router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_key(
    body: ApiKeyCreate, request: Request, actor: Actor = Depends(require(ApiKeyScope.KEYS_WRITE))
) -> ApiKeyCreated:
    """Create a key. The response carries ``key`` once; store it, it cannot be shown again."""
    spec = KeySpec(
        name=body.name,
        scopes=[s.value for s in body.scopes],
        kind=body.kind,
        environment=body.environment,
        expires_at=body.expires_at,
        meta=body.metadata,
        allowed_ips=body.allowed_ips,
        rate_limit=body.rate_limit.limit if body.rate_limit else None,
        rate_limit_period_seconds=body.rate_limit.period_seconds if body.rate_limit else None,
    )
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work() as session:
        row, plaintext = await runtime.keys.create(session, actor, spec)
    return ApiKeyCreated(**key_info(row, effective_status(row)), key=plaintext)


@router.get("", response_model=PageOut[ApiKeyInfo])
async def list_keys(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    status: ApiKeyStatus | None = Query(None),
    actor: Actor = Depends(require(ApiKeyScope.KEYS_READ)),
) -> PageOut[ApiKeyInfo]:
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work(write=False) as session:
        page = await runtime.keys.list_keys(session, actor, PageRequest(limit, after), status)
    return PageOut[ApiKeyInfo](
        data=[_info(k) for k in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.post("/verify", response_model=VerifyKeyResponse)
async def verify_key(
    body: VerifyKeyRequest, request: Request, actor: Actor = Depends(require(ApiKeyScope.KEYS_VERIFY))
) -> VerifyKeyResponse:
    """Check a key presented to your application: valid or not, why, and whose it is.

    Platform keys verify keys of any tenant (or of the ``X-Tenant-Id`` tenant); tenant keys only
    their own tenant's. Counts one use of the key against its rate limit. Answered 200 with
    ``valid`` and ``code`` whatever the outcome; 401/403/429 concern the *calling* key.
    """
    runtime = get_runtime(request)
    return await verify_for(
        runtime,
        actor,
        body,
        caller_ip=client_ip(request, runtime),
        user_agent=request.headers.get("user-agent"),
    )


@router.get("/{key_id}", response_model=ApiKeyInfo)
async def get_key(
    key_id: str, request: Request, actor: Actor = Depends(require(ApiKeyScope.KEYS_READ))
) -> ApiKeyInfo:
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work(write=False) as session:
        row = await runtime.keys.get(session, actor, key_id)
    return _info(row)


@router.patch("/{key_id}", response_model=ApiKeyInfo, responses=error_responses(409))
async def update_key(
    key_id: str, body: ApiKeyUpdate, request: Request, actor: Actor = Depends(require(ApiKeyScope.KEYS_WRITE))
) -> ApiKeyInfo:
    """Change name, scopes, expiry, metadata, allowed IPs or rate limit (``null`` removes expiry/limit)."""
    sent = body.model_fields_set
    change = KeyUpdate(
        name=body.name,
        scopes=[s.value for s in body.scopes] if body.scopes is not None else None,
        expires_at=body.expires_at,
        clear_expiry="expires_at" in sent and body.expires_at is None,
        meta=body.metadata,
        allowed_ips=body.allowed_ips,
        rate_limit=body.rate_limit.limit if body.rate_limit else None,
        rate_limit_period_seconds=body.rate_limit.period_seconds if body.rate_limit else None,
        clear_rate_limit="rate_limit" in sent and body.rate_limit is None,
    )
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work() as session:
        row = await runtime.keys.update(session, actor, key_id, change)
    return _info(row)


@router.post(
    "/{key_id}/rotate", status_code=201, response_model=ApiKeyRotated, responses=error_responses(409)
)
async def rotate_key(
    key_id: str,
    request: Request,
    body: ApiKeyRotate | None = None,
    actor: Actor = Depends(require(ApiKeyScope.KEYS_WRITE)),
) -> ApiKeyRotated:
    """Issue a replacement key; the old one keeps working for ``gracePeriodSeconds`` (default 24 h)."""
    runtime = get_runtime(request)
    grace = body.grace_period_seconds if body else None
    async with runtime.db.unit_of_work() as session:
        old, new, plaintext = await runtime.keys.rotate(session, actor, key_id, grace)
    return ApiKeyRotated(
        old_key=_info(old), new_key=ApiKeyCreated(**key_info(new, effective_status(new)), key=plaintext)
    )


@router.post("/{key_id}/revoke", response_model=ApiKeyInfo, responses=error_responses(409))
async def revoke_key(
    key_id: str,
    request: Request,
    body: ApiKeyRevoke | None = None,
    actor: Actor = Depends(require(ApiKeyScope.KEYS_WRITE)),
) -> ApiKeyInfo:
    """Revoke at once, in every process."""
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work() as session:
        row = await runtime.keys.revoke(session, actor, key_id, body.reason if body else None)
    return _info(row)
