"""Schema conformance of every operation (no 5xx, responses match the OpenAPI document), shard 2:
see tests/schema_conformance.py and tests/test_schemathesis.py."""

from __future__ import annotations

import pytest

from tests.schema_conformance import Target, check_operation, shard_operations, target
from tests.test_schemathesis import SUCCESS_COVERED_ELSEWHERE

__all__ = ["target"]


@pytest.mark.parametrize("operation", shard_operations(2))
def test_operation_conforms_to_the_schema(target: Target, operation: str) -> None:
    check_operation(target, operation, SUCCESS_COVERED_ELSEWHERE)
