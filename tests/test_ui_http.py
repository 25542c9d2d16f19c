"""The dashboard over plain HTTP: sessions, CSRF, sign-out on revocation, tenant isolation, errors."""

from __future__ import annotations

import re

import httpx

from interlink.bootstrap import BootstrapResult
from interlink.http.app import create_app
from interlink.runtime import Runtime
from tests.conftest import auth

TOKEN_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def csrf_from(html: str) -> str:
    match = TOKEN_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign in through the form; returns the CSRF token of the landing page."""
    login = await client.get("/ui/login")
    assert login.status_code == 200
    done = await client.post("/ui/login", data={"api_key": key, "csrf_token": csrf_from(login.text)})
    assert done.status_code == 303, done.text
    landing = await client.get(done.headers["location"])
    assert landing.status_code == 200, landing.text
    return csrf_from(landing.text)


async def create_key(
    client: httpx.AsyncClient, key: str, scopes: list[str], tenant: str | None = None
) -> dict:  # type: ignore[type-arg]
    made = await client.post(
        "/v1/keys", json={"name": "ui-test", "scopes": scopes}, headers=auth(key, tenant)
    )
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


async def api_keys(client: httpx.AsyncClient, key: str) -> list[str]:
    listed = await client.get("/v1/keys", headers=auth(key))
    assert listed.status_code == 200
    return [k["name"] for k in listed.json()["data"]]


async def test_pages_need_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/ui", "/ui/keys", "/ui/audit", "/ui/security", "/ui/keys/new"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/ui/login?reason=missing"


async def test_sign_in_sets_a_strict_http_only_cookie(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    login = await client.get("/ui/login")
    assert "Content-Security-Policy" in login.headers
    assert login.headers["x-frame-options"] == "DENY"
    done = await client.post("/ui/login", data={"api_key": admin.key, "csrf_token": csrf_from(login.text)})
    assert done.status_code == 303
    cookies = [c for c in done.headers.get_list("set-cookie") if c.startswith("interlink_session=")]
    assert len(cookies) == 1
    flags = cookies[0].lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/ui" in flags
    assert "secure" not in flags  # plain http here
    overview = await client.get("/ui")
    assert overview.status_code == 200
    assert admin.tenant_id in overview.text
    assert admin.key not in overview.text
    assert overview.headers["cache-control"] == "no-store"


async def test_cookie_is_secure_over_https(app, admin: BootstrapResult) -> None:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://interlink.test") as client:
        login = await client.get("/ui/login")
        done = await client.post(
            "/ui/login", data={"api_key": admin.key, "csrf_token": csrf_from(login.text)}
        )
        assert done.status_code == 303
        session = next(c for c in done.headers.get_list("set-cookie") if c.startswith("interlink_session="))
        assert "secure" in session.lower()


def test_cookie_is_secure_behind_a_tls_proxy(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    """TLS ended at a proxy: the request arrives as plain http, but the public URL says https."""
    from starlette.requests import Request

    from interlink.ui.session import is_secure

    scope = {"type": "http", "scheme": "http", "path": "/ui", "headers": [], "query_string": b"", "app": app}
    assert is_secure(Request(scope)) is False
    runtime.settings.public_url = "https://interlink.example"
    assert is_secure(Request(scope)) is True


async def test_sign_in_without_csrf_token_is_refused(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    await client.get("/ui/login")  # has a CSRF cookie now
    refused = await client.post("/ui/login", data={"api_key": admin.key})
    assert refused.status_code == 403
    assert "text/html" in refused.headers["content-type"]
    assert "expired or did not come from this dashboard" in refused.text
    assert not any(c.startswith("interlink_session=") for c in refused.headers.get_list("set-cookie"))


async def test_form_posts_without_a_valid_token_change_nothing(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    token = await sign_in(client, admin.key)
    body = {"name": "sneaky", "scopes": "keys:read"}
    assert (await client.post("/ui/keys", data=body)).status_code == 403
    assert (await client.post("/ui/keys", data={**body, "csrf_token": "0" * 64})).status_code == 403
    # a token from another browser (other nonce cookie) does not fit this browser's cookie
    other = httpx.AsyncClient(transport=client._transport, base_url="http://interlink.test")
    async with other:
        foreign = csrf_from((await other.get("/ui/login")).text)
    assert (await client.post("/ui/keys", data={**body, "csrf_token": foreign})).status_code == 403
    assert (await client.post("/ui/keys", json={**body, "csrf_token": token})).status_code == 415
    assert "sneaky" not in await api_keys(client, admin.key)

    made = await client.post("/ui/keys", data={**body, "csrf_token": token})
    assert made.status_code == 201
    assert "sneaky" in await api_keys(client, admin.key)


async def test_created_key_is_shown_once_and_works(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    token = await sign_in(client, admin.key)
    made = await client.post(
        "/ui/keys", data={"name": "deployer", "scopes": ["keys:read", "audit:read"], "csrf_token": token}
    )
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    plaintext = re.search(r'id="new-key" type="text" readonly value="(il_[A-Za-z0-9_]+)"', made.text)
    assert plaintext
    key = plaintext.group(1)
    assert (await client.get("/v1/keys", headers=auth(key))).status_code == 200
    key_id = re.search(r'href="/ui/keys/(key_[A-Za-z0-9]+)">View key', made.text)
    assert key_id
    for path in ("/ui/keys", f"/ui/keys/{key_id.group(1)}", "/ui/audit", "/ui"):
        page = await client.get(path)
        assert page.status_code == 200
        assert key not in page.text, path


async def test_create_form_errors_name_the_field(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    token = await sign_in(client, admin.key)
    missing = await client.post("/ui/keys", data={"name": "", "csrf_token": token})
    assert missing.status_code == 422
    assert "Enter a name." in missing.text and "Choose at least one scope." in missing.text
    past = await client.post(
        "/ui/keys",
        data={"name": "old", "scopes": "keys:read", "expires_on": "2001-01-01", "csrf_token": token},
    )
    assert past.status_code == 422
    assert "expiresAt must be in the future" in past.text
    bad_scope = await client.post("/ui/keys", data={"name": "x", "scopes": "root", "csrf_token": token})
    assert bad_scope.status_code == 422
    assert "unknown scope" in bad_scope.text


async def test_revoked_key_is_signed_out_at_once(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    made = await create_key(client, admin.key, ["keys:read", "keys:write", "tenants:read", "audit:read"])
    await sign_in(client, made["key"])
    assert (await client.get("/ui/keys")).status_code == 200
    revoked = await client.post(
        f"/v1/keys/{made['id']}/revoke", json={"reason": "test"}, headers=auth(admin.key)
    )
    assert revoked.status_code == 200
    response = await client.get("/ui/keys")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?reason=revoked"
    assert any(c.startswith('interlink_session=""') for c in response.headers.get_list("set-cookie"))
    login = await client.get(response.headers["location"])
    assert "revoked" in login.text


async def test_revoke_and_rotate_through_forms(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    target = await create_key(client, admin.key, ["keys:read"])
    token = await sign_in(client, admin.key)
    rotated = await client.post(
        f"/ui/keys/{target['id']}/rotate", data={"grace_period_seconds": "3600", "csrf_token": token}
    )
    assert rotated.status_code == 201
    assert "Key rotated" in rotated.text
    detail = await client.get(f"/ui/keys/{target['id']}")
    assert '<dd id="key-status">rotating</dd>' in detail.text
    # the rotated key is still in its grace period, then revoke it with a reason
    revoked = await client.post(
        f"/ui/keys/{target['id']}/revoke", data={"reason": "leaked in a log", "csrf_token": token}
    )
    assert revoked.status_code == 303
    detail = await client.get(revoked.headers["location"])
    assert '<dd id="key-status">revoked</dd>' in detail.text
    assert "leaked in a log" in detail.text
    shown = await client.get(f"/v1/keys/{target['id']}", headers=auth(admin.key))
    assert shown.json()["status"] == "REVOKED"
    # rotating a revoked key is a conflict, rendered on the key's page
    again = await client.post(f"/ui/keys/{target['id']}/rotate", data={"csrf_token": token})
    assert again.status_code == 409
    assert "only active keys can be rotated" in again.text
    # a key cannot revoke itself
    own = await client.post(f"/ui/keys/{admin.key_id}/revoke", data={"csrf_token": token})
    assert own.status_code == 409
    assert "cannot revoke itself" in own.text


async def test_errors_render_as_pages(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    await sign_in(client, admin.key)
    cases = {
        "/ui/security?minRisk=abc": (422, "minRisk must be a whole number"),
        "/ui/security?minRisk=101": (422, "minRisk must be between 0 and 100"),
        "/ui/security?eventType=nope": (422, "unknown event type"),
        "/ui/audit?after=not-an-id": (422, "after must be an id"),
        "/ui/keys?status=sleeping": (422, "unknown status"),
        "/ui/keys/key_0000000000000000000000": (404, "not found"),
    }
    for path, (status, text) in cases.items():
        response = await client.get(path)
        assert response.status_code == status, path
        assert "text/html" in response.headers["content-type"]
        assert text in response.text, path
        assert "Traceback" not in response.text


async def test_tenant_key_sees_only_its_tenant(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    other_id = other.json()["id"]
    await create_key(client, admin.key, ["keys:read"], tenant=other_id)
    mine = await create_key(client, admin.key, ["keys:read", "keys:write", "tenants:read", "audit:read"])
    token = await sign_in(client, mine["key"])

    keys_page = await client.get("/ui/keys")
    assert keys_page.status_code == 200
    assert mine["id"] in keys_page.text
    assert admin.key_id not in keys_page.text  # the platform key is hidden from tenant keys
    assert 'id="tenant-switch"' not in keys_page.text
    assert (await client.get(f"/ui/keys/{admin.key_id}")).status_code == 404

    switched = await client.post(
        "/ui/tenant", data={"tenant_id": other_id, "next": "/ui/keys", "csrf_token": token}
    )
    assert switched.status_code == 404
    assert not any(c.startswith("interlink_tenant=ten_") for c in switched.headers.get_list("set-cookie"))

    # a forged selection cookie is refused the same way, and dropped
    client.cookies.set("interlink_tenant", other_id, domain="interlink.test", path="/ui")
    forged = await client.get("/ui/keys")
    assert forged.status_code == 404
    assert any(c.startswith('interlink_tenant=""') for c in forged.headers.get_list("set-cookie"))
    assert "interlink_tenant" not in client.cookies  # the browser dropped it
    assert (await client.get("/ui/keys")).status_code == 200


async def test_platform_key_switches_tenant_and_is_audited(
    client: httpx.AsyncClient, admin: BootstrapResult
) -> None:
    other = await client.post("/v1/tenants", json={"name": "Other Co"}, headers=auth(admin.key))
    other_id = other.json()["id"]
    theirs = await create_key(client, admin.key, ["keys:read"], tenant=other_id)
    token = await sign_in(client, admin.key)

    home = await client.get("/ui/keys")
    assert 'id="tenant-switch"' in home.text
    assert theirs["id"] not in home.text
    switched = await client.post(
        "/ui/tenant", data={"tenant_id": other_id, "next": "/ui/keys", "csrf_token": token}
    )
    assert switched.status_code == 303
    assert switched.headers["location"] == "/ui/keys"
    keys_page = await client.get("/ui/keys")
    assert theirs["id"] in keys_page.text
    assert admin.key_id not in keys_page.text
    assert "Acting for tenant" in keys_page.text

    trail = await client.get(
        "/v1/audit-events", params={"action": "platform.accessed"}, headers=auth(admin.key, other_id)
    )
    events = trail.json()["data"]
    assert any(
        e["resourceId"] == "/ui/keys"
        and e["actorKeyId"] == admin.key_id
        and e["actorTenantId"] == admin.tenant_id
        for e in events
    )
    unknown = await client.post(
        "/ui/tenant", data={"tenant_id": "ten_0000000000000000000000", "csrf_token": token}
    )
    assert unknown.status_code == 404

    back = await client.post(
        "/ui/tenant", data={"tenant_id": admin.tenant_id, "next": "/ui", "csrf_token": token}
    )
    assert back.status_code == 303
    assert admin.key_id in (await client.get("/ui/keys")).text


async def test_sign_out_clears_the_session(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    token = await sign_in(client, admin.key)
    assert (await client.post("/ui/logout", data={})).status_code == 403
    out = await client.post("/ui/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert out.headers["location"] == "/ui/login?reason=signed_out"
    assert (await client.get("/ui/keys")).status_code == 303


async def test_failed_sign_in_is_a_security_event(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    login = await client.get("/ui/login")
    bad = await client.post(
        "/ui/login", data={"api_key": "il_live_not-a-key", "csrf_token": csrf_from(login.text)}
    )
    assert bad.status_code == 401
    assert "not an Interlink API key" in bad.text
    events = await client.get(
        "/v1/security-events", params={"eventType": "auth.failed"}, headers=auth(admin.key)
    )
    assert events.json()["data"], "the failed sign-in left no security event"


async def test_static_assets_and_schema(client: httpx.AsyncClient, runtime: Runtime) -> None:
    css = await client.get("/ui/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = await client.get("/ui/static/app.js")
    assert js.status_code == 200 and "data-copy" in js.text
    assert (await client.get("/ui/static/../app.py")).status_code == 404
    assert (await client.get("/ui/static/nothing.css")).status_code == 404
    schema = create_app(runtime.settings, runtime, access_log=False).openapi()
    assert not [path for path in schema["paths"] if path.startswith("/ui")]


async def test_rate_limited_key_gets_a_429_page(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    made = await client.post(
        "/v1/keys",
        json={"name": "slow", "scopes": ["keys:read"], "rateLimit": {"limit": 1, "periodSeconds": 3600}},
        headers=auth(admin.key),
    )
    login = await client.get("/ui/login")
    done = await client.post(
        "/ui/login", data={"api_key": made.json()["key"], "csrf_token": csrf_from(login.text)}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/ui/keys"  # lands on the first page its scopes allow
    limited = await client.get("/ui/keys")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert "rate limit exceeded" in limited.text


async def test_audit_pages_keep_their_filters(client: httpx.AsyncClient, admin: BootstrapResult) -> None:
    for _ in range(3):
        await create_key(client, admin.key, ["keys:read"])
    await sign_in(client, admin.key)
    first = await client.get("/ui/audit", params={"action": "key.created", "limit": "2"})
    assert first.status_code == 200
    assert first.text.count("<code>key.created</code>") == 2
    next_link = re.search(r'<a href="(/ui/audit\?[^"]+)" rel="next">Next page</a>', first.text)
    assert next_link
    url = next_link.group(1).replace("&amp;", "&")
    assert "action=key.created" in url and "limit=2" in url and "after=aud_" in url
    second = await client.get(url)
    assert second.status_code == 200
    assert second.text.count("<code>key.created</code>") == 2  # two more: the admin key and one made here
    assert "First page" in second.text
    filtered = await client.get("/ui/audit", params={"resourceType": "tenant"})
    assert "<code>tenant.created</code>" in filtered.text
    assert "<code>key.created</code>" not in filtered.text


def test_the_audit_filter_offers_every_action_the_code_records() -> None:
    """Every audit action written anywhere (a literal in ``audit.record(...)`` or an ``*_ACTION``
    constant) can be picked in the dashboard's audit filter."""
    import re
    from pathlib import Path

    from interlink.http.routers.ui import KNOWN_ACTIONS

    arg = r"[^,()]+(?:\([^()]*\))?"
    literal = re.compile(rf'audit\.record\(\s*{arg},\s*{arg},\s*"([a-z_.]+)"')
    constant = re.compile(r'^[A-Z_]*ACTION: Final = "([a-z_.]+)"', re.MULTILINE)
    recorded: set[str] = set()
    for path in (Path(__file__).parents[1] / "src" / "interlink").rglob("*.py"):
        text = path.read_text()
        recorded |= set(literal.findall(text)) | set(constant.findall(text))
    assert {"key.created", "replay.created", "webhooks.retention.purged"} <= recorded  # the scan works
    assert sorted(recorded - set(KNOWN_ACTIONS)) == []
