"""OAuth2 authorization code with PKCE (S256): the connect URL and the callback.

* :meth:`Authorizer.authorize_url` builds the provider's authorize URL for an
  ``OAUTH2_AUTHORIZATION_CODE`` connection: ``client_id``, ``redirect_uri``
  (``<INTERLINK_PUBLIC_URL>/v1/oauth/callback``), scopes, the provider's extra parameters, a
  ``code_challenge`` and a signed ``state``.
* ``state`` is ``<payload>.<mac>``: the payload (base64url JSON) carries the tenant, the connection,
  a random nonce, the expiry (:data:`STATE_TTL`) and the connection's ``token_version`` when the URL
  was made; the MAC is HMAC-SHA256 under a key derived from
  the server's key pepper (``INTERLINK_KEY_PEPPER``, the same secret that keys API-key hashes), so
  a state cannot be forged or altered. The PKCE verifier is never in the URL and never stored: it
  is derived from the nonce with a second key derived from the same pepper, so only the server can
  compute it when the callback brings the state back. Several authorize URLs of one connection may
  be open at once; the first to come back wins. A state works once: the callback, under the
  connection's row lock, refuses a state whose ``token_version`` is older than the connection's
  (a reload of the callback, or another URL of the connection completed or a token was obtained
  since) with a 400 problem ``invalid-oauth-state``, reason ``replayed``, before anything is sent
  to the provider or recorded on the connection.
* :meth:`Authorizer.callback` verifies the state (forged, altered, expired or replayed → 400
  problem ``invalid-oauth-state``), reports a provider ``error``/``error_description`` as a 400
  problem ``oauth-authorization-failed`` (recorded as the connection's ``lastError``, control
  characters replaced by ``?``), exchanges the code
  with the ``code_verifier`` at the token endpoint (a refusal is a 400 problem naming the provider's
  error; an unreachable endpoint a 502), stores the tokens as IntegrationSecret rows and makes the
  connection ``ACTIVE``. No outcome is a 500.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from interlink.connections.models import IntegrationConnection
from interlink.connections.oauth import TokenRequestFailed, Tokens, request_token, token_endpoints
from interlink.connections.service import render
from interlink.core import audit
from interlink.core.actor import Actor, system_actor
from interlink.core.clock import utcnow
from interlink.core.enums import AuthenticationType, IntegrationConnectionStatus
from interlink.core.errors import Conflict, InterlinkError, NotFound, ValidationFailed
from interlink.core.text import CONTROL_CHARACTERS

STATE_TTL: Final = timedelta(minutes=10)
CALLBACK_PATH: Final = "/v1/oauth/callback"
_STATE_LABEL: Final = b"interlink.oauth.state.v1"
_VERIFIER_LABEL: Final = b"interlink.oauth.pkce.v1"
MAX_STATE_CHARS: Final = 2048


class InvalidOAuthState(InterlinkError):
    status = 400
    code = "invalid-oauth-state"
    title = "Invalid OAuth state"


class OAuthAuthorizationFailed(InterlinkError):
    status = 400
    code = "oauth-authorization-failed"
    title = "OAuth authorization failed"


class OAuthProviderUnreachable(InterlinkError):
    status = 502
    code = "oauth-provider-unreachable"
    title = "OAuth provider unreachable"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class State:
    tenant_id: str
    connection_id: str
    nonce: str
    expires_at: datetime
    return_to: str | None = None
    """A path on this server to send the user back to after the callback (signed with the rest)."""
    token_version: int | None = None
    """The connection's ``token_version`` when the state was made (None in states made without it)."""


MAX_RETURN_TO_CHARS = 500


def check_return_to(value: str | None) -> str | None:
    """A local path (``/ui/...``) the callback may redirect to; anything that could leave this
    server (a scheme, ``//host``, backslashes, control characters) is a 422 on ``returnTo``."""
    if value is None:
        return None
    ok = (
        0 < len(value) <= MAX_RETURN_TO_CHARS
        and value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and "\\" not in value
        and not any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value)
        and "#" not in value
    )
    if not ok:
        raise ValidationFailed(
            "returnTo must be a path on this server starting with / (no scheme, host or fragment)",
            field="returnTo",
        )
    return value


