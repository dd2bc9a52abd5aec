"""The API contract, checked by schemathesis through 127.0.0.1 and the mapped port.

On the cases schemathesis draws as it draws them (positive, and negative where an input can
break), every check that ``st run --checks all`` makes: statuses, content types, headers,
schemas, Allow, positive data accepted, negative data rejected. On a container of its own, so
that it runs beside test_fuzz on another worker; fuzzing.py holds what the two share.
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest

# The lint session's mypy has no schemathesis installed (it is an integration dependency).
import schemathesis  # type: ignore[import-not-found, unused-ignore]
from containers import Service
from fuzzing import EXAMPLES_PER_OPERATION, FUZZ_SETTINGS, OPERATIONS, SEED, strategies
from hypothesis import given, seed, settings

# Every check `st run --checks all` makes on a case: the contract as the document states it.
CONFORMANCE_CHECKS: list[schemathesis.CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.positive_data_acceptance,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.allow_header_conformance,
]
CONFORMANCE_SETTINGS = settings(FUZZ_SETTINGS, max_examples=EXAMPLES_PER_OPERATION // 3)


@pytest.mark.parametrize("operation", OPERATIONS, ids=" ".join)
def test_every_answer_is_what_the_document_says(
    api_schema: Any, own_service: Service, operation: tuple[str, str]
) -> None:
    """schemathesis' own checks, all of them, on the cases it draws as it draws them."""
    for label, strategy, _ in strategies(api_schema, operation):

        @seed(zlib.crc32(f"{label} conformance".encode()) ^ SEED)
        @CONFORMANCE_SETTINGS
        @given(case=strategy)
        def conform(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                base_url=own_service.base_url,
                session=own_service.http,
                checks=CONFORMANCE_CHECKS,
                allow_redirects=False,
            )

        conform()


def test_still_ready_after_the_checks(own_service: Service) -> None:
    """Runs after the checks above (pytest keeps a module's order): they left the service up."""
    assert own_service.get("/readyz").status_code == 200
