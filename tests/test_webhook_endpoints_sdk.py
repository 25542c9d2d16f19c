"""Event types and endpoints through the Python SDK (blocking and asyncio) and the CLI, against a
real server on 127.0.0.1 that allows loopback targets."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlink.client import (
    AsyncInterlinkClient,
    ConflictError,
    InterlinkClient,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from interlink.core.enums import DeliveryChannel, RetentionPolicy
from interlink.webhooks import signing
from interlink.webhooks.schemas import BatchConfig, EndpointSecret, EventTypeInfo, WebhookEndpointInfo
from tests.cli_runner import run_interlink
from tests.conftest import LiveServer

HOOK = "http://127.0.0.1:9/hooks/in"


@pytest.fixture
def live_server_settings_overrides() -> dict[str, object]:
    """The SSRF guard allows 127.0.0.0/8, where test receivers live."""
    return {"allowed_target_networks": ["127.0.0.0/8"]}


@pytest.fixture
def server(live_server: LiveServer) -> LiveServer:
    return live_server


@pytest.fixture
def sdk(server: LiveServer) -> Iterator[InterlinkClient]:
    with InterlinkClient(server.url, server.admin_key) as client:
        yield client


def test_event_types_through_the_sdk(sdk: InterlinkClient, server: LiveServer) -> None:
    schema = {"type": "object", "required": ["id"]}
    made = sdk.event_types.create("invoice.paid", description="Paid", schema=schema)
    assert isinstance(made, EventTypeInfo)
    assert made.json_schema == schema and made.tenant_id == server.tenant_id
    assert sdk.event_types.get("invoice.paid") == made == sdk.event_types.get(made.id)
    with pytest.raises(ConflictError):
        sdk.event_types.create("invoice.paid")
    with pytest.raises(ValidationError) as bad:
        sdk.event_types.create("broken", schema={"type": 12})
    assert [e.field for e in bad.value.errors] == ["schema"]

    changed = sdk.event_types.update(made.id, description="Paid in full", schema=None)
    assert changed.description == "Paid in full" and changed.json_schema is None
    assert sdk.event_types.deprecate("invoice.paid").deprecated is True
    sdk.event_types.create("invoice.created")
    assert [t.name for t in sdk.event_types.list(deprecated=False)] == ["invoice.created"]
    assert [t.name for t in sdk.event_types.iter_all(page_size=1)] == ["invoice.created", "invoice.paid"]


def test_endpoint_lifecycle_through_the_sdk(sdk: InterlinkClient) -> None:
    made = sdk.endpoints.create(
        HOOK,
        event_types=["invoice.paid"],
        filter={"payload.amount": {"$gt": 0}},
        transformation='{"id": payload.id}',
        headers={"X-Team": "billing"},
        retry_schedule=[5, 30],
        batch_config=BatchConfig(max_count=10, max_bytes=4096, max_wait_seconds=1.5),
        retention=RetentionPolicy.DAYS_7,
        metadata={"owner": "billing"},
    )
    assert isinstance(made, WebhookEndpointInfo)
    assert made.url == HOOK and made.channel is DeliveryChannel.WEBHOOK and made.enabled
    assert made.batch_config == BatchConfig(max_count=10, max_bytes=4096, max_wait_seconds=1.5)
    assert "whsec_" not in made.model_dump_json()

    secret = sdk.endpoints.get_secret(made.id)
    assert isinstance(secret, EndpointSecret) and secret.key.startswith("whsec_")
    rotated = sdk.endpoints.rotate_secret(made.id)
    assert rotated.key != secret.key and rotated.previous_expires_at is not None
    assert sdk.endpoints.get_secret(made.id).key == rotated.key
    listed = sdk.endpoints.list()
    assert [e.id for e in listed] == [made.id]
    assert secret.key not in str(listed) and rotated.key not in sdk.endpoints.get(made.id).model_dump_json()

    preview = sdk.endpoints.test_transformation(made.id, {"id": "inv_9"}, "invoice.paid")
    assert preview.output == {"id": "inv_9"}
    with pytest.raises(ValidationError) as broken:
        sdk.endpoints.test_transformation(made.id, {}, "x", template="payload.(")
    assert [e.field for e in broken.value.errors] == ["template"]

    changed = sdk.endpoints.update(made.id, filter=None, timeout_seconds=5, description="billing")
    assert changed.filter is None and changed.timeout_seconds == 5 and changed.description == "billing"
    with pytest.raises(ValidationError) as private:
        sdk.endpoints.update(made.id, url="http://10.1.2.3/x")
    assert [e.field for e in private.value.errors] == ["url"]
    with pytest.raises(TypeError):
        sdk.endpoints.update(made.id, colour="blue")

    disabled = sdk.endpoints.disable(made.id, reason="maintenance")
    assert not disabled.enabled and disabled.disabled_reason == "maintenance"
    assert [e.id for e in sdk.endpoints.list(enabled=False)] == [made.id]
    assert sdk.endpoints.enable(made.id).enabled

    email = sdk.endpoints.create(channel="EMAIL", channel_config={"to": ["ops@example.com"]})
    assert email.url == "mailto:ops@example.com"
    assert [e.id for e in sdk.endpoints.iter_all(page_size=1)] == [email.id, made.id]

    sdk.endpoints.delete(made.id)
    with pytest.raises(NotFoundError):
        sdk.endpoints.get(made.id)

    reader = sdk.keys.create("reader", ["webhooks:read"])
    with InterlinkClient(sdk.base_url, reader.key) as limited:
        assert limited.endpoints.get(email.id).id == email.id
        with pytest.raises(PermissionDeniedError):
            limited.endpoints.get_secret(email.id)


async def test_async_client(server: LiveServer) -> None:
    async with AsyncInterlinkClient(server.url, server.admin_key) as client:
        kind = await client.event_types.create("order.created")
        assert (await client.event_types.get(kind.id)).name == "order.created"
        made = await client.endpoints.create(HOOK, event_types=["order.created"])
        secret = await client.endpoints.get_secret(made.id)
        rotated = await client.endpoints.rotate_secret(made.id)
        assert secret.key != rotated.key
        updated = await client.endpoints.update(made.id, max_in_flight=4)
        assert updated.max_in_flight == 4
        assert [e.id async for e in client.endpoints.iter_all()] == [made.id]
        assert [t.id async for t in client.event_types.iter_all()] == [kind.id]
        assert not (await client.endpoints.disable(made.id)).enabled
        assert (await client.endpoints.enable(made.id)).enabled
        preview = await client.endpoints.test_transformation(
            made.id, {"a": 1}, "order.created", template="payload.a"
        )
        assert preview.output == 1
        assert (await client.event_types.deprecate(kind.id)).deprecated
        await client.endpoints.delete(made.id)
        with pytest.raises(NotFoundError):
            await client.endpoints.get(made.id)


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


def ok_json(server: LiveServer, *args: str, real: bool = False) -> Any:
    result = run(server, *args, "--json", real=real)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cli(server: LiveServer, tmp_path: Path) -> None:
    schema_file = tmp_path / "schema.json"
    schema_file.write_text(json.dumps({"type": "object"}))
    kind = ok_json(server, "event-types", "create", "invoice.paid", "--schema", f"@{schema_file}")
    assert kind["schema"] == {"type": "object"}
    assert "invoice.paid" in run(server, "event-types", "list").stdout
    assert ok_json(server, "event-types", "update", "invoice.paid", "--no-schema")["schema"] is None
    assert ok_json(server, "event-types", "deprecate", kind["id"])["deprecated"] is True
    assert ok_json(server, "event-types", "show", "invoice.paid", real=True)["id"] == kind["id"]

    made = ok_json(
        server,
        "endpoints",
        "create",
        HOOK,
        "--event-type",
        "invoice.paid",
        "--filter",
        '{"payload.amount": {"$gt": 0}}',
        "--header",
        "X-Team: billing",
        "--retry",
        "5",
        "--retry",
        "60",
        "--timeout",
        "10",
    )
    assert made["eventTypes"] == ["invoice.paid"] and made["headers"] == {"X-Team": "billing"}
    assert made["retrySchedule"] == [5, 60] and made["timeoutSeconds"] == 10
    table = run(server, "endpoints", "list")
    assert table.returncode == 0 and made["id"] in table.stdout and "whsec_" not in table.stdout
    shown = run(server, "endpoints", "show", made["id"])
    assert shown.returncode == 0 and HOOK in shown.stdout and "whsec_" not in shown.stdout

    secret = run(server, "endpoints", "secret", made["id"])
    assert secret.returncode == 0
    first = secret.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    assert first.startswith("whsec_") and len(signing.secret_bytes(first)) == 32
    rotated = ok_json(server, "endpoints", "rotate-secret", made["id"])
    assert rotated["key"] != first and rotated["previousExpiresAt"]

    changed = ok_json(server, "endpoints", "update", made["id"], "--no-filter", "--max-in-flight", "3")
    assert changed["filter"] is None and changed["maxInFlight"] == 3
    nothing = run(server, "endpoints", "update", made["id"])
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    refused = run(server, "endpoints", "update", made["id"], "--target", "http://169.254.169.254/")
    assert refused.returncode == 1 and "422" in refused.stderr and "url" in refused.stderr

    preview = run(
        server, "endpoints", "test-transformation", made["id"], "--event-type", "invoice.paid",
        "--payload", '{"id": "inv_1"}', "--template", '{"ref": payload.id}',
    )  # fmt: skip
    assert preview.returncode == 0 and json.loads(preview.stdout) == {"ref": "inv_1"}

    disabled = run(server, "endpoints", "disable", made["id"], "--reason", "maintenance")
    assert disabled.returncode == 0 and "maintenance" in disabled.stdout
    assert ok_json(server, "endpoints", "enable", made["id"])["enabled"] is True

    email = ok_json(server, "endpoints", "create", "--channel", "EMAIL", "--email-to", "ops@example.com")
    assert email["url"] == "mailto:ops@example.com" and email["channelConfig"] == {"to": ["ops@example.com"]}

    deleted = run(server, "endpoints", "delete", made["id"])
    assert deleted.returncode == 0
    gone = run(server, "endpoints", "show", made["id"])
    assert gone.returncode == 1 and "404" in gone.stderr
