"""What the schemathesis modules share: the operations, the seeded settings, the strategies.

test_fuzz (robustness: no 5xx, every 4xx JSON with a ``detail``) and test_conformance (every
check ``st run --checks all`` makes) each fuzz a container of their own, so the two can run on
different workers. schemathesis' own pytest loader (``schemathesis.pytest.from_fixture``) needs
pytest < 9.2 (it renames the test item through ``Item._nodeid``), so the tests draw cases with
the documented ``APIOperation.as_strategy()`` and Hypothesis' ``@given`` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# The lint session's mypy has no schemathesis installed (it is an integration dependency).
import schemathesis  # type: ignore[import-not-found, unused-ignore]
from containers import HTTP_TIMEOUT, Service
from hypothesis import HealthCheck, settings

EXAMPLES_PER_OPERATION = 120
SEED = 5_000_000_001  # any fixed number: the same requests on every run
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# What the service serves, in the order the fuzzing visits it; the schema lists these and no other.
# The POSTs create targets, and the deletes come last so that the operations before them meet
# targets that exist, not nothing but 404s.
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
CONFIG = schemathesis.Config.from_dict({"request-timeout": HTTP_TIMEOUT})
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)


def read_schema(service: Service) -> Any:
    """The running service's own schema, read through 127.0.0.1."""
    return schemathesis.openapi.from_url(
        service.url("/openapi.json"), config=CONFIG, timeout=HTTP_TIMEOUT
    )


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
