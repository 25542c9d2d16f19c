"""The verification hot path (tuned for ``bench/keys.py``) answers exactly as the plain rules say.

* ``checksum`` is CRC32 in six base62 digits, checked against a direct reference encoding;
* ``is_well_formed`` agrees with ``parse_key`` on valid, mutated and malformed keys;
* ``KeyVerifier.verify``: expiry and rotation deadlines (the clock is read only when a key can
  expire), missing scopes, the display prefix on unknown keys, and cache hits answering like misses.
"""

from __future__ import annotations

import random
import zlib
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from interlink.bootstrap import BootstrapResult
from interlink.core import clock
from interlink.core.actor import Actor, system_actor
from interlink.core.enums import IntegrationEnvironment
from interlink.keys.format import (
    BASE62,
    CHECKSUM_LENGTH,
    checksum,
    display_prefix,
    generate_key,
    is_well_formed,
    parse_key,
)
from interlink.keys.models import SecurityEvent
from interlink.keys.security import SecurityContext
from interlink.keys.service import KeySpec, VerifyCode
from interlink.runtime import Runtime

CONTEXT = SecurityContext("203.0.113.7", "hot-path-test", "cid-hot-path")


def reference_checksum(head: str) -> str:
    value = zlib.crc32(head.encode())
    digits = ""
    for _ in range(CHECKSUM_LENGTH):
        value, rest = divmod(value, 62)
        digits = BASE62[rest] + digits
    return digits


def test_checksum_matches_the_reference_encoding() -> None:
    rng = random.Random(20261125)
    heads = [f"il_live_{''.join(rng.choice(BASE62) for _ in range(32))}" for _ in range(20_000)]
    for head in heads:
        assert checksum(head) == reference_checksum(head)


@pytest.mark.parametrize("crc", [0, 1, 61, 62, 3843, 3844, 62**4 - 1, 62**4, 2**31, 2**32 - 1])
def test_checksum_digits_at_the_boundaries(crc: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zlib, "crc32", lambda _data: crc)
    assert checksum("anything") == reference_checksum("anything")
    assert len(checksum("anything")) == CHECKSUM_LENGTH


def test_is_well_formed_agrees_with_parse_key() -> None:
    rng = random.Random(7)
    candidates = ["", "il_live_", "il_live_" + "a" * 38, "IL_LIVE_" + "a" * 38]
    for environment in IntegrationEnvironment:
        key = generate_key(environment)
        candidates += [key, key + "\n", " " + key, key[:-1], key + "a"]
        for position in range(len(key)):
            replacement = rng.choice([c for c in BASE62 + "_-" if c != key[position]])
            candidates.append(key[:position] + replacement + key[position + 1 :])
    verdicts = {is_well_formed(c) for c in candidates}
    assert verdicts == {True, False}
    for candidate in candidates:
        assert is_well_formed(candidate) is (parse_key(candidate) is not None), candidate


async def _key(runtime: Runtime, actor: Actor, name: str = "hot path", **spec: Any) -> tuple[str, str]:
    async with runtime.db.unit_of_work() as session:
        row, plaintext = await runtime.keys.create(
            session, actor, KeySpec(name=name, scopes=["keys:read"], **spec)
        )
    return row.id, plaintext


async def _verify(runtime: Runtime, key: str, now: float | None = None) -> VerifyCode:
    result = await runtime.verifier.verify(key, ip="203.0.113.7", context=CONTEXT, now=now)
    return result.code


async def test_expiry_is_checked_on_cached_keys(runtime: Runtime, admin: BootstrapResult) -> None:
    actor = system_actor(admin.tenant_id)
    _, expiring = await _key(runtime, actor, expires_at=clock.utcnow() + timedelta(minutes=5))
    _, forever = await _key(runtime, actor)
    assert await _verify(runtime, expiring) is VerifyCode.VALID  # now cached
    assert await _verify(runtime, forever) is VerifyCode.VALID
    deadline = clock.utcnow() + timedelta(minutes=5)
    assert await _verify(runtime, expiring, now=deadline.timestamp() - 1) is VerifyCode.VALID
    assert await _verify(runtime, expiring, now=deadline.timestamp() + 1) is VerifyCode.EXPIRED
    clock.shift(timedelta(minutes=6))
    assert await _verify(runtime, expiring) is VerifyCode.EXPIRED
    assert await _verify(runtime, forever) is VerifyCode.VALID


