"""Provider catalogue types: the guide's ``IntegrationProviderExtended`` and its parts.

One model serves both sides: the catalogue YAML (snake_case keys, validated at start-up) and the
REST answers (camelCase JSON). URL and header templates may name connection settings in braces,
``https://{subdomain}.zendesk.com/api/v2``: every name used must be a property of the provider's
``config_schema`` with a ``pattern`` or an ``enum`` (so a value can never change the host or the
path), and :func:`render_template` fills them from a connection's config (or the schema default).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from interlink.core.enums import (
    AuthenticationType,
    IntegrationCategory,
    IntegrationEnvironment,
    IntegrationProviderStatus,
)
from interlink.core.text import has_control_characters

PROVIDER_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Provider keys: lower-case letters, digits, ``-`` and ``_``; at most 63 characters."""

_PLACEHOLDER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_REGION = re.compile(r"^[A-Z]{2}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
"""What a placeholder value may hold once filled in: never a '/', '@', ':', '?' or '#'."""
_HEADER_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]{0,998}[\x21-\x7e])?$")
"""What a placeholder value may hold once filled into a header: printable ASCII (no CR, LF or NUL)."""
REFUSED_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
"""Header names ``request_headers`` may not set (credentials, the target, framing, hop-by-hop;
``Proxy-*`` too)."""
_OAUTH_TYPES = frozenset(
    {AuthenticationType.OAUTH2_AUTHORIZATION_CODE, AuthenticationType.OAUTH2_CLIENT_CREDENTIALS}
)


