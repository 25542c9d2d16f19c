"""Property-based run over the whole OpenAPI schema, shard 1: no 5xx, and every response matches
the schema (see tests/schema_conformance.py; shards 2.. are tests/test_schemathesis_<n>.py).

Every operation is called with generated valid and invalid data, authenticated with the platform
admin key, against a fresh database (SQLite and PostgreSQL): once with generated path parameters
(mostly unknown ids) and once, for operations on a single resource, with the id of a real one.
Every response must be declared (status, content type, headers) and match its schema.
"""

from __future__ import annotations

import pytest

from tests.schema_conformance import (
    Target,
    check_operation,
    check_shards_cover_the_schema,
    shard_operations,
    target,
)

__all__ = ["target"]

# Operations random data almost never satisfies. They still run under every check (no 5xx,
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
    # the real connection here is never authorized, so it is not checked (409, no network traffic);
    # generated check ids never name a real check: tests/test_connection_health.py
    "POST /v1/connections/{connection_id}/health-checks",
    "GET /v1/connections/{connection_id}/health-checks/{check_id}",
    # the real connection here has no OAuth2 token to refresh (409): tests/test_oauth.py
    "POST /v1/connections/{connection_id}/oauth/refresh",
    # records need a connection whose provider a connector serves, on a reachable host:
    # tests/test_connector_records.py
    "GET /v1/connections/{connection_id}/resources/{resource}",
    "POST /v1/connections/{connection_id}/resources/{resource}",
    "GET /v1/connections/{connection_id}/resources/{resource}/{record_id}",
    "PATCH /v1/connections/{connection_id}/resources/{resource}/{record_id}",
    "DELETE /v1/connections/{connection_id}/resources/{resource}/{record_id}",
    # calls the provider through a connection; the real connection here is never authorized (409,
    # no network traffic): tests/test_connection_proxy.py, tests/test_connection_proxy_fast_path.py
    "POST /v1/connections/{connection_id}/proxy",
    # the same in the passthrough form: tests/test_connection_passthrough.py
    "GET /v1/connections/{connection_id}/proxy/{path}",
    "HEAD /v1/connections/{connection_id}/proxy/{path}",
    "OPTIONS /v1/connections/{connection_id}/proxy/{path}",
    "POST /v1/connections/{connection_id}/proxy/{path}",
    "PUT /v1/connections/{connection_id}/proxy/{path}",
    "PATCH /v1/connections/{connection_id}/proxy/{path}",
    "DELETE /v1/connections/{connection_id}/proxy/{path}",
}


@pytest.mark.parametrize("operation", shard_operations(1))
def test_operation_conforms_to_the_schema(target: Target, operation: str) -> None:
    check_operation(target, operation, SUCCESS_COVERED_ELSEWHERE)


def test_the_shards_cover_every_operation_the_app_serves(target: Target) -> None:
    check_shards_cover_the_schema(target, SUCCESS_COVERED_ELSEWHERE)
