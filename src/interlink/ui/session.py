"""Browser session for the dashboard: cookies and CSRF tokens.

* The API key a user signs in with is kept in the ``interlink_session`` cookie (HttpOnly,
  SameSite=Strict, path ``/ui``, Secure over https). It is verified on every page exactly like an
  ``Authorization`` header, so a revoked key stops working at once.
* CSRF protection is a signed double-submit token: a random nonce in the ``interlink_csrf`` cookie,
  and in every form ``HMAC(k, nonce | session)`` where ``k`` is derived from the server pepper. A
  token is valid only with the nonce cookie it was made for and the session it was shown in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "interlink_session"
TENANT_COOKIE = "interlink_tenant"
CSRF_COOKIE = "interlink_csrf"
CSRF_FIELD = "csrf_token"
COOKIE_PATH = "/ui"


def csrf_key(pepper: bytes) -> bytes:
    """The key CSRF tokens are signed with, separated from every other use of the pepper."""
    return hmac.digest(pepper, b"interlink:ui:csrf:v1", hashlib.sha256)


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def csrf_token(key: bytes, nonce: str, session_value: str | None) -> str:
    """The token forms carry for this nonce and session."""
    message = f"{nonce}|{session_value or ''}".encode()
    return hmac.digest(key, message, hashlib.sha256).hex()


def csrf_valid(key: bytes, nonce: str | None, session_value: str | None, submitted: str | None) -> bool:
    """True when ``submitted`` was made for this nonce cookie and this session (constant time)."""
    if not nonce or not submitted:
        return False
    return hmac.compare_digest(csrf_token(key, nonce, session_value).encode(), submitted.encode())


def is_secure(request: Request) -> bool:
    """Mark cookies Secure when the request came over https, or when the service's public URL is
    https (TLS ended at a proxy in front: the request itself then arrives as plain http)."""
    if request.url.scheme == "https":
        return True
    runtime = getattr(request.app.state, "runtime", None)
    public_url = runtime.settings.public_url if runtime is not None else ""
    return public_url.lower().startswith("https://")


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    """An HttpOnly, SameSite=Strict cookie for ``/ui`` that lasts as long as the browser session."""
    response.set_cookie(
        name, value, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_secure(request)
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_secure(request)
    )
