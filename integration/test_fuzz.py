"""The API's robustness, fuzzed by schemathesis through 127.0.0.1 and the mapped port.

schemathesis reads the running service's own /openapi.json and, for every operation, draws
schema-shaped (positive) and malformed (negative) requests, with junk query parameters and,
where the operation takes a body, at times arbitrary bytes or a foreign or empty Content-Type
instead. Seeded and bounded, so a run is repeatable. The fuzzing fills the service with
targets, so it gets a container of its own.

The checks are the functions in ``CHECKS``: no 5xx, every 4xx is JSON with a ``detail``, and
every 2xx is a documented status with a JSON body (204 aside). test_conformance makes every
check schemathesis has, on a container of its own; fuzzing.py holds what the two share.
"""

from __future__ import annotations

import zlib
from typing import Any

import pytest

# The lint session's mypy has no schemathesis installed (it is an integration dependency).
import schemathesis  # type: ignore[import-not-found, unused-ignore]
from containers import Service
from fuzzing import FUZZ_SETTINGS, METHODS, OPERATIONS, SEED, strategies
from hypothesis import given, seed
from hypothesis import strategies as st

AS_GENERATED = "as generated"  # the Content-Type schemathesis chose for the body
# Sent instead of it where an operation takes a body. schemathesis always sends a Content-Type
# with a body, so an empty one stands in for none at all.
FOREIGN_CONTENT_TYPES = ["application/json", "", "text/plain", "application/x-www-form-urlencoded"]
# Where an operation takes a body, at times these bytes replace the one schemathesis drew.
RAW_BODIES = st.none() | st.binary(max_size=300)
# Query parameters no operation declares; FastAPI ignores them, the service must too.
JUNK_QUERY = st.fixed_dictionaries({}, optional={"junk": st.text(min_size=1, max_size=40)})


def client_error_is_json_with_detail(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> None:
    """Every 4xx is a JSON object with a ``detail``."""
    del ctx, case
    if 400 <= response.status_code < 500:
        content_type = response.headers.get("content-type", [""])[0]
        assert content_type.startswith("application/json"), f"4xx as {content_type!r}"
        body = response.json()
        assert isinstance(body, dict), f"4xx body is not an object: {body!r}"
        assert "detail" in body, f"4xx body without detail: {body!r}"


def success_is_documented_json(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> None:
    """Every 2xx is a status the operation documents, with a JSON body unless it is a 204."""
    if 200 <= response.status_code < 300:
        schemathesis.checks.status_code_conformance(ctx, response, case)
        if response.status_code != 204:
            response.json()


CHECKS: list[schemathesis.CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    client_error_is_json_with_detail,
    success_is_documented_json,
]


def test_the_schema_lists_every_operation(api_schema: Any) -> None:
    paths = api_schema.raw_schema["paths"]
    found = {(m.upper(), path) for path, item in paths.items() for m in item if m in METHODS}
    assert found == set(OPERATIONS)


def fuzz(service: Service, strategy: Any, label: str, takes_body: bool) -> None:
    """Send ``strategy``'s cases with junk query parameters and, if any body, foreign ones."""
    content_types = [AS_GENERATED, *FOREIGN_CONTENT_TYPES] if takes_body else [AS_GENERATED]
    raw_bodies = RAW_BODIES if takes_body else st.none()

    @seed(zlib.crc32(label.encode()) ^ SEED)
    @FUZZ_SETTINGS
    @given(
        case=strategy,
        content_type=st.sampled_from(content_types),
        raw_body=raw_bodies,
        junk=JUNK_QUERY,
    )
    def run(
        case: schemathesis.Case[Any],
        content_type: str,
        raw_body: bytes | None,
        junk: dict[str, str],
    ) -> None:
        if raw_body is not None:
            case.body = raw_body
            case.media_type = "application/octet-stream"
        headers = {} if content_type == AS_GENERATED else {"Content-Type": content_type}
        case.call_and_validate(
            base_url=service.base_url,
            session=service.http,
            headers=headers,
            params=junk,
            checks=CHECKS,
            allow_redirects=False,
        )

    run()


@pytest.mark.parametrize("operation", OPERATIONS, ids=" ".join)
def test_no_5xx_and_every_4xx_is_json_with_detail(
    api_schema: Any, own_service: Service, operation: tuple[str, str]
) -> None:
    for label, strategy, takes_body in strategies(api_schema, operation):
        fuzz(own_service, strategy, label, takes_body)


def test_still_ready_after_the_fuzzing(own_service: Service) -> None:
    """Runs after the fuzzing above (pytest keeps a module's order): it left the service up."""
    assert own_service.get("/readyz").status_code == 200
