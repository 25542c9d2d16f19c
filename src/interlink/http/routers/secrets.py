"""``/v1/secrets``: store, list, show, rotate and delete encrypted secrets. Values go in, never out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from interlink.connections.service import connection_holding
from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.errors import Conflict
from interlink.core.models import IntegrationSecret
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut
from interlink.core.secret_schemas import SecretCreate, SecretInfo, SecretRotate, secret_info
from interlink.core.secrets import SecretSpec, SecretStore
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses

router = APIRouter(prefix="/v1/secrets", tags=["secrets"], responses=STANDARD_ERRORS)

SecretId = Path(max_length=64, description="A secret id (`sec_...`).")


def _store(request: Request) -> SecretStore:
    return SecretStore.from_runtime(get_runtime(request))


def _info(store: SecretStore, row: IntegrationSecret) -> SecretInfo:
    return secret_info(row, store.risk(row))


async def _not_held_by_a_connection(
    session: AsyncSession, store: SecretStore, actor: Actor, secret_id: str
) -> None:
    """409 for a secret a connection uses (its credentials or tokens change through the connection)."""
    held = await connection_holding(session, await store.get(session, actor, secret_id))
    if held is not None:
        conn, role = held
        raise Conflict(
            f"secret {secret_id} holds the {role} of connection {conn.id}: change it with "
            f"PATCH /v1/connections/{conn.id} (deleting the connection deletes it)",
            extra={"connectionId": conn.id},
        )


@router.post("", status_code=201, response_model=SecretInfo, responses=error_responses(409))
async def create_secret(
    body: SecretCreate, request: Request, actor: Actor = Depends(require(ApiKeyScope.SECRETS_WRITE))
) -> SecretInfo:
    """Store a secret, encrypted. The value is never returned; the response describes the secret."""
    spec = SecretSpec(
        name=body.name,
        value=body.value.get_secret_value(),
        token_type=body.token_type,
        owner_type=body.owner_type,
        owner_id=body.owner_id,
        meta=body.metadata,
        rotate_by=body.rotate_by,
        expires_at=body.expires_at,
    )
    store = _store(request)
    async with get_runtime(request).db.unit_of_work() as session:
        row = await store.create(session, actor, spec)
    return _info(store, row)


@router.get("", response_model=PageOut[SecretInfo])
async def list_secrets(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    owner_type: str | None = Query(None, alias="ownerType", max_length=40),
    owner_id: str | None = Query(None, alias="ownerId", max_length=80),
    actor: Actor = Depends(require(ApiKeyScope.SECRETS_READ)),
) -> PageOut[SecretInfo]:
    """Secrets of the tenant, newest first, optionally of one owner."""
    store = _store(request)
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await store.list_secrets(
            session, actor, PageRequest(limit, after), owner_type=owner_type, owner_id=owner_id
        )
    return PageOut[SecretInfo](
        data=[_info(store, s) for s in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.get("/{secret_id}", response_model=SecretInfo)
async def get_secret(
    request: Request,
    secret_id: str = SecretId,
    actor: Actor = Depends(require(ApiKeyScope.SECRETS_READ)),
) -> SecretInfo:
    store = _store(request)
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        row = await store.get(session, actor, secret_id)
    return _info(store, row)


@router.post("/{secret_id}/rotate", response_model=SecretInfo, responses=error_responses(409))
async def rotate_secret(
    body: SecretRotate,
    request: Request,
    secret_id: str = SecretId,
    actor: Actor = Depends(require(ApiKeyScope.SECRETS_WRITE)),
) -> SecretInfo:
    """Replace the value: ``version`` + 1, ``lastRotatedAt`` now, ``rotateBy`` as given or now +
    the configured rotation period. The new value is encrypted under the primary master key."""
    store = _store(request)
    async with get_runtime(request).db.unit_of_work() as session:
        await _not_held_by_a_connection(session, store, actor, secret_id)
        row = await store.rotate(
            session,
            actor,
            secret_id,
            body.value.get_secret_value(),
            rotate_by=body.rotate_by,
            expires_at=body.expires_at,
        )
    return _info(store, row)


@router.delete("/{secret_id}", status_code=204, response_class=Response, responses=error_responses(409))
async def delete_secret(
    request: Request,
    secret_id: str = SecretId,
    actor: Actor = Depends(require(ApiKeyScope.SECRETS_WRITE)),
) -> Response:
    """Delete the secret and its ciphertext."""
    store = _store(request)
    async with get_runtime(request).db.unit_of_work() as session:
        await _not_held_by_a_connection(session, store, actor, secret_id)
        await store.delete(session, actor, secret_id)
    return Response(status_code=204)
