"""The API contract, fuzzed by schemathesis through 127.0.0.1 and the mapped port.

schemathesis reads the running service's own /openapi.json and, for every operation, draws
schema-shaped (positive) and malformed (negative) requests, with junk query parameters and,
where the operation takes a body, at times arbitrary bytes or a foreign or empty Content-Type
instead. Seeded and bounded, so a run is repeatable. The fuzzing fills the service with
targets, so it gets a container of its own.

The fuzzing's checks are the functions in ``CHECKS``: no 5xx, every 4xx is JSON with a
``detail``, and every 2xx is a documented status with a JSON body (204 aside). Then, on the
cases schemathesis draws as it draws them, ``CONFORMANCE_CHECKS``: every check that
``st run --checks all`` makes (statuses, content types, headers, schemas, Allow, positive data
accepted, negative data rejected).

schemathesis' own pytest loader (``schemathesis.pytest.from_fixture``) needs pytest < 9.2 (it
renames the test item through ``Item._nodeid``), so the tests draw cases with the documented
``APIOperation.as_strategy()`` and Hypothesis' ``@given`` instead.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import pytest

# The lint session's mypy has no schemathesis installed (it is an integration dependency).
import schemathesis  # type: ignore[import-not-found, unused-ignore]
from containers import HTTP_TIMEOUT, Launcher, Service, owner_of
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

EXAMPLES_PER_OPERATION = 120
SEED = 5_000_000_001  # any fixed number: the same requests on every run
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# What the service serves, in the order the fuzzing visits it; the schema lists these and no other.
OPERATIONS = [
    ("POST", "/v1/targets"),
    ("GET", "/v1/targets"),
    ("GET", "/v1/targets/{target_id}"),
    ("POST", "/v1/targets/{target_id}/fire"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/version"),
    ("DELETE", "/v1/targets/{target_id}"),
]
AS_GENERATED = "as generated"  # the Content-Type schemathesis chose for the body
# Sent instead of it where an operation takes a body. schemathesis always sends a Content-Type
# with a body, so an empty one stands in for none at all.
FOREIGN_CONTENT_TYPES = ["application/json", "", "text/plain", "application/x-www-form-urlencoded"]
# Where an operation takes a body, at times these bytes replace the one schemathesis drew.
RAW_BODIES = st.none() | st.binary(max_size=300)
# Query parameters no operation declares; FastAPI ignores them, the service must too.
JUNK_QUERY = st.fixed_dictionaries({}, optional={"junk": st.text(min_size=1, max_size=40)})
CONFIG = schemathesis.Config.from_dict({"request-timeout": HTTP_TIMEOUT})
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)


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


@pytest.fixture(scope="module")
def fuzzed(launcher: Launcher, request: pytest.FixtureRequest) -> Iterator[Service]:
    with launcher.serving(owner_of(request)) as service:
        yield service


@pytest.fixture(scope="module")
def api_schema(fuzzed: Service) -> Any:
    """The running service's own schema, read through 127.0.0.1."""
    return schemathesis.openapi.from_url(
        fuzzed.url("/openapi.json"), config=CONFIG, timeout=HTTP_TIMEOUT
    )


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


# In the order of OPERATIONS: the POSTs create targets, and the deletes come last so that the
# operations before them meet targets that exist, not nothing but 404s.
@pytest.mark.parametrize("operation", OPERATIONS, ids=" ".join)
def test_no_5xx_and_every_4xx_is_json_with_detail(
    api_schema: Any, fuzzed: Service, operation: tuple[str, str]
) -> None:
    for label, strategy, takes_body in strategies(api_schema, operation):
        fuzz(fuzzed, strategy, label, takes_body)


def strategies(api_schema: Any, operation: tuple[str, str]) -> Iterator[tuple[str, Any, bool]]:
    """(label, cases, takes a body?): positive cases, and negative ones where an input can break."""
    method, path = operation
    api_operation = api_schema[path][method]
    definition = api_operation.definition.raw
    takes_body = "requestBody" in definition
    modes = [schemathesis.GenerationMode.POSITIVE]
    if takes_body or definition.get("parameters"):
        modes.append(schemathesis.GenerationMode.NEGATIVE)
    for mode in modes:
        yield f"{method} {path} {mode}", api_operation.as_strategy(generation_mode=mode), takes_body


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
    api_schema: Any, fuzzed: Service, operation: tuple[str, str]
) -> None:
    """schemathesis' own checks, all of them, on the cases it draws as it draws them."""
    for label, strategy, _ in strategies(api_schema, operation):

        @seed(zlib.crc32(f"{label} conformance".encode()) ^ SEED)
        @CONFORMANCE_SETTINGS
        @given(case=strategy)
        def conform(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                base_url=fuzzed.base_url,
                session=fuzzed.http,
                checks=CONFORMANCE_CHECKS,
                allow_redirects=False,
            )

        conform()


def test_still_ready_after_the_fuzzing(fuzzed: Service) -> None:
    """Runs after the fuzzing above (pytest keeps a module's order): it left the service up."""
    assert fuzzed.get("/readyz").status_code == 200
