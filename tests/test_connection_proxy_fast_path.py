"""The proxy's direct route (``interlink.http.proxy_path``) and the per-call connection read.

Calls go through the whole app (``create_app``: the direct route answers valid JSON bodies) to a real
provider stand-in on 127.0.0.1. A change of the connection (status, credentials) applies to the
very next call even though the process caches its credential plan.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from pydantic_core import to_json

from interlink.connections.connection_schemas import ProxyAnswer
from interlink.core.models import AuditEvent
from interlink.core.settings import Settings
from interlink.http.direct import DirectResponse
from interlink.http.proxy_path import answer_response, connection_id_of
from interlink.runtime import Runtime
from tests.api_helpers import assert_problem
from tests.conftest import make_settings
from tests.echo_api import EchoApi, echo_api_fixture  # noqa: F401  (fixture)
from tests.test_connection_proxy import _connect, _providers, _proxy


@pytest.fixture
def settings(db_url: str, tmp_path: Path, echo_api: EchoApi) -> Settings:
    return make_settings(
        db_url,
        tmp_path / "data",
        providers_file=_providers(tmp_path, echo_api, "http://127.0.0.1:9/token"),
        allowed_target_networks=["127.0.0.0/8"],
    )


def test_only_proxy_paths_are_taken() -> None:
    assert connection_id_of("/v1/connections/conn_1/proxy") == "conn_1"
    for path in (
        "/v1/connections/proxy",
        "/v1/connections//proxy",
        "/v1/connections/a/b/proxy",
        "/v1/connections/conn_1/metrics",
        "/v1/connections/" + "x" * 65 + "/proxy",
    ):
        assert connection_id_of(path) is None, path


async def test_the_direct_route_answers_what_the_route_response_sends() -> None:
    """The direct route's answer (``DirectResponse.json``) and ``answer_response`` (FastAPI route)
    carry the same status, headers and bytes, rate-limit headers included."""
    answer = {"status": 200, "ok": True, "data": {"name": "Zoë", "n": [1, 2.5, None]}, "headers": {}}
    rate = {"RateLimit-Limit": "100", "RateLimit-Remaining": "99", "RateLimit-Reset": "7"}
    for headers in (rate, {}):
        direct = DirectResponse.json(to_json(answer), headers)
        routed = answer_response(answer, headers or None)
        assert direct.status == routed.status_code == 200
        assert direct.body == routed.body
        sent = [*direct.headers, (b"content-length", str(len(direct.body)).encode())]
        assert sorted(sent) == sorted(routed.raw_headers)
        assert (b"ratelimit-remaining", b"99") in direct.headers or not headers


async def test_status_change_applies_to_the_very_next_call(
    client: httpx.AsyncClient, admin_headers: dict[str, str], echo_api: EchoApi
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    for _ in range(3):  # the credential plan is built once and then reused
        ok = await _proxy(client, admin_headers, conn, path="/echo/a")
        assert ok.status_code == 200 and ok.json()["status"] == 200, ok.text
    patch = await client.patch(f"/v1/connections/{conn}", json={"status": "DISABLED"}, headers=admin_headers)
    assert patch.status_code == 200, patch.text
    before = echo_api.requests
    refused = assert_problem(await _proxy(client, admin_headers, conn, path="/echo/a"), 409)
    assert refused["connectionStatus"] == "DISABLED"
    assert echo_api.requests == before
    patch = await client.patch(f"/v1/connections/{conn}", json={"status": "ACTIVE"}, headers=admin_headers)
    assert patch.status_code == 200, patch.text
    again = await _proxy(client, admin_headers, conn, path="/echo/a")
    assert again.status_code == 200 and again.json()["status"] == 200, again.text


async def test_new_credentials_are_used_by_the_very_next_call(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "BEARER", {"token": "first-token"})
    for _ in range(2):
        seen = (await _proxy(client, admin_headers, conn, path="/echo/x")).json()["data"]
        assert seen["headers"]["authorization"] == "Bearer first-token"
    patch = await client.patch(
        f"/v1/connections/{conn}", json={"credentials": {"token": "second-token"}}, headers=admin_headers
    )
    assert patch.status_code == 200, patch.text
    seen = (await _proxy(client, admin_headers, conn, path="/echo/x")).json()["data"]
    assert seen["headers"]["authorization"] == "Bearer second-token"


async def test_the_fast_path_answers_the_documented_model(
    client: httpx.AsyncClient, admin_headers: dict[str, str]
) -> None:
    """A JSON body is answered by the fast path with exactly the fields of ``ProxyAnswer``; anything
    else goes to the FastAPI route and its problems."""
    conn = await _connect(client, admin_headers, "echo-header", "NONE")
    url = f"/v1/connections/{conn}/proxy"
    body = b'{"path": "/echo/same", "query": {"a": 1}}'
    fast = await client.post(url, content=body, headers={**admin_headers, "Content-Type": "application/json"})
    assert fast.status_code == 200, fast.text
    answer = fast.json()
    assert ProxyAnswer.model_validate(answer).model_dump(mode="json", by_alias=True) == answer
    assert answer["data"]["query"] == {"a": ["1"]}
    routed = await client.post(url, content=body, headers={**admin_headers, "Content-Type": "text/plain"})
    assert_problem(routed, 422)
    assert_problem(await client.post(url, content=body, headers={"Content-Type": "application/json"}), 401)
    assert_problem(await _proxy(client, admin_headers, "conn_missing", path="/echo"), 404)


async def test_a_burst_of_first_calls_reads_the_credentials_once(
    client: httpx.AsyncClient, admin_headers: dict[str, str], runtime: Runtime
) -> None:
    conn = await _connect(client, admin_headers, "echo-header", "BEARER", {"token": "burst-token"})
    answers = await asyncio.gather(*(_proxy(client, admin_headers, conn, path="/echo/b") for _ in range(16)))
    assert all(a.status_code == 200 and a.json()["status"] == 200 for a in answers)
    assert {a.json()["data"]["headers"]["authorization"] for a in answers} == {"Bearer burst-token"}
    async with runtime.db.unit_of_work(write=False) as session:
        reads = await session.scalar(
            sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "secret.accessed")
        )
    assert reads == 1
