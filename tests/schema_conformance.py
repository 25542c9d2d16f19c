"""Property-based run over the whole OpenAPI schema: no 5xx, and every response matches the schema.

Every operation is called with generated valid and invalid data, authenticated with the platform
admin key, against a fresh database (SQLite and PostgreSQL): once with generated path parameters
(mostly unknown ids) and once, for operations on a single resource, with the id of a real one.
Every response must be declared (status, content type, headers) and match its schema.

The operations are dealt over ``SHARDS`` test modules (``tests/test_schemathesis.py``, then
``tests/test_schemathesis_2.py`` ...; one test per operation and database) so that
``pytest -n 2 --dist loadfile`` runs them on every worker. An operation added to the API lands in a
shard by itself; ``tests/test_schemathesis.py`` (which also lists the operations whose success path
is waived here) checks that the shards together cover exactly the operations the running app
serves. Each shard module has its own database per backend with one real resource of each kind
(``target``), and runs its deletions last.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator, Set
from dataclasses import dataclass
from functools import cache
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
from tests.conftest import auth, fresh_module_database, make_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MAX_EXAMPLES = 12  # per operation and mode; ~90 operations on two databases
SHARDS = 4  # test modules: see shard_module
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _is_deletion(label: str) -> bool:
    return label.split(" ", 1)[0] == "DELETE"


@cache
def all_operation_labels() -> tuple[str, ...]:
    """Every operation of the app's OpenAPI document ("METHOD /path"), sorted, deletions last.

    Built at collection time from the app itself (no database is touched), so that every
    operation becomes a test of its own and new operations are picked up without editing a list.
    """
    with tempfile.TemporaryDirectory() as data_dir:
        app = create_app(
            make_settings("sqlite+aiosqlite:///:memory:", Path(data_dir), run_worker=False), access_log=False
        )
        document = app.openapi()
    labels = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    return tuple(sorted(labels, key=lambda label: (_is_deletion(label), label)))


def shard_module(shard: int) -> str:
    """The test module of shard ``shard``: test_schemathesis (1), test_schemathesis_2, ..."""
    return "test_schemathesis" if shard == 1 else f"test_schemathesis_{shard}"


def shard_operations(shard: int) -> list[str]:
    """The operations of shard ``shard`` (1-based): every ``SHARDS``-th one, deletions last."""
    assert 1 <= shard <= SHARDS
    return [label for i, label in enumerate(all_operation_labels()) if i % SHARDS == shard - 1]


@dataclass
class Target:
    schema: Any
    headers: dict[str, str]
    real_ids: dict[str, str]
    operations: dict[str, Any]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The app on a fresh database (one per module and backend) with one real resource of each
    kind; schemathesis runs its lifespan on its own event loop."""
    tmp_path = tmp_path_factory.mktemp("schema-target")
    db_url = fresh_module_database(request, str(request.param), tmp_path)
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
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = {op.label: op for op in (result.ok() for result in schema.get_all_operations())}
        yield Target(schema, headers, real_ids, operations)
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


def check_operation(target: Target, label: str, waived: Set[str]) -> None:
    """Run ``label`` in every mode (and with real ids where it takes them); no check may fail, and
    it must reach a 2xx at least once unless it is in ``waived`` (success covered elsewhere)."""
    assert label in target.operations, f"{label} is not served by the app: {sorted(target.operations)}"
    operation = target.operations[label]
    names = {p.name for p in operation.path_parameters}
    variants: list[dict[str, str]] = [{}]
    if names and names <= set(target.real_ids):
        variants.append({name: target.real_ids[name] for name in names})
    has_inputs = bool(operation.body) or any(True for _ in operation.iter_parameters())
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if has_inputs else [GenerationMode.POSITIVE]
    failures: list[str] = []
    statuses: set[int] = set()
    for path_parameters in variants:
        for mode in modes:
            try:
                _run(operation, mode, target.headers, path_parameters, statuses)
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{label} [{mode.value}, {path_parameters or 'generated ids'}]:\n{exc}")
    assert not failures, "\n\n".join(failures)
    # The run reached the operation itself, not just authentication or validation.
    if label not in waived:
        assert any(200 <= s < 300 for s in statuses), f"{label} never succeeded: {sorted(statuses)}"


def check_shards_cover_the_schema(target: Target, waived: Set[str]) -> None:
    """The shards' operations are exactly those the running app serves, each in one shard, and
    every waived operation exists."""
    served = set(target.operations)
    assert len(served) >= 10
    dealt = [label for shard in range(1, SHARDS + 1) for label in shard_operations(shard)]
    assert len(dealt) == len(set(dealt))
    assert set(dealt) == served
    assert served >= waived, sorted(waived - served)
    here = Path(__file__).resolve().parent
    shard_files = sorted(p.name for p in here.glob("test_schemathesis*.py"))
    assert shard_files == sorted(shard_module(n) + ".py" for n in range(1, SHARDS + 1))
