"""``/v1/replays``: send deliveries again (WebhookReplayRequest), idempotent per ``requestId``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from interlink.core.actor import Actor
from interlink.core.enums import ApiKeyScope
from interlink.core.pagination import PageRequest
from interlink.core.schemas import PageOut
from interlink.http.auth import get_runtime, require
from interlink.http.errors import STANDARD_ERRORS, error_responses
from interlink.webhooks import replay
from interlink.webhooks.models import WebhookReplay
from interlink.webhooks.replay_schemas import ReplaySkip, WebhookReplayInfo, WebhookReplayRequest

router = APIRouter(prefix="/v1/replays", tags=["replays"], responses=STANDARD_ERRORS)

ReplayId = Path(max_length=64, description="A replay id (`rpl_...`).")


def replay_info(row: WebhookReplay, *, created: bool | None = None) -> WebhookReplayInfo:
    skipped = [ReplaySkip.model_validate(s) for s in row.skipped or []]
    return WebhookReplayInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        request_id=row.request_id,
        kind=row.kind,
        request=dict(row.request or {}),
        delivery_ids=list(row.delivery_ids or []),
        delivery_count=len(row.delivery_ids or []),
        created_count=row.created_count,
        skipped=skipped,
        skipped_count=len(skipped),
        actor_key_id=row.actor_key_id,
        correlation_id=row.correlation_id,
        created_at=row.created_at,
        created=created,
    )


@router.post(
    "",
    status_code=201,
    response_model=WebhookReplayInfo,
    responses={
        200: {"model": WebhookReplayInfo, "description": "An earlier replay with this requestId"},
        **error_responses(409),
    },
)
async def create_replay(
    body: WebhookReplayRequest,
    request: Request,
    response: Response,
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_WRITE)),
) -> WebhookReplayInfo:
    """Requeue one delivery, one event (to all or some endpoints) or an endpoint's failed deliveries
    in a time range; recorded and audited. A repeated ``requestId`` returns the first replay (200)."""
    spec = replay.ReplaySpec(
        request_id=body.request_id,
        delivery_id=body.delivery_id,
        event_id=body.event_id,
        endpoint_ids=body.endpoint_ids,
        endpoint_id=body.endpoint_id,
        since=body.since,
        until=body.until,
        statuses=body.statuses,
    )
    runtime = get_runtime(request)
    async with runtime.db.unit_of_work() as session:
        result = await replay.create_replay(session, actor, spec)
    if not result.created:
        response.status_code = 200
    elif result.replay.delivery_ids and runtime.delivery_worker is not None:
        runtime.delivery_worker.wake()
    return replay_info(result.replay, created=result.created)


@router.get("", response_model=PageOut[WebhookReplayInfo])
async def list_replays(
    request: Request,
    limit: int = Query(50, ge=1, le=200),
    after: str | None = Query(None, max_length=64),
    actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ)),
) -> PageOut[WebhookReplayInfo]:
    """Replays of the tenant, newest first."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        page = await replay.list_replays(session, actor.tenant_id, PageRequest(limit, after))
    return PageOut[WebhookReplayInfo](
        data=[replay_info(r) for r in page.items], has_more=page.has_more, next_cursor=page.next_cursor
    )


@router.get("/{replay_id}", response_model=WebhookReplayInfo)
async def get_replay(
    request: Request, replay_id: str = ReplayId, actor: Actor = Depends(require(ApiKeyScope.WEBHOOKS_READ))
) -> WebhookReplayInfo:
    """One replay: what was asked, what was requeued or created, what was skipped and why."""
    async with get_runtime(request).db.unit_of_work(write=False) as session:
        row = await replay.get_replay(session, actor.tenant_id, replay_id)
    return replay_info(row)
