"""Property-based run over the whole OpenAPI schema: no 5xx, and every response matches the schema.

Every operation is called with generated valid and invalid data, authenticated with the platform
admin key, against a fresh database (SQLite and PostgreSQL): once with generated path parameters
(mostly unknown ids) and once, for operations on a single resource, with the id of a real one.
Every response must be declared (status, content type, headers) and match its schema.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from interlink.bootstrap import BootstrapResult, bootstrap_if_empty
from interlink.http.app import create_app
from interlink.outbound.config import ApiClientConfig, RetryPolicy
from interlink.outbound.response import OutboundError
from interlink.runtime import Runtime
from tests.conftest import auth, make_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MAX_EXAMPLES = 12  # per operation and mode; ~90 operations on two databases


@dataclass
class Target:
    schema: Any
    headers: dict[str, str]
    real_ids: dict[str, str]


@pytest.fixture
def target(db_url: str, tmp_path: Path) -> Iterator[Target]:
    """The app on a fresh database; schemathesis runs its lifespan on its own event loop."""
    # Loopback targets are allowed so that generated endpoints on 127.0.0.1 can be created.
    app_settings = make_settings(
        db_url, tmp_path / "data", run_worker=False, allowed_target_networks=["127.0.0.0/8"]
    )

    async def _bootstrap() -> tuple[BootstrapResult | None, str]:
        runtime = Runtime(app_settings)
        try:
            result = await bootstrap_if_empty(runtime)
            assert result is not None and runtime.outbound.log is not None
            # An outbound call of the tenant, logged (no route makes one; the client does): nothing
            # listens on port 1 of loopback, so it fails with a connect error.
            client = runtime.outbound.client(
                ApiClientConfig(
                    tenant_id=result.tenant_id,
                    base_url="http://127.0.0.1:1",
                    retry=RetryPolicy(max_attempts=1),
                )
            )
            with pytest.raises(OutboundError) as refused:
                await client.call("GET", "/target")
            await runtime.outbound.log.flush()
            assert refused.value.request_id is not None
            return result, refused.value.request_id
        finally:
            await runtime.stop()

    created, api_request_id = asyncio.run(_bootstrap())
    assert created is not None
    headers = auth(created.key)
    app = create_app(app_settings, access_log=False)
    try:
        with schemathesis_asgi.get_client(app) as client:
            key = client.post("/v1/keys", json={"name": "target", "scopes": ["keys:read"]}, headers=headers)
            secret = client.post(
                "/v1/secrets",
                json={"name": "target", "value": "s3cret-value", "tokenType": "GENERIC"},
                headers=headers,
            )
            event_type = client.post(
                "/v1/event-types", json={"name": "invoice.paid", "description": "target"}, headers=headers
            )
            endpoint = client.post(
                "/v1/endpoints",
                json={"url": "http://127.0.0.1:9/hook", "description": "target"},
                headers=headers,
            )
            event = client.post(
                "/v1/events", json={"type": "invoice.paid", "payload": {"id": 1}}, headers=headers
            )
            deliveries = client.get("/v1/deliveries", headers=headers)
            replay = client.post(
                "/v1/replays", json={"requestId": "target", "eventId": event.json()["id"]}, headers=headers
            )
            inbound_source = client.post(
                "/v1/inbound-sources", json={"name": "target", "scheme": "github"}, headers=headers
            )
            connection = client.post(
                "/v1/connections",
                json={"providerKey": "github", "name": "target", "credentials": {"clientId": "target"}},
                headers=headers,
            )
        for response in (key, secret, event_type, endpoint, event, replay, inbound_source, connection):
            assert response.status_code == 201, response.text
        assert deliveries.status_code == 200 and deliveries.json()["data"], deliveries.text
        real_ids = {
            "tenant_id": created.tenant_id,
            "key_id": key.json()["id"],
            "secret_id": secret.json()["id"],
            "event_type_id": event_type.json()["id"],
            "endpoint_id": endpoint.json()["id"],
            "event_id": event.json()["id"],
            "delivery_id": deliveries.json()["data"][0]["id"],
            "replay_id": replay.json()["id"],
            "source_id": inbound_source.json()["id"],
            "connection_id": connection.json()["id"],
            "request_id": api_request_id,
            "key": "stripe",  # GET /v1/providers/{key}: a provider of the shipped catalogue
        }
        yield Target(schemathesis.openapi.from_asgi("/openapi.json", app), headers, real_ids)
    finally:
        schemathesis_asgi.shutdown_lifespans()


def _run(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    path_parameters: dict[str, str],
    statuses: set[int],
) -> None:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        statuses.add(response.status_code)

    run()


# Operations random data almost never satisfies. They still run under every check above (no 5xx,
# schema conformance); only "reached a 2xx at least once" is waived, and a dedicated test covers
# their success path.
SUCCESS_COVERED_ELSEWHERE = {
    # generated URLs do not resolve to an allowed network: tests/test_webhook_endpoints.py
    "POST /v1/endpoints",
    # generated templates are hardly ever valid JSONata: tests/test_webhook_endpoints.py
    "POST /v1/endpoints/{endpoint_id}/transformation/test",
    # generated ids never name a real delivery, event or endpoint: tests/test_webhook_replay.py
    "POST /v1/replays",
    # generated requests carry no provider signature: tests/test_inbound_webhooks.py
    "POST /v1/inbound/{source_id}",
    # generated provider keys are hardly ever in the catalogue: tests/test_connections.py
    "POST /v1/connections",
    "POST /v1/connections/validate",
    # generated states are never signed by the server: tests/test_oauth.py
    "GET /v1/oauth/callback",
}


def test_every_operation_conforms_to_the_schema(target: Target) -> None:
    failures: list[str] = []
    never_succeeded: list[str] = []
    # Deletions last, so the other operations still find the real resources.
    operations = sorted(
        (result.ok() for result in target.schema.get_all_operations()),
        key=lambda op: op.method.upper() == "DELETE",
    )
    assert len(operations) >= 10
    for operation in operations:
        names = {p.name for p in operation.path_parameters}
        variants: list[dict[str, str]] = [{}]
        if names and names <= set(target.real_ids):
            variants.append({name: target.real_ids[name] for name in names})
        has_inputs = bool(operation.body) or any(True for _ in operation.iter_parameters())
        modes = (
            [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if has_inputs else [GenerationMode.POSITIVE]
        )
        statuses: set[int] = set()
        for path_parameters in variants:
            for mode in modes:
                try:
                    _run(operation, mode, target.headers, path_parameters, statuses)
                except (Exception, BaseExceptionGroup) as exc:
                    label = f"{operation.label} [{mode.value}, {path_parameters or 'generated ids'}]"
                    failures.append(f"{label}:\n{exc}")
        if not any(200 <= s < 300 for s in statuses) and operation.label not in SUCCESS_COVERED_ELSEWHERE:
            never_succeeded.append(f"{operation.label}: {sorted(statuses)}")
    assert not failures, "\n\n".join(failures)
    # The run reached the operations themselves, not just authentication or validation.
    assert not never_succeeded, never_succeeded
