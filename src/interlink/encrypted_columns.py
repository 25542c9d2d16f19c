"""Every column outside ``integration_secrets`` that holds master-key ciphertexts.

``interlink secrets rotate-master-key`` and ``interlink secrets status`` walk this list, so a
master key is only reported unused when nothing anywhere still needs it. A new encrypted column
must be added here (tests/test_secrets.py checks the list against the models).
"""

from __future__ import annotations

from typing import Any, cast

import sqlalchemy as sa

from interlink.core.secrets import EncryptedColumn
from interlink.webhooks.endpoints import secret_associated_data, target_associated_data
from interlink.webhooks.inbound.models import WebhookInboundSecret
from interlink.webhooks.inbound.sources import secret_associated_data as inbound_secret_associated_data
from interlink.webhooks.models import WebhookEndpoint, WebhookEndpointSecret


def _signing_secret_aad(row: Any) -> bytes:
    return secret_associated_data(row.tenant_id, row.endpoint_id, row.id)


def _inbound_secret_aad(row: Any) -> bytes:
    return inbound_secret_associated_data(row.tenant_id, row.source_id, row.id)


def _target_aad(row: Any) -> bytes:
    return target_associated_data(row.tenant_id, row.id)


ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn(
        label="webhook signing secret",
        table=cast(sa.Table, WebhookEndpointSecret.__table__),
        ciphertext_column="ciphertext",
        key_id_column="key_id",
        extra_columns=("endpoint_id",),
        associated_data=_signing_secret_aad,
        resource_type="endpoint_secret",
    ),
    EncryptedColumn(
        label="webhook target url",
        table=cast(sa.Table, WebhookEndpoint.__table__),
        ciphertext_column="target_ciphertext",
        associated_data=_target_aad,
        resource_type="endpoint",
    ),
    EncryptedColumn(
        label="inbound source signing secret",
        table=cast(sa.Table, WebhookInboundSecret.__table__),
        ciphertext_column="ciphertext",
        key_id_column="key_id",
        extra_columns=("source_id",),
        associated_data=_inbound_secret_aad,
        resource_type="inbound_source_secret",
    ),
)
