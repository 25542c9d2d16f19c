"""Availability of the real services tests use, and the skip-or-fail rule.

Where a service is missing a test skips with the reason, unless ``INTERLINK_REQUIRE_SERVICES=1``
(set by ``.ci/run``), which turns every such skip into a failure.
"""

from __future__ import annotations

import os
import socket
from functools import cache

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "INTERLINK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("INTERLINK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    return os.environ.get("INTERLINK_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def need(available: bool, reason: str) -> None:
    """Skip (or, with INTERLINK_REQUIRE_SERVICES=1, fail) unless ``available``."""
    if available:
        return
    if services_required():
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


@cache
def postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


@cache
def redis_available() -> bool:
    host_port = REDIS_URL.split("://", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