class SpecModel(BaseModel):
    """Catalogue model: snake_case in YAML, camelCase in JSON; unknown fields are refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
        from_attributes=True,
    )


def placeholders(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template, in order (``ValueError`` for bad syntax)."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad placeholder syntax in {template!r}: {exc}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not _PLACEHOLDER_NAME.match(name):
            raise ValueError(
                f"placeholder {{{name}}} in {template!r} must be a lower-case name like {{subdomain}}"
            )
        names.append(name)
    return names


def _check_url_template(value: str) -> str:
    names = placeholders(value)
    sample = value.format(**{name: "example" for name in names})
    parts = urlsplit(sample)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"{value!r} must not carry credentials or a fragment")
    return value


def render_template(template: str, config: dict[str, Any], config_schema: dict[str, Any] | None) -> str:
    """Fill a template's placeholders from ``config`` (or the schema's ``default``).

    Raises ``ValueError`` naming the missing setting (``config.<name>``). Values are assumed to be
    validated against ``config_schema`` already (its patterns keep them inside one URL segment).
    """
    properties = (config_schema or {}).get("properties", {})
    values: dict[str, str] = {}
    for name in placeholders(template):
        value = config.get(name, properties.get(name, {}).get("default"))
        if value is None or value == "":
            raise ValueError(f"config.{name} is required here ({template})")
        text = str(value)
        if not _SEGMENT.match(text):
            raise ValueError(f"config.{name} may only hold letters, digits, '.', '_' and '-'")
        values[name] = text
    return template.format(**values)


def render_headers(
    templates: Mapping[str, str], config: dict[str, Any], config_schema: dict[str, Any] | None
) -> dict[str, str]:
    """Header templates filled from ``config`` (or the schema's ``default``).

    A header naming a setting that has no value (absent, ``None`` or ``""``, and no default) is
    left out. Raises ``ValueError`` naming the setting (``config.<name>``) for a value that is not
    printable ASCII (CR, LF and other control characters never reach a header)."""
    properties = (config_schema or {}).get("properties", {})
    rendered: dict[str, str] = {}
    for header, template in templates.items():
        values: dict[str, str] = {}
        for name in placeholders(template):
            value = config.get(name, properties.get(name, {}).get("default"))
            if value is None or value == "":
                break
            text = str(value)
            if not _HEADER_VALUE.match(text):
                raise ValueError(
                    f"config.{name} cannot be sent in the {header} header: printable ASCII only, "
                    "at most 1000 characters, no CR or LF"
                )
            values[name] = text
        else:
            rendered[header] = template.format(**values)
    return rendered


def _request_header_name(name: str) -> str:
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid header name (a token: letters, digits, -, ...)")
    lowered = name.lower()
    if lowered in REFUSED_REQUEST_HEADERS or lowered.startswith("proxy-"):
        raise ValueError(
            f"{name} is set by Interlink (credentials, host, framing or hop-by-hop), not the catalogue"
        )
    return name


def _header_template(value: str, info: ValidationInfo) -> str:
    if has_control_characters(value, allow_tab=True):
        raise ValueError("header values must not contain CR, LF or other control characters")
    if len(value) > 1000:
        raise ValueError("header values are at most 1000 characters")
    _check_placeholders(value, info)
    return value


RequestHeaderName = Annotated[str, AfterValidator(_request_header_name)]
HeaderTemplate = Annotated[str, AfterValidator(_header_template)]


class OAuth2Endpoints(SpecModel):
    """OAuth2 endpoints (URL templates)."""

    authorize_url: str | None = Field(default=None, max_length=500)
    token_url: str = Field(max_length=500)

    @field_validator("authorize_url", "token_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return None if value is None else _check_url_template(value)


class OAuth2Settings(OAuth2Endpoints):
    """How to run the provider's OAuth2 flows."""

    refresh_url: str | None = Field(default=None, max_length=500, description="Default: `token_url`.")
    revoke_url: str | None = Field(default=None, max_length=500)
    default_scopes: list[str] = Field(default_factory=list, description="Requested when none are given.")
    client_credentials_scopes: list[str] | None = Field(
        default=None, description="Scopes of the client-credentials grant, when they differ."
    )
    scope_separator: str = Field(default=" ", min_length=1, max_length=3)
    pkce: bool = Field(default=False, description="The authorize endpoint accepts PKCE (S256).")
    token_auth_method: Literal["client_secret_post", "client_secret_basic"] = "client_secret_post"  # noqa: S105
    authorize_params: dict[str, str] = Field(
        default_factory=dict, description="Extra query parameters of the authorize URL."
    )
    token_request_headers: dict[str, str] = Field(default_factory=dict)
    access_token_ttl_seconds: int | None = Field(
        default=None, gt=0, description="Documented lifetime of an access token, when `expires_in` is absent."
    )
    refresh_token_rotates: bool | None = Field(
        default=None, description="Each refresh returns a new refresh token and retires the old one."
    )
    environments: dict[IntegrationEnvironment, OAuth2Endpoints] = Field(
        default_factory=dict, description="Other endpoints for some environments (e.g. a sandbox login)."
    )
    api_base_url: str | None = Field(
        default=None,
        max_length=500,
        description="Base URL of API calls made with OAuth2 tokens, if different.",
    )

    @field_validator("refresh_url", "revoke_url", "api_base_url")
    @classmethod
    def _more_urls(cls, value: str | None) -> str | None:
        return None if value is None else _check_url_template(value)

    @field_validator("authorize_params", "token_request_headers")
    @classmethod
    def _plain_strings(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not key or len(key) > 100:
                raise ValueError(f"{key!r}: names must be 1 to 100 characters")
        return value

    def templates(self) -> list[str]:
        found = [u for u in (self.authorize_url, self.token_url, self.refresh_url, self.revoke_url) if u]
        if self.api_base_url:
            found.append(self.api_base_url)
        for endpoints in self.environments.values():
            found.extend(u for u in (endpoints.authorize_url, endpoints.token_url) if u)
        return found


class ApiKeyPlacement(SpecModel):
    """Where an ``API_KEY`` credential goes on a request."""

    location: Literal["header", "query", "basic_username", "basic_password"] = "header"
    name: str = Field(default="Authorization", min_length=1, max_length=100)
    """Header or query parameter name (ignored for basic auth)."""
    prefix: str = Field(default="Bearer ", max_length=40)


class RateLimitKind(StrEnum):
    RATE = "rate"
    """At most ``limit`` units per ``window_seconds``."""
    CONCURRENCY = "concurrency"
    """At most ``limit`` requests in flight at once."""


class RateLimit(SpecModel):
    """One documented limit of the provider."""

    kind: RateLimitKind = RateLimitKind.RATE
    limit: int = Field(gt=0)
    window_seconds: int | None = Field(default=None, gt=0)
    unit: Literal["requests", "points"] = "requests"
    scope: str = Field(
        min_length=1,
        max_length=60,
        description="What the limit counts against: account, app, user, tenant, token, ...",
    )
    environment: IntegrationEnvironment | None = Field(
        default=None, description="Only in this environment (none: every environment)."
    )
    description: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _window(self) -> RateLimit:
        if self.kind is RateLimitKind.RATE and self.window_seconds is None:
            raise ValueError("window_seconds is required for a rate limit")
        if self.kind is RateLimitKind.CONCURRENCY and self.window_seconds is not None:
            raise ValueError("a concurrency limit has no window_seconds")
        return self

    @property
    def per_second(self) -> float | None:
        """The sustained rate (``None`` for concurrency limits)."""
        return None if self.window_seconds is None else self.limit / self.window_seconds


class DataClass(StrEnum):
    """Kinds of data a provider handles (for data-protection reviews)."""

    PII = "PII"
    """Names, emails, phone numbers, addresses."""
    FINANCIAL = "FINANCIAL"
    """Ledgers, invoices, bank transactions."""
    PAYMENT = "PAYMENT"
    """Payment instruments and card data (PCI scope at the provider)."""
    HEALTH = "HEALTH"
    COMMUNICATIONS = "COMMUNICATIONS"
    """Messages, emails, calls, conversations."""
    DOCUMENTS = "DOCUMENTS"
    """Files, pages, spreadsheets."""
    SOURCE_CODE = "SOURCE_CODE"
    EMPLOYEE = "EMPLOYEE"
    """HR and payroll records."""
    MARKETING = "MARKETING"
    """Audiences, campaigns, engagement."""
    BUSINESS_RECORDS = "BUSINESS_RECORDS"
    """Deals, tickets, tasks, projects, orders."""


class Compliance(SpecModel):
    """Compliance facts as the provider publishes them (check its trust centre before relying on them)."""

    certifications: list[str] = Field(default_factory=list, description='e.g. "SOC 2 Type II".')
    data_residency: list[str] = Field(
        default_factory=list, description="Regions where data can be kept: ISO country codes and EU."
    )
    data_classes: list[DataClass] = Field(default_factory=list)
    notes: str | None = Field(default=None, max_length=1000)

    @field_validator("data_residency")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        for region in value:
            if not _REGION.match(region):
                raise ValueError(f"{region!r}: use two upper-case letters (US, EU, DE, ...)")
        return value


class WebhookSignatureScheme(StrEnum):
    """How a provider signs the webhooks it sends."""

    NONE = "none"
    """Unsigned (or not verifiable by a shared secret)."""
    STANDARD_WEBHOOKS = "standard_webhooks"
    """``webhook-id``/``webhook-timestamp``/``webhook-signature`` (``v1,`` base64 HMAC-SHA256)."""
    STRIPE = "stripe"
    """``Stripe-Signature: t=...,v1=...`` (hex HMAC-SHA256 of ``t.body``)."""
    GITHUB = "github"
    """``X-Hub-Signature-256: sha256=...`` (hex HMAC-SHA256 of the body)."""
    SHOPIFY = "shopify"
    """``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the body)."""
    HMAC_HEADER = "hmac_header"
    """Any HMAC in a header: name, algorithm, encoding, prefix and signed content are given."""
    ECDSA_HEADER = "ecdsa_header"
    """An ECDSA (P-256, SHA-256) signature in a header, checked with the provider's public key."""


SIGNED_CONTENT_FIELDS = frozenset({"body", "timestamp", "id", "method", "url", "form_params"})
"""Placeholders of ``signed_content``: the raw body, the timestamp header, the event id, the request
method, the full request URL, and (Twilio) the form parameters sorted by name, each name followed by
its value."""

_FIXED_SCHEMES: dict[WebhookSignatureScheme, dict[str, Any]] = {
    WebhookSignatureScheme.STANDARD_WEBHOOKS: {
        "header": "webhook-signature",
        "algorithm": "sha256",
        "encoding": "base64",
        "prefix": "v1,",
        "signed_content": "{id}.{timestamp}.{body}",
        "timestamp_header": "webhook-timestamp",
        "event_id_header": "webhook-id",
    },
    WebhookSignatureScheme.STRIPE: {
        "header": "Stripe-Signature",
        "algorithm": "sha256",
        "encoding": "hex",
        "prefix": "v1=",
        "signed_content": "{timestamp}.{body}",
    },
    WebhookSignatureScheme.GITHUB: {
        "header": "X-Hub-Signature-256",
        "algorithm": "sha256",
        "encoding": "hex",
        "prefix": "sha256=",
        "signed_content": "{body}",
        "event_id_header": "X-GitHub-Delivery",
    },
    WebhookSignatureScheme.SHOPIFY: {
        "header": "X-Shopify-Hmac-Sha256",
        "algorithm": "sha256",
        "encoding": "base64",
        "prefix": "",
        "signed_content": "{body}",
        "event_id_header": "X-Shopify-Webhook-Id",
    },
}
_TIMESTAMPED = frozenset({WebhookSignatureScheme.STANDARD_WEBHOOKS, WebhookSignatureScheme.STRIPE})


class WebhookSignature(SpecModel):
    """The inbound webhook signature scheme of a provider.

    For ``standard_webhooks``, ``stripe``, ``github`` and ``shopify`` the header, algorithm,
    encoding and signed content are fixed by the scheme (filled in; a different value is refused).
    """

    scheme: WebhookSignatureScheme
    header: str | None = Field(default=None, max_length=100)
    algorithm: Literal["sha1", "sha256", "sha512"] | None = None
    encoding: Literal["hex", "base64"] | None = None
    prefix: str = Field(default="", max_length=20, description='Text before the signature, e.g. "sha256=".')
    signed_content: str = Field(
        default="{body}", max_length=200, description="What is signed, e.g. `{timestamp}.{body}`."
    )
    timestamp_header: str | None = Field(default=None, max_length=100)
    timestamp_tolerance_seconds: int | None = Field(default=None, gt=0, le=86_400)
    event_id_header: str | None = Field(default=None, max_length=100, description="Header naming the event.")
    event_id_path: str | None = Field(
        default=None, max_length=200, description="Dotted path of the event id in a JSON body, e.g. `id`."
    )
    secret: Literal["webhook_secret", "client_secret", "api_credential", "public_key"] = Field(
        default="webhook_secret",
        description="What verifies the signature: a per-webhook secret, the OAuth client secret, the "
        "API credential itself, or the provider's public key.",
    )
    notes: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="before")
    @classmethod
    def _scheme_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            scheme = WebhookSignatureScheme(str(data.get("scheme")))
        except ValueError:
            return data  # the field validator names the bad scheme
        merged = dict(data)
        timestamped = scheme in _TIMESTAMPED or merged.get("timestamp_header", merged.get("timestampHeader"))
        if (
            timestamped
            and merged.get("timestamp_tolerance_seconds", merged.get("timestampToleranceSeconds")) is None
        ):
            merged["timestamp_tolerance_seconds"] = 300
        fixed = _FIXED_SCHEMES.get(scheme)
        if fixed is None:
            return merged
        for name, value in fixed.items():
            given = merged.get(name, merged.get(to_camel(name)))
            if given is not None and given != value:
                raise ValueError(f"{name} is fixed by the {scheme.value} scheme ({value!r}); remove it")
            merged.pop(to_camel(name), None)
            merged[name] = value
        return merged

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSignature:
        scheme = self.scheme
        if scheme is WebhookSignatureScheme.NONE:
            if self.header or self.algorithm or self.encoding or self.timestamp_header:
                raise ValueError("scheme none takes no header, algorithm, encoding or timestamp_header")
            return self
        if scheme is WebhookSignatureScheme.HMAC_HEADER:
            missing = [n for n in ("header", "algorithm", "encoding") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"hmac_header needs {', '.join(missing)}")
        if scheme is WebhookSignatureScheme.ECDSA_HEADER:
            if self.header is None or self.encoding is None:
                raise ValueError("ecdsa_header needs header and encoding")
            if self.secret != "public_key":  # noqa: S105 - the kind of secret, not one
                raise ValueError(
                    "ecdsa_header is verified with the provider's public key: secret: public_key"
                )
            if self.algorithm not in (None, "sha256"):
                raise ValueError("ecdsa_header signatures use sha256")
        for name in ("header", "timestamp_header", "event_id_header"):
            value = getattr(self, name)
            if value is not None and not _HEADER_NAME.match(value):
                raise ValueError(f"{name} {value!r} is not a valid header name")
        try:
            used = set(placeholders(self.signed_content))
        except ValueError as exc:
            raise ValueError(f"signed_content: {exc}") from None
        unknown = used - SIGNED_CONTENT_FIELDS
        if unknown:
            raise ValueError(
                f"signed_content may use {', '.join(sorted(SIGNED_CONTENT_FIELDS))}; "
                f"not {', '.join(sorted(unknown))}"
            )
        if "timestamp" in used and self.timestamp_header is None and scheme not in _TIMESTAMPED:
            raise ValueError("signed_content uses {timestamp}: name the timestamp_header")
        return self


class VerificationRequest(SpecModel):
    """A cheap authenticated call that proves credentials work (used by health checks)."""

    method: Literal["GET", "HEAD", "POST"] = "GET"
    path: str = Field(
        min_length=1, max_length=500, description="Appended to the base URL; may hold placeholders."
    )
    headers: dict[str, str] = Field(default_factory=dict)
    expected_status: list[int] = Field(default_factory=lambda: [200], min_length=1)
    expect_json: dict[str, Any] | None = Field(
        default=None, description='Fields the JSON answer must hold, e.g. `{"ok": true}` (Slack).'
    )

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith("//") or "://" in value:
            raise ValueError("must be a path starting with / (it is appended to the base URL)")
        placeholders(value)
        return value

    @field_validator("expected_status")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"{status} is not an HTTP status")
        return value


