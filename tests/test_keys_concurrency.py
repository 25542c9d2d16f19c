"""Concurrent key changes and long free text: what the database enforces on both engines."""

from __future__ import annotations

import asyncio

import httpx

from interlink.bootstrap import BootstrapResult
from interlink.core.actor import system_actor
from interlink.core.errors import Conflict, Forbidden
from interlink.keys.service import KeySpec
from interlink.runtime import Runtime
from tests.api_helpers import make_key, make_tenant
from tests.conftest import auth


async def test_rotate_racing_revoke_never_revives_the_key(runtime: Runtime, admin: BootstrapResult) -> None:
    actor = system_actor(admin.tenant_id)
    for _ in range(6):
        async with runtime.db.unit_of_work() as session:
            row, plaintext = await runtime.keys.create(
                session, actor, KeySpec(name="raced", scopes=["keys:read"])
            )

        async def rotate(key_id: str = row.id) -> None:
            async with runtime.db.unit_of_work() as session:
                await runtime.keys.rotate(session, actor, key_id, 3600)

        async def revoke(key_id: str = row.id) -> None:
            async with runtime.db.unit_of_work() as session:
                await runtime.keys.revoke(session, actor, key_id, "race")

        outcomes = await asyncio.gather(rotate(), revoke(), return_exceptions=True)
        for outcome in outcomes:
            assert outcome is None or isinstance(outcome, (Conflict, Forbidden)), outcome
        async with runtime.db.unit_of_work(write=False) as session:
            final = await runtime.keys.get(session, actor, row.id)
        assert final.status.value == "REVOKED"  # revoke always ends last or wins
        runtime.cache.clear()
        result = await runtime.verifier.verify(plaintext, ip="127.0.0.1", context=_context())
        assert result.code.value == "revoked"


def _context():  # type: ignore[no-untyped-def]
    from interlink.keys.security import SecurityContext

    return SecurityContext("127.0.0.1", "test", "cid")


async def test_long_revoke_reason_is_kept(client: httpx.AsyncClient, admin_headers: dict[str, str]) -> None:
    key = await make_key(client, admin_headers, name="chatty")
    reason = "rotated after the incident review of 2026-11-25; see the postmortem document " * 4
    revoked = await client.post(
        f"/v1/keys/{key['id']}/revoke", json={"reason": reason[:500]}, headers=admin_headers
    )
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "REVOKED"
    assert revoked.json()["revokedReason"] == reason[:500]
    events = await client.get(
        "/v1/security-events", params={"eventType": "key.revoked", "keyId": key["id"]}, headers=admin_headers
    )
    [event] = events.json()["data"]
    assert event["details"]["reason"] == reason[:500]


async def test_long_paths_for_another_tenant_are_404(
    client: httpx.AsyncClient, admin: BootstrapResult, admin_headers: dict[str, str]
) -> None:
    tenant_id = await make_tenant(client, admin_headers, "Far Away")
    response = await client.get("/v1/keys/" + "x" * 120, headers=auth(admin.key, tenant_id))
    assert response.status_code == 404, response.text