async def test_rotated_key_expires_at_the_earlier_deadline(runtime: Runtime, admin: BootstrapResult) -> None:
    actor = system_actor(admin.tenant_id)
    long_id, long_lived = await _key(runtime, actor, name="grace decides")
    short_id, short_lived = await _key(
        runtime, actor, name="expiry decides", expires_at=clock.utcnow() + timedelta(minutes=10)
    )
    async with runtime.db.unit_of_work() as session:
        await runtime.keys.rotate(session, actor, long_id, 30 * 60)
        await runtime.keys.rotate(session, actor, short_id, 60 * 60)
    for key in (long_lived, short_lived):
        assert await _verify(runtime, key) is VerifyCode.VALID
    clock.shift(timedelta(minutes=11))  # past the expiry of one, inside both grace periods
    assert await _verify(runtime, long_lived) is VerifyCode.VALID
    assert await _verify(runtime, short_lived) is VerifyCode.EXPIRED
    clock.shift(timedelta(minutes=20))  # past the 30-minute grace period
    assert await _verify(runtime, long_lived) is VerifyCode.EXPIRED


async def test_missing_scopes_are_named_in_request_order(runtime: Runtime, admin: BootstrapResult) -> None:
    _, key = await _key(runtime, system_actor(admin.tenant_id))
    ok = await runtime.verifier.verify(key, ip=None, context=CONTEXT, required_scopes=["keys:read"])
    assert ok.code is VerifyCode.VALID and ok.missing_scopes == ()
    for attempt in range(2):  # a cache miss, then a hit
        result = await runtime.verifier.verify(
            key, ip=None, context=CONTEXT, required_scopes=["keys:write", "keys:read", "audit:read"]
        )
        assert result.code is VerifyCode.INSUFFICIENT_SCOPE, attempt
        assert result.missing_scopes == ("keys:write", "audit:read")
    admin_result = await runtime.verifier.verify(
        admin.key, ip=None, context=CONTEXT, required_scopes=["keys:write", "audit:read"]
    )
    assert admin_result.code is VerifyCode.VALID


async def test_unknown_and_malformed_keys_are_logged_with_their_display_prefix(
    runtime: Runtime, admin: BootstrapResult
) -> None:
    unknown = generate_key(IntegrationEnvironment.SANDBOX)
    assert await _verify(runtime, unknown) is VerifyCode.UNKNOWN
    assert await _verify(runtime, unknown[:-1] + ("A" if unknown[-1] != "A" else "B")) is VerifyCode.MALFORMED
    async with runtime.db.unit_of_work(write=False) as session:
        events = (
            await session.scalars(
                sa.select(SecurityEvent).where(SecurityEvent.correlation_id == CONTEXT.correlation_id)
            )
        ).all()
    by_reason = {event.reason: event for event in events}
    assert set(by_reason) == {"unknown", "malformed"}
    parsed = parse_key(unknown)
    assert parsed is not None
    assert by_reason["unknown"].key_prefix == parsed.prefix == display_prefix(unknown)
    assert by_reason["malformed"].key_prefix is None
    assert all(event.event_type == "auth.failed" and event.key_id is None for event in events)


async def test_a_cache_hit_answers_like_a_miss(runtime: Runtime, admin: BootstrapResult) -> None:
    key_id, key = await _key(runtime, system_actor(admin.tenant_id), meta={"plan": "pro"})
    runtime.cache.clear()
    miss = await runtime.verifier.verify(key, ip="203.0.113.7", context=CONTEXT)
    assert len(runtime.cache) == 1
    hit = await runtime.verifier.verify(key, ip="203.0.113.7", context=CONTEXT)
    assert miss == hit
    assert hit.code is VerifyCode.VALID and hit.key is not None and hit.key.id == key_id
    other_tenant = await runtime.verifier.verify(
        key, ip=None, context=CONTEXT, restrict_tenant="ten_00000000000000000000000000"
    )
    assert other_tenant.code is VerifyCode.UNKNOWN and other_tenant.key is None
