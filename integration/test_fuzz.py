"""Property-based bad input against the container's own OpenAPI document.

For every operation the running service describes in /openapi.json, Hypothesis draws path
ids, query parameters, headers and bodies (schema-shaped and arbitrary) and sends them over
127.0.0.1. Seeded (derandomize) and bounded, so a run is repeatable and takes seconds. The
service must never answer 5xx, and every 4xx must be JSON with a "detail".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from conftest import Service
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES_PER_OPERATION = 120
JSON = "application/json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# What the service serves: the fuzzing below must have found each of these in the spec.
EXPECTED = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/version"),
    ("GET", "/v1/targets"),
    ("POST", "/v1/targets"),
    ("GET", "/v1/targets/{target_id}"),
    ("DELETE", "/v1/targets/{target_id}"),
    ("POST", "/v1/targets/{target_id}/fire"),
}

FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=False,
)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]


@dataclass(frozen=True)
class Call:
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes | None

    def __str__(self) -> str:
        body = None if self.body is None else self.body[:200]
        return f"{self.path} params={self.params} headers={self.headers} body={body!r}"


def operations(spec: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


# Arbitrary JSON, NaN and Infinity included (Python's parser accepts them, JSON does not).
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), non_finite, st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
# Text that survives URL encoding (no lone surrogates), slashes, dots and %-signs included.
url_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
huge_ints = st.integers(min_value=-(2**80), max_value=2**80)


def conforming(spec: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that fit ``schema``, as far as this small generator understands schemas."""
    schema = resolve(spec, schema)
    kind = schema.get("type")
    if kind == "string":
        text = st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 50))
        pattern = schema.get("pattern")
        return text.filter(lambda s: re.search(pattern, s) is not None) if pattern else text
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        small = st.integers(min_value=low, max_value=(low or 0) + 60)  # ids that exist
        return small | st.integers(min_value=low, max_value=high)
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {name: conforming(spec, sub) for name, sub in properties.items() if name in required},
            optional={
                name: conforming(spec, sub)
                for name, sub in properties.items()
                if name not in required
            },
        )
    return json_values


def misshapen(spec: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Objects with the schema's fields, any of them missing, wrong or extra."""
    schema = resolve(spec, schema)
    fields = {
        name: conforming(spec, sub) | json_values
        for name, sub in schema.get("properties", {}).items()
    }
    return st.fixed_dictionaries({}, optional={**fields, "unexpected": json_values})


CONTENT_TYPES = st.sampled_from(
    [JSON, None, JSON, "text/plain", "application/x-www-form-urlencoded"]
)
Body = tuple[str | None, bytes | None]  # Content-Type, body


def body_for(spec: dict[str, Any], operation: Operation) -> st.SearchStrategy[Body]:
    arbitrary: st.SearchStrategy[bytes | None] = (
        st.none()
        | st.binary(max_size=300)
        | json_values.map(lambda value: json.dumps(value).encode())
    )
    content = operation.spec.get("requestBody", {}).get("content", {})
    if JSON not in content:
        return st.tuples(CONTENT_TYPES, arbitrary)
    schema = content[JSON]["schema"]
    valid = conforming(spec, schema).map(lambda value: (JSON, json.dumps(value).encode()))
    invalid = misshapen(spec, schema).map(lambda value: json.dumps(value).encode())
    # A valid body a third of the time: it creates the state that the other operations meet.
    return st.one_of(valid, st.tuples(CONTENT_TYPES, invalid), st.tuples(CONTENT_TYPES, arbitrary))


def calls(spec: dict[str, Any], operation: Operation) -> st.SearchStrategy[Call]:
    parameters = [resolve(spec, p) for p in operation.spec.get("parameters", [])]
    in_path = {p["name"]: p["schema"] for p in parameters if p["in"] == "path"}
    in_query = {p["name"]: p["schema"] for p in parameters if p["in"] == "query"}

    def anything(schema: dict[str, Any]) -> st.SearchStrategy[str]:
        fitting = conforming(spec, schema).map(str)
        return st.one_of(fitting, fitting, huge_ints.map(str), url_text)

    def build(path_values: dict[str, str], query: dict[str, str], body: Body) -> Call:
        content_type, data = body
        path = operation.path
        for name, value in path_values.items():
            path = path.replace("{" + name + "}", quote(value, safe=""))
        headers = {} if content_type is None else {"Content-Type": content_type}
        return Call(path, query, headers, data)

    return st.builds(
        build,
        st.fixed_dictionaries({name: anything(schema) for name, schema in in_path.items()}),
        st.fixed_dictionaries(
            {},
            optional={name: anything(schema) for name, schema in in_query.items()}
            | {"junk": url_text},
        ),
        body_for(spec, operation),
    )


def check(service: Service, operation: Operation, call: Call) -> None:
    response = service.request(
        operation.method, call.path, params=call.params, headers=call.headers, data=call.body,
        allow_redirects=False,
    )  # fmt: skip
    what = f"{operation.method} {call} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code < 500, what
    if 400 <= response.status_code < 500:
        assert response.headers.get("content-type", "").startswith("application/json"), what
        body = response.json()
        assert isinstance(body, dict), what
        assert "detail" in body, what
    elif 200 <= response.status_code < 300:
        assert str(response.status_code) in operation.spec["responses"], f"undocumented: {what}"
        if response.status_code != 204:
            response.json()


def fuzzer(service: Service, spec: dict[str, Any], operation: Operation) -> Callable[[], None]:
    @FUZZ_SETTINGS
    @given(call=calls(spec, operation))
    def fuzz(call: Call) -> None:
        check(service, operation, call)

    result: Callable[[], None] = fuzz
    return result


def test_no_request_gets_a_5xx_or_a_non_json_4xx(service: Service) -> None:
    response = service.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    found = operations(spec)
    assert {(op.method, op.path) for op in found} == EXPECTED
    # Deletes last: every operation draws the same ids (one seed), so earlier deletes would
    # leave the later operations nothing but 404s.
    for operation in sorted(found, key=lambda op: op.method == "DELETE"):
        fuzzer(service, spec, operation)()
    assert service.get("/readyz").status_code == 200
