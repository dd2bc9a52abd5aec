"""Property-based runs against the ASGI app: arbitrary requests never get a 5xx or a non-JSON
body, and every valid create request succeeds (or is a duplicate)."""

from __future__ import annotations

import json
import math
import unicodedata
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import strict_json

RUNS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Every code point, lone surrogates included: json.dumps sends them as \udXXX escapes.
any_char = st.characters(exclude_categories=())
any_text = st.text(any_char, max_size=40)

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    # Python's json writes and reads these though JSON has no such tokens.
    | st.sampled_from([math.nan, math.inf, -math.inf])
    | any_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)

field_names = st.sampled_from(["name", "system", "shielded", "id", "status"]) | any_text
target_like = st.fixed_dictionaries(
    {"name": json_values | any_text, "system": json_values | any_text},
    optional={"shielded": json_values | st.booleans()},
)
bodies = st.one_of(
    target_like.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(field_names, json_values, max_size=5).map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
content_types = st.sampled_from(
    ["application/json", "application/merge-patch+json", "text/plain", "", "application/json; x"]
)


def encode(text: str) -> str:
    """Percent-encode every byte, so that even lone surrogates survive the trip into a URL."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


path_ids = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-5, max_value=5).map(str),
    st.just(str(2**63 - 1)),
    st.just(str(2**63)),
    any_text.map(encode),
    st.text(st.sampled_from("0123456789-+_. e"), max_size=25).map(encode),
)
query_values = st.one_of(st.integers().map(str), any_text.map(encode))
queries = st.dictionaries(
    st.sampled_from(["limit", "offset"]) | any_text.map(encode), query_values, max_size=3
).map(lambda q: "&".join(f"{k}={v}" for k, v in q.items()))


def check_response(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if not response.content:
        return
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = strict_json(response.content)
    if 400 <= response.status_code < 500:
        assert isinstance(body, dict)
        assert "detail" in body


def seed(client: TestClient) -> None:
    """A few targets, so that small ids hit real rows: some shielded, some fireable."""
    for i in range(1, 6):
        body = {"name": f"seed-{i}", "system": "s", "shielded": i % 2 == 0}
        assert client.post("/v1/targets", json=body).status_code == 201


def test_arbitrary_create_bodies(client: TestClient) -> None:
    seed(client)
    statuses: set[int] = set()

    @RUNS
    @given(body=bodies, content_type=content_types)
    def run(body: bytes, content_type: str) -> None:
        headers = {"content-type": content_type} if content_type else {}
        response = client.post("/v1/targets", content=body, headers=headers)
        check_response(response)
        statuses.add(response.status_code)

    run()
    assert {201, 422} <= statuses, statuses


def test_arbitrary_target_ids(client: TestClient) -> None:
    seed(client)
    statuses: set[int] = set()

    @RUNS
    @given(
        target_id=path_ids,
        route=st.sampled_from(
            [
                ("GET", "/v1/targets/{}"),
                ("DELETE", "/v1/targets/{}"),
                ("POST", "/v1/targets/{}/fire"),
            ]
        ),
    )
    def run(target_id: str, route: tuple[str, str]) -> None:
        method, template = route
        response = client.request(method, template.format(target_id), follow_redirects=False)
        check_response(response)
        statuses.add(response.status_code)

    run()
    assert {200, 404, 422} <= statuses, statuses


def test_arbitrary_list_queries(client: TestClient) -> None:
    seed(client)
    statuses: set[int] = set()

    @RUNS
    @given(query=queries)
    def run(query: str) -> None:
        response = client.get(f"/v1/targets?{query}")
        check_response(response)
        statuses.add(response.status_code)
        if response.status_code == 200:
            page = response.json()
            assert page["total"] == 5
            assert len(page["items"]) == max(0, min(page["limit"], 5 - page["offset"]))

    run()
    assert {200, 422} <= statuses, statuses


def has_visible(text: str) -> bool:
    return any(not c.isspace() for c in text)


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# No control, format, private-use or surrogate code points: those are refused.
printable = st.characters(exclude_categories=("Cc", "Cf", "Co", "Cs"))
valid_text = st.text(printable, min_size=1, max_size=100).filter(
    lambda text: has_visible(nfc(text)) and len(nfc(text)) <= 100
)


def test_valid_targets_are_created(client: TestClient) -> None:
    seen: dict[str, dict[str, Any]] = {}

    @RUNS
    @given(
        name=valid_text | st.sampled_from(["Alderaan", "Hoth"]),
        system=valid_text,
        shielded=st.booleans(),
    )
    def run(name: str, system: str, shielded: bool) -> None:
        body = {"name": name, "system": system, "shielded": shielded}
        response = client.post("/v1/targets", json=body)
        check_response(response)
        if nfc(name) in seen:  # names are stored in NFC: another spelling is a duplicate
            assert response.status_code == 409, response.text
            return
        assert response.status_code == 201, response.text
        created = response.json()
        stored = {"name": nfc(name), "system": nfc(system), "shielded": shielded}
        assert {k: created[k] for k in body} == stored
        assert created["status"] == "active"
        fetched = client.get(response.headers["location"])
        assert fetched.json() == created
        seen[nfc(name)] = created

    run()
    listing = client.get("/v1/targets", params={"limit": 100}).json()
    assert listing["total"] == len(seen)
    assert {t["name"] for t in listing["items"]} <= set(seen)


whitespace = st.text(
    st.sampled_from(
        " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
    ),
    max_size=20,
)


def test_blank_or_too_long_names_are_refused(client: TestClient) -> None:
    @RUNS
    @given(name=whitespace | st.text(min_size=101, max_size=300).filter(has_visible))
    def run(name: str) -> None:
        response = client.post("/v1/targets", json={"name": name, "system": "s"})
        check_response(response)
        assert response.status_code == 422, response.text

    run()
    assert client.get("/v1/targets").json()["total"] == 0
