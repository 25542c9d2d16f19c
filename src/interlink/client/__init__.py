"""Python SDK for the Interlink REST API.

>>> from interlink.client import InterlinkClient
>>> with InterlinkClient("http://127.0.0.1:8000", "il_live_...") as client:
...     created = client.keys.create("backend", ["keys:verify"])
...     print(created.key)  # shown once: store it now
...     client.keys.verify(created.key).valid

:class:`AsyncInterlinkClient` has the same surface with ``await``. Answers are the service's own
pydantic models (``ApiKeyInfo``, ``TenantInfo``, ...); lists return a :class:`Page` and each
resource offers ``iter_all`` to walk every page. Errors are :class:`InterlinkAPIError` subclasses.
"""

from interlink.client._async import AsyncInterlinkClient
from interlink.client._base import NOT_GIVEN, NotGiven
from interlink.client._sync import InterlinkClient
from interlink.client.errors import (
    AuthenticationError,
    ConflictError,
    FieldProblem,
    InterlinkAPIError,
    InterlinkClientError,
    InterlinkConnectionError,
    InterlinkTimeoutError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from interlink.client.models import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRotated,
    ApiSecurityAuditEvent,
    AuditEventInfo,
    ForwardedResponse,
    Page,
    SecretInfo,
    SecretRiskFactor,
    TenantInfo,
    VerifyKeyResponse,
)

__all__ = [
    "NOT_GIVEN",
    "ApiKeyCreated",
    "ApiKeyInfo",
    "ApiKeyRotated",
    "ApiSecurityAuditEvent",
    "AsyncInterlinkClient",
    "AuditEventInfo",
    "AuthenticationError",
    "ConflictError",
    "FieldProblem",
    "ForwardedResponse",
    "InterlinkAPIError",
    "InterlinkClient",
    "InterlinkClientError",
    "InterlinkConnectionError",
    "InterlinkTimeoutError",
    "NotFoundError",
    "NotGiven",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "SecretInfo",
    "SecretRiskFactor",
    "ServiceUnavailableError",
    "TenantInfo",
    "ValidationError",
    "VerifyKeyResponse",
]