class StateSigner:
    """Signs and verifies ``state`` and derives PKCE verifiers (keys derived from the pepper)."""

    def __init__(self, pepper: bytes) -> None:
        self._state_key = hmac.digest(pepper, _STATE_LABEL, hashlib.sha256)
        self._verifier_key = hmac.digest(pepper, _VERIFIER_LABEL, hashlib.sha256)

    def sign(
        self,
        tenant_id: str,
        connection_id: str,
        now: datetime,
        return_to: str | None = None,
        token_version: int | None = None,
    ) -> tuple[str, State]:
        nonce = _b64(os.urandom(18))
        expires = now + STATE_TTL
        payload: dict[str, str | int] = {
            "t": tenant_id,
            "c": connection_id,
            "n": nonce,
            "e": int(expires.timestamp()),
        }
        if return_to is not None:
            payload["r"] = return_to
        if token_version is not None:
            payload["v"] = token_version
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        mac = _b64(hmac.digest(self._state_key, body.encode(), hashlib.sha256))
        return f"{body}.{mac}", State(tenant_id, connection_id, nonce, expires, return_to, token_version)

    def verify(self, token: str, now: datetime) -> State:
        if not token or len(token) > MAX_STATE_CHARS or token.count(".") != 1:
            raise InvalidOAuthState("state is missing or malformed", extra={"reason": "malformed"})
        body, mac = token.split(".")
        expected = _b64(hmac.digest(self._state_key, body.encode(), hashlib.sha256))
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            raise InvalidOAuthState("state signature does not match", extra={"reason": "forged"})
        try:
            payload = json.loads(_unb64(body))
            state = State(
                str(payload["t"]),
                str(payload["c"]),
                str(payload["n"]),
                datetime.fromtimestamp(int(payload["e"]), UTC),
                str(payload["r"]) if payload.get("r") is not None else None,
                int(payload["v"]) if payload.get("v") is not None else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidOAuthState("state payload is malformed", extra={"reason": "malformed"}) from exc
        if state.expires_at <= now:
            raise InvalidOAuthState(
                f"state expired at {state.expires_at.isoformat()}; start the authorization again",
                extra={"reason": "expired"},
            )
        return state

    def verifier(self, state: State) -> str:
        """The PKCE code verifier of a state (43 characters of base64url, RFC 7636)."""
        raw = hmac.digest(
            self._verifier_key, f"{state.tenant_id}|{state.connection_id}|{state.nonce}".encode(), "sha256"
        )
        return _b64(raw)


def challenge(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


def redirect_uri(public_url: str) -> str:
    return public_url.rstrip("/") + CALLBACK_PATH


@dataclass(frozen=True)
class AuthorizeLink:
    url: str
    state_expires_at: datetime
    redirect_uri: str


class Authorizer:
    def __init__(self, tokens: Tokens, signer: StateSigner, public_url: str) -> None:
        self.tokens = tokens
        self.signer = signer
        self.redirect_uri = redirect_uri(public_url)

    async def authorize_url(
        self, actor: Actor, connection_id: str, *, return_to: str | None = None
    ) -> AuthorizeLink:
        """The provider's authorize URL; ``return_to`` (a local path, :func:`check_return_to`) is
        where the callback sends the user afterwards instead of answering JSON."""
        return_to = check_return_to(return_to)
        async with self.tokens.db.unit_of_work() as session:
            conn = await self.tokens.connections.get(session, actor, connection_id)
            self._check(conn)
            provider = self.tokens.connections.provider(conn.provider_key)
            endpoints = token_endpoints(provider, conn)
            assert provider.oauth2 is not None
            if endpoints.authorize_url is None:
                raise Conflict(f"provider {provider.key!r} has no authorize URL")
            creds = await self.tokens.credentials(session, actor, conn)
            base = render(endpoints.authorize_url, conn.config, provider)
            token, state = self.signer.sign(conn.tenant_id, conn.id, utcnow(), return_to, conn.token_version)
            params = {
                **provider.oauth2.authorize_params,
                "response_type": "code",
                "client_id": creds.get("clientId", ""),
                "redirect_uri": self.redirect_uri,
                "state": token,
                "code_challenge": challenge(self.signer.verifier(state)),
                "code_challenge_method": "S256",
            }
            if conn.scopes:
                params["scope"] = provider.oauth2.scope_separator.join(conn.scopes)
            audit.record(
                session,
                actor,
                "connection.authorization_started",
                "connection",
                conn.id,
                {"stateExpiresAt": {"old": None, "new": state.expires_at.isoformat()}},
            )
        parts = urlsplit(base)
        query = f"{parts.query}&{urlencode(params)}" if parts.query else urlencode(params)
        url = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
        return AuthorizeLink(url, state.expires_at, self.redirect_uri)

    @staticmethod
    def _check(conn: IntegrationConnection) -> None:
        if conn.auth_type is not AuthenticationType.OAUTH2_AUTHORIZATION_CODE:
            raise Conflict(
                f"connection {conn.id} uses {conn.auth_type.value}; only OAUTH2_AUTHORIZATION_CODE "
                "connections are authorized through a URL"
            )
        if conn.status in (IntegrationConnectionStatus.DISABLED, IntegrationConnectionStatus.REVOKED):
            raise Conflict(f"connection {conn.id} is {conn.status.value}")

    async def callback(
        self, code: str | None, state_token: str | None, error: str | None, error_description: str | None
    ) -> IntegrationConnection:
        state = self.signer.verify(state_token or "", utcnow())
        actor = system_actor(state.tenant_id)
        if error:
            error = _printable(error, 100)
            description = _printable(error_description or "", 300) or None
            message = f"the provider refused the authorization: {error}"
            if description:
                message += f": {description}"
            await self._record_failure(actor, state, message)
            raise OAuthAuthorizationFailed(message, extra={"error": error, "errorDescription": description})
        if not code:
            raise OAuthAuthorizationFailed("the callback carries no code", extra={"error": "missing_code"})
        failure: TokenRequestFailed | None = None
        started = time.monotonic()
        async with self.tokens.db.unit_of_work() as session:
            try:
                conn = await self.tokens.connections.get(session, actor, state.connection_id, for_update=True)
            except NotFound:
                raise InvalidOAuthState(
                    "the connection of this state no longer exists", extra={"reason": "unknown_connection"}
                ) from None
            self._check(conn)
            _not_replayed(conn, state)
            provider = self.tokens.connections.provider(conn.provider_key)
            creds = await self.tokens.credentials(session, actor, conn)
            form = {
                "grant_type": "authorization_code",
                "code": code[:2048],
                "redirect_uri": self.redirect_uri,
                "code_verifier": self.signer.verifier(state),
            }
            try:
                answer = await request_token(
                    self.tokens.transport,
                    provider,
                    conn,
                    form,
                    creds.get("clientId", ""),
                    creds.get("clientSecret"),
                )
            except TokenRequestFailed as exc:
                failure = exc
                conn.last_error = f"code exchange failed: {exc}"[:1000]
                conn.last_error_at = utcnow()
                audit.record(
                    session,
                    actor,
                    "connection.authorization_failed",
                    "connection",
                    conn.id,
                    {"error": {"old": None, "new": str(exc)[:500]}},
                )
            else:
                await self.tokens.store(session, actor, conn, answer)
                audit.record(
                    session,
                    actor,
                    "connection.authorized",
                    "connection",
                    conn.id,
                    {"elapsedMs": {"old": None, "new": round((time.monotonic() - started) * 1000)}},
                )
                return conn
        assert failure is not None
        if failure.error is None:
            raise OAuthProviderUnreachable(f"code exchange failed: {failure}")
        raise OAuthAuthorizationFailed(
            f"code exchange failed: {failure}",
            extra={"error": failure.error, "errorDescription": failure.description},
        )

    async def _record_failure(self, actor: Actor, state: State, message: str) -> None:
        async with self.tokens.db.unit_of_work() as session:
            try:
                conn = await self.tokens.connections.get(session, actor, state.connection_id, for_update=True)
            except NotFound:
                return
            _not_replayed(conn, state)
            conn.last_error = message[:1000]
            conn.last_error_at = utcnow()
            audit.record(
                session,
                actor,
                "connection.authorization_failed",
                "connection",
                conn.id,
                {"error": {"old": None, "new": message[:500]}},
            )


def _not_replayed(conn: IntegrationConnection, state: State) -> None:
    """Refuse a state made before the connection's current token (400 ``replayed``)."""
    if state.token_version is not None and conn.token_version != state.token_version:
        raise InvalidOAuthState(
            "this authorization was already completed, or the connection got a token since it was "
            "started; start the authorization again",
            extra={"reason": "replayed"},
        )


def _printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, control characters replaced by ``?``."""
    return CONTROL_CHARACTERS.sub("?", text[:limit])
