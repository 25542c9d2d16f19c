"""The local stand-ins for external systems answer (one smoke test each, over plain HTTP)."""

from __future__ import annotations

import httpx

from tests.external import (  # noqa: F401  (the fixtures)
    JsonServer,
    LocalStripe,
    OAuth2MockServer,
    json_server_fixture,
    localstripe_fixture,
    oauth2_server_fixture,
)


async def test_json_server_lists_customers_with_link_pagination(json_server: JsonServer) -> None:
    json_server.reset()
    async with httpx.AsyncClient(base_url=json_server.url, trust_env=False) as client:
        everyone = await client.get("/customers")
        page = await client.get("/customers", params={"_page": 2, "_limit": 3})
        recent = await client.get("/invoices", params={"updatedAt_gte": "2026-01-16", "_sort": "id"})
    assert everyone.status_code == 200
    assert [c["id"] for c in everyone.json()] == [c["id"] for c in json_server.seed["customers"]]
    assert [c["id"] for c in page.json()] == [4, 5, 6]
    assert page.headers["x-total-count"] == str(len(json_server.seed["customers"]))
    assert 'rel="next"' in page.headers["link"]
    assert {i["number"] for i in recent.json()} == {"INV-0004", "INV-0007", "INV-0009", "INV-0011"}
    assert json_server.stats()["byRoute"]["GET /customers"] == 2


async def test_json_server_faults_and_reset(json_server: JsonServer) -> None:
    json_server.reset()
    json_server.inject({"method": "GET", "path": "/invoices", "status": 429, "retryAfter": 2})
    async with httpx.AsyncClient(base_url=json_server.url, trust_env=False) as client:
        limited = await client.get("/invoices")
        again = await client.get("/invoices")
        created = await client.post("/customers", json={"name": "Test", "updatedAt": "2026-02-01T00:00:00Z"})
        json_server.reset()
        after_reset = await client.get(f"/customers/{created.json()['id']}")
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "2")
    assert again.status_code == 200
    assert created.status_code == 201
    assert after_reset.status_code == 404


async def test_oauth2_server_issues_client_credentials_tokens(oauth2_server: OAuth2MockServer) -> None:
    oauth2_server.reset()
    oauth2_server.configure(expires_in=5, clients={"interlink": "s3cret"})
    async with httpx.AsyncClient(trust_env=False) as client:
        token = await client.post(
            oauth2_server.token_url,
            data={"grant_type": "client_credentials", "scope": "read"},
            auth=("interlink", "s3cret"),
        )
        refused = await client.post(
            oauth2_server.token_url,
            data={"grant_type": "client_credentials", "client_id": "interlink", "client_secret": "wrong"},
        )
        discovery = await client.get(f"{oauth2_server.url}/.well-known/openid-configuration")
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 5
    assert body["access_token"].count(".") == 2  # a signed JWT
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert discovery.json()["token_endpoint"] == oauth2_server.token_url
    state = oauth2_server.state()
    assert state["tokenRequests"] == 2
    assert state["tokensIssued"] == 1
    assert state["grants"] == {"client_credentials": 2}


async def test_oauth2_server_fails_on_request(oauth2_server: OAuth2MockServer) -> None:
    oauth2_server.reset()
    oauth2_server.configure(failures=[{"status": 400, "body": {"error": "invalid_grant"}}])
    async with httpx.AsyncClient(trust_env=False) as client:
        failed = await client.post(
            oauth2_server.token_url, data={"grant_type": "refresh_token", "refresh_token": "r1"}
        )
        refreshed = await client.post(
            oauth2_server.token_url, data={"grant_type": "refresh_token", "refresh_token": "r1"}
        )
    assert (failed.status_code, failed.json()) == (400, {"error": "invalid_grant"})
    assert refreshed.status_code == 200
    assert refreshed.json()["refresh_token"]
    assert oauth2_server.state()["tokenRequests"] == 2


async def test_localstripe_creates_and_lists_customers(localstripe: LocalStripe) -> None:
    localstripe.flush()
    auth = (localstripe.api_key, "")
    async with httpx.AsyncClient(base_url=localstripe.url, auth=auth, trust_env=False) as client:
        created = await client.post("/v1/customers", data={"email": "ada@example.com", "name": "Ada"})
        listed = await client.get("/v1/customers", params={"limit": 10})
        fetched = await client.get(f"/v1/customers/{created.json()['id']}")
    assert created.status_code == 200, created.text
    customer = created.json()
    assert customer["object"] == "customer"
    assert customer["id"].startswith("cus_")
    assert [c["id"] for c in listed.json()["data"]] == [customer["id"]]
    assert fetched.json()["email"] == "ada@example.com"
