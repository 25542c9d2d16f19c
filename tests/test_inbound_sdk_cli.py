"""Inbound sources through the Python SDK (blocking and asyncio) and the CLI, and a provider's
request over real HTTP, against a real server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from interlink.client import AsyncInterlinkClient, InterlinkClient, NotFoundError, ValidationError
from interlink.webhooks.inbound.schemas import InboundSourceCreated, InboundSourceInfo
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer


@pytest.fixture
def sdk(live_server: LiveServer) -> Iterator[InterlinkClient]:
    with InterlinkClient(live_server.url, live_server.admin_key) as client:
        yield client


def stripe_post(server: LiveServer, path: str, secret: str, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    t = int(time.time())
    signature = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"Stripe-Signature": f"t={t},v1={signature}", "Content-Type": "application/json"}
    return httpx.post(server.url + path, content=body, headers=headers, timeout=10)


def test_sdk_lifecycle_and_a_provider_post_over_http(sdk: InterlinkClient, live_server: LiveServer) -> None:
    made = sdk.inbound_sources.create(
        "stripe live", "stripe", secret="whsec_live_1", ip_allowlist=["127.0.0.1"]
    )
    assert isinstance(made, InboundSourceCreated)
    assert made.signing_secret.secret == "whsec_live_1" and made.ip_allowlist == ["127.0.0.1/32"]
    assert made.dedupe == {"from": "body", "field": "id"}

    accepted = stripe_post(
        live_server, made.receive_path, "whsec_live_1", {"id": "evt_h1", "type": "charge.paid"}
    )
    assert accepted.status_code == 200, accepted.text
    event = sdk.events.get(accepted.json()["eventId"])
    assert event.type == "stripe.charge.paid"
    repeat = stripe_post(
        live_server, made.receive_path, "whsec_live_1", {"id": "evt_h1", "type": "charge.paid"}
    )
    assert repeat.json() == {**accepted.json(), "duplicate": True, "deliveries": 0}

    shown = sdk.inbound_sources.get(made.id)
    assert isinstance(shown, InboundSourceInfo) and shown.id == made.id
    assert [s.id for s in sdk.inbound_sources.list()] == [made.id]
    assert [s.id for s in sdk.inbound_sources.iter_all(page_size=1)] == [made.id]
    changed = sdk.inbound_sources.update(made.id, tolerance_seconds=30, dedupe=None)
    assert changed.tolerance_seconds == 30 and changed.dedupe is None
    for wrong in ({"scheme": "github"}, {"secret": "whsec_x"}, {"tolerance": 5}):
        with pytest.raises(TypeError, match="unexpected keyword"):
            sdk.inbound_sources.update(made.id, **wrong)
    rotated = sdk.inbound_sources.rotate_secret(made.id, overlap_seconds=0)
    assert rotated.secret.startswith("whsec_") and rotated.previous_expires_at is not None
    refused = stripe_post(
        live_server, made.receive_path, "whsec_live_1", {"id": "evt_h2", "type": "charge.paid"}
    )
    assert refused.status_code == 401 and refused.json()["reason"] == "bad_signature"
    with pytest.raises(ValidationError) as bad:
        sdk.inbound_sources.create("x", "hmac")
    assert [e.field for e in bad.value.errors] == ["schemeOptions.header"]
    sdk.inbound_sources.delete(made.id)
    with pytest.raises(NotFoundError):
        sdk.inbound_sources.get(made.id)


async def test_async_sdk(live_server: LiveServer) -> None:
    async with AsyncInterlinkClient(live_server.url, live_server.admin_key) as client:
        made = await client.inbound_sources.create(
            "acme",
            "hmac",
            scheme_options={"header": "X-Sig"},
            event_type={"from": "header", "field": "X-Topic", "prefix": "acme."},
        )
        assert made.scheme_options["header"] == "X-Sig" and made.dedupe is None
        assert (await client.inbound_sources.get(made.id)).event_type["prefix"] == "acme."
        assert [s.id async for s in client.inbound_sources.iter_all()] == [made.id]
        assert (await client.inbound_sources.update(made.id, enabled=False)).enabled is False
        rotated = await client.inbound_sources.rotate_secret(made.id, secret="acme-2")
        assert rotated.secret == "acme-2"
        await client.inbound_sources.delete(made.id)
        with pytest.raises(NotFoundError):
            await client.inbound_sources.get(made.id)


def run(server: LiveServer, *args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("INTERLINK_") or k.startswith("INTERLINK_TEST")
    }
    environment.update(
        {"COLUMNS": "250", "INTERLINK_API_URL": server.url, "INTERLINK_API_KEY": server.admin_key}
    )
    result = run_interlink(args, env=environment, real=real)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_cli(live_server: LiveServer) -> None:
    created = run(
        live_server, "inbound-sources", "create", "gh", "--scheme", "github", "--secret", "gh-s", "--json"
    )
    assert created.returncode == 0, created.stderr
    source = json.loads(created.stdout)
    assert source["signingSecret"]["secret"] == "gh-s"
    table = run(live_server, "inbound-sources", "create", "shop", "--scheme", "shopify", "--dedupe", "none")
    assert table.returncode == 0 and "shown only now" in table.stdout, table.stderr

    listed = run(live_server, "inbound-sources", "list", "--json", real=True)
    assert len(json.loads(listed.stdout)["data"]) == 2
    shown = run(live_server, "inbound-sources", "show", source["id"])
    assert shown.returncode == 0 and source["id"] in shown.stdout and "gh-s" not in shown.stdout
    rotated = run(
        live_server, "inbound-sources", "rotate-secret", source["id"], "--secret", "gh-t", "--overlap", "60"
    )
    assert rotated.returncode == 0 and "gh-t" in rotated.stdout, rotated.stderr
    updated = run(
        live_server,
        "inbound-sources",
        "update",
        source["id"],
        "--name",
        "gh renamed",
        "--tolerance",
        "60",
        "--allow-ip",
        "203.0.113.0/24",
        "--allow-ip",
        "198.51.100.7",
        "--dedupe",
        "none",
        "--disable",
        "--json",
    )
    assert updated.returncode == 0, updated.stderr
    changed = json.loads(updated.stdout)
    assert changed["name"] == "gh renamed" and changed["toleranceSeconds"] == 60
    assert changed["ipAllowlist"] == ["203.0.113.0/24", "198.51.100.7/32"]
    assert changed["dedupe"] is None and changed["enabled"] is False
    assert "gh-t" not in updated.stdout and "signingSecret" not in changed
    reset = run(
        live_server,
        "inbound-sources",
        "update",
        source["id"],
        "--any-ip",
        "--event-type",
        '{"from": "fixed", "field": "push"}',
        "--dedupe",
        '{"from": "header", "field": "X-GitHub-Delivery"}',
        "--enable",
        "--json",
    )
    assert reset.returncode == 0, reset.stderr
    again = json.loads(reset.stdout)
    assert again["ipAllowlist"] == [] and again["enabled"] is True and again["name"] == "gh renamed"
    assert again["eventType"] == {"from": "fixed", "field": "push", "prefix": ""}
    assert again["dedupe"] == {"from": "header", "field": "X-GitHub-Delivery"}
    text = run(live_server, "inbound-sources", "update", source["id"], "--event-type", "default")
    assert text.returncode == 0 and "github." in text.stdout, text.stderr
    refused = run(live_server, "inbound-sources", "update", source["id"], "--allow-ip", "10.0.0.0/33")
    assert refused.returncode == 1 and "ipAllowlist.0" in refused.stderr
    nothing = run(live_server, "inbound-sources", "update", source["id"])
    assert nothing.returncode == 2
    both = run(live_server, "inbound-sources", "update", source["id"], "--allow-ip", "10.0.0.1", "--any-ip")
    assert both.returncode == 2
    bad = run(live_server, "inbound-sources", "create", "x", "--scheme", "nope")
    assert bad.returncode == 1 and "scheme" in bad.stderr
    deleted = run(live_server, "inbound-sources", "delete", source["id"])
    assert deleted.returncode == 0 and "Deleted" in deleted.stdout
    missing = run(live_server, "inbound-sources", "show", source["id"])
    assert missing.returncode == 1
