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
from interlink.runtime import Runtime
from tests.conftest import auth, make_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
MAX_EXAMPLES = 25


@dataclass
class Target:
    schema: Any
    headers: dict[str, str]
    real_ids: dict[str, str]


@pytest.fixture
def target(db_url: str, tmp_path: Path) -> Iterator[Target]:
    """The app on a fresh database; schemathesis runs its lifespan on its own event loop."""
    app_settings = make_settings(db_url, tmp_path / "data", run_worker=False)

    async def _bootstrap() -> BootstrapResult | None:
        runtime = Runtime(app_settings)
        try:
            return await bootstrap_if_empty(runtime)
        finally:
            await runtime.stop()

    created = asyncio.run(_bootstrap())
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
        assert key.status_code == 201, key.text
        assert secret.status_code == 201, secret.text
        real_ids = {
            "tenant_id": created.tenant_id,
            "key_id": key.json()["id"],
            "secret_id": secret.json()["id"],
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
        if not any(200 <= s < 300 for s in statuses):
            never_succeeded.append(f"{operation.label}: {sorted(statuses)}")
    assert not failures, "\n\n".join(failures)
    # The run reached the operations themselves, not just authentication or validation.
    assert not never_succeeded, never_succeeded