class IntegrationProviderExtended(SpecModel):
    """One provider of the catalogue (the guide's ``IntegrationProviderExtended``).

    Fields are validated in declaration order, so later fields are checked against earlier ones
    (placeholders against ``config_schema``, OAuth2 settings against ``auth_types``).
    """

    key: str = Field(pattern=PROVIDER_KEY_PATTERN, description="Stable identifier, e.g. `stripe`.")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    category: IntegrationCategory
    status: IntegrationProviderStatus = IntegrationProviderStatus.ACTIVE
    docs_url: str = Field(max_length=500)
    auth_types: list[AuthenticationType] = Field(min_length=1)
    config_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema (2020-12) of a connection's `config` for this provider."
    )
    base_urls: dict[IntegrationEnvironment, str] = Field(description="API base URL per environment.")
    default_headers: dict[str, str] = Field(default_factory=dict, description="Sent with every API call.")
    api_key: ApiKeyPlacement | None = Field(default=None, description="With API_KEY: where the key goes.")
    oauth2: OAuth2Settings | None = Field(
        default=None, validate_default=True, description="Required with OAUTH2_* authentication types."
    )
    request_headers: dict[RequestHeaderName, HeaderTemplate] = Field(
        default_factory=dict,
        description="Headers filled from the connection's config and sent with every call through "
        "it, e.g. `Stripe-Account: {account_id}`; one whose settings have no value is left out. "
        "They replace a header of the same name the caller sets.",
    )
    rate_limits: list[RateLimit] = Field(default_factory=list)
    rate_limit_policy: str | None = Field(
        default=None, max_length=1000, description="Limits that are not a fixed number (budgets, tiers)."
    )
    compliance: Compliance = Field(default_factory=Compliance)
    webhooks: WebhookSignature = Field(
        default_factory=lambda: WebhookSignature(scheme=WebhookSignatureScheme.NONE)
    )
    verification: VerificationRequest | None = None

    @field_validator("docs_url")
    @classmethod
    def _docs_url(cls, value: str) -> str:
        if placeholders(value):
            raise ValueError("docs_url takes no placeholders")
        return _check_url_template(value)

    @field_validator("auth_types")
    @classmethod
    def _unique_auth_types(cls, value: list[AuthenticationType]) -> list[AuthenticationType]:
        if len(set(value)) != len(value):
            raise ValueError("lists an authentication type twice")
        return value

    @field_validator("config_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as exc:
            where = ".".join(str(p) for p in exc.path)
            raise ValueError(
                f"not a valid JSON Schema{f' at {where}' if where else ''}: {exc.message}"
            ) from None
        if value.get("type") != "object":
            raise ValueError('must describe an object ("type": "object")')
        return value

    @field_validator("base_urls")
    @classmethod
    def _base_urls(
        cls, value: dict[IntegrationEnvironment, str], info: ValidationInfo
    ) -> dict[IntegrationEnvironment, str]:
        if IntegrationEnvironment.PRODUCTION not in value:
            raise ValueError("needs a PRODUCTION base URL")
        for url in value.values():
            _check_url_template(url)
            _check_placeholders(url, info)
        return value

    @field_validator("default_headers")
    @classmethod
    def _headers(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            _check_placeholders(header_value, info)
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: ApiKeyPlacement | None, info: ValidationInfo) -> ApiKeyPlacement | None:
        auth_types = info.data.get("auth_types") or []
        if value is not None and AuthenticationType.API_KEY not in auth_types:
            raise ValueError("is only used with the API_KEY authentication type")
        return value

    @field_validator("oauth2")
    @classmethod
    def _oauth2(cls, value: OAuth2Settings | None, info: ValidationInfo) -> OAuth2Settings | None:
        auth_types = set(info.data.get("auth_types") or [])
        if value is None:
            if auth_types & _OAUTH_TYPES:
                raise ValueError("is required for OAUTH2_* authentication types")
            return None
        if not auth_types & _OAUTH_TYPES and "auth_types" in info.data:
            raise ValueError("is given but auth_types lists no OAUTH2_* type")
        if AuthenticationType.OAUTH2_AUTHORIZATION_CODE in auth_types and value.authorize_url is None:
            raise ValueError("authorize_url is required for OAUTH2_AUTHORIZATION_CODE")
        for template in value.templates():
            _check_placeholders(template, info)
        return value

    @field_validator("request_headers")
    @classmethod
    def _request_headers(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        seen: set[str] = set()
        defaults = {name.lower() for name in info.data.get("default_headers") or {}}
        api_key = info.data.get("api_key")
        key_header = (
            api_key.name.lower()
            if isinstance(api_key, ApiKeyPlacement) and api_key.location == "header"
            else None
        )
        for name in value:
            lowered = name.lower()
            if lowered in seen:
                raise ValueError(f"names {name} twice (header names are case-insensitive)")
            seen.add(lowered)
            if lowered in defaults:
                raise ValueError(f"{name} is also in default_headers: name it in one of them")
            if lowered == key_header:
                raise ValueError(f"{name} carries the API key (api_key.name)")
        return value

    @field_validator("verification")
    @classmethod
    def _verification(
        cls, value: VerificationRequest | None, info: ValidationInfo
    ) -> VerificationRequest | None:
        if value is not None:
            _check_placeholders(value.path, info)
            for header_value in value.headers.values():
                _check_placeholders(header_value, info)
        return value

    @model_validator(mode="before")
    @classmethod
    def _api_key_default(cls, data: Any) -> Any:
        """With API_KEY and no placement: the key is a bearer token (``Authorization: Bearer``)."""
        if isinstance(data, dict) and data.get("api_key", data.get("apiKey")) is None:
            auth_types = data.get("auth_types", data.get("authTypes"))
            if isinstance(auth_types, list) and AuthenticationType.API_KEY.value in auth_types:
                return {**data, "api_key": {}}
        return data

    @property
    def environments(self) -> list[IntegrationEnvironment]:
        return list(self.base_urls)

    def search_text(self) -> str:
        return " ".join(
            filter(None, (self.key, self.name, self.description or "", self.category.value))
        ).lower()


def _check_placeholders(template: str, info: ValidationInfo) -> None:
    """Every placeholder must be a property of ``config_schema`` that a pattern or enum constrains."""
    names = placeholders(template)
    if not names:
        return
    if "config_schema" not in info.data:
        return  # config_schema itself failed; its error is reported
    schema = info.data["config_schema"] or {}
    properties = schema.get("properties", {})
    for name in names:
        prop = properties.get(name)
        if not isinstance(prop, dict):
            raise ValueError(f"{{{name}}} in {template!r} is not a property of config_schema")
        if prop.get("type") != "string" or not ("pattern" in prop or "enum" in prop):
            raise ValueError(
                f"config_schema.properties.{name} must be a string with a pattern or an enum "
                f"(its value is placed in {template!r})"
            )
        pattern = prop.get("pattern")
        if isinstance(pattern, str) and not (pattern.startswith("^") and pattern.endswith("$")):
            raise ValueError(f"config_schema.properties.{name}.pattern must be anchored with ^ and $")
