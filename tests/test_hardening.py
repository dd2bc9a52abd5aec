"""Hostile and failing conditions in-process: deep JSON, ambiguous framing, a busy, full,
read-only or vanished database, look-alike names, and the OpenAPI contract."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import unicodedata
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from deathstar.app import create_app
from deathstar.config import Settings
from deathstar.deps import get_store
from deathstar.guard import MAX_JSON_DEPTH, json_too_deep
from deathstar.logs import RateLimitFilter
from deathstar.models import TargetIn, text_pattern
from deathstar.storage import TargetStore
from tests.conftest import assert_json_error
from tests.test_app import JSON, app_of, create, drive_guard, read_all_then_answer

# --- deep nesting --------------------------------------------------------------------------


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def reference_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, by an explicit stack."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


json_trees: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.integers() | st.text(st.sampled_from('ab"\\[]{}'), max_size=5),
    lambda children: (
        st.lists(children, max_size=2)
        | st.dictionaries(st.text(st.sampled_from('k"\\[{'), max_size=3), children, max_size=2)
    ),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(tree=json_trees, limit=st.integers(min_value=0, max_value=6))
def test_depth_scan_agrees_with_parsing(tree: Any, limit: int) -> None:
    raw = json.dumps(tree).encode()
    assert json_too_deep(raw, limit) == (reference_depth(tree) > limit)


SHARED_CLIENT = [HealthCheck.function_scoped_fixture]


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=SHARED_CLIENT)
@given(
    depth=st.integers(min_value=MAX_JSON_DEPTH + 1, max_value=5000),
    kind=st.sampled_from([("[", "]"), ('{"k":', "}")]),
)
def test_deep_bodies_are_400_not_500(client: TestClient, depth: int, kind: tuple[str, str]) -> None:
    body = '{"name":"a","system":"b","x":' + nested(depth - 1, *kind) + "}"
    response = client.post("/v1/targets", content=body.encode(), headers=JSON)
    detail = assert_json_error(response, 400)
    assert str(MAX_JSON_DEPTH) in detail
    assert response.headers["connection"] == "close"
    assert len(response.content) < 200  # no echo of the input


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=SHARED_CLIENT)
@given(depth=st.integers(min_value=1, max_value=MAX_JSON_DEPTH - 1))
def test_nesting_within_the_cap_is_a_plain_422(client: TestClient, depth: int) -> None:
    body = '{"name":"a","system":"b","x":' + nested(depth) + "}"
    response = client.post("/v1/targets", content=body.encode(), headers=JSON)
    assert assert_json_error(response, 422)[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-8-sig"])
def test_a_deep_body_in_another_encoding_the_parser_reads_is_400(
    client: TestClient, encoding: str
) -> None:
    # json.loads takes UTF-16 and UTF-32 too; U+2200 is 00 22 in UTF-16: a byte-wise scan took
    # it for a quote, and the deep array after it for the inside of a string.
    text = '{"name": "\u2200", "x": ' + nested(MAX_JSON_DEPTH + 1) + ', "system": "\u2200"}'
    body = text.encode(encoding)
    assert json_too_deep(body)
    response = client.post("/v1/targets", content=body, headers=JSON)
    assert str(MAX_JSON_DEPTH) in assert_json_error(response, 400)
    within = '{"name": "\u2200\u22ff", "system": "' + "[" * 90 + '"}'
    assert not json_too_deep(within.encode(encoding))


def test_brackets_inside_strings_do_not_count(client: TestClient) -> None:
    name = "[" * 90 + '\\"{'
    body = json.dumps({"name": name, "system": "]" * 90})
    response = client.post("/v1/targets", content=body.encode(), headers=JSON)
    assert response.status_code == 201, response.text


def test_refused_input_is_not_echoed_at_length(client: TestClient) -> None:
    response = client.post("/v1/targets", json={"name": "x" * 5000, "system": ["y"] * 5000})
    detail = assert_json_error(response, 422)
    assert len(response.content) < 2000
    assert {tuple(d["loc"]) for d in detail} == {("body", "name"), ("body", "system")}
    assert all(len(str(d.get("input", ""))) <= 100 for d in detail)


# --- framing -------------------------------------------------------------------------------


def test_content_length_with_transfer_encoding_is_400() -> None:
    sent = drive_guard(
        read_all_then_answer,
        [{"type": "http.request", "body": b"12", "more_body": False}],
        headers=[(b"content-length", b"2"), (b"transfer-encoding", b"chunked")],
    )
    assert sent[0]["status"] == 400
    assert (b"connection", b"close") in sent[0]["headers"]
    assert "Transfer-Encoding" in json.loads(sent[1]["body"])["detail"]


def test_chunked_body_over_limit_closes_the_connection(client: TestClient) -> None:
    body = (b" " * 4096 for _ in range(20))
    response = client.post("/v1/targets", content=body, headers=JSON)
    assert_json_error(response, 413)
    assert response.headers["connection"] == "close"


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "\u200b",
        "a\u200bb",
        "evil\u202etxt",
        "tab\there",
        "nul\x00",
        "bell\x07",
        "\ue000",
        "\U000e0001",
    ],
)
def test_invisible_and_control_characters_are_422(client: TestClient, name: str) -> None:
    for body in ({"name": name, "system": "s"}, {"name": "n", "system": name}):
        detail = assert_json_error(client.post("/v1/targets", json=body), 422)
        assert "U+" in detail[0]["msg"]
    assert client.get("/v1/targets").json()["total"] == 0


def test_names_are_stored_in_nfc_and_duplicates_found_after(client: TestClient) -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    target = create(client, decomposed, "Ce\u0301ti")
    assert (target["name"], target["system"]) == (composed, "C\u00e9ti")
    detail = assert_json_error(
        client.post("/v1/targets", json={"name": composed, "system": "s"}), 409
    )
    assert composed in detail
    assert client.get("/v1/targets").json()["total"] == 1


# --- storage failures ----------------------------------------------------------------------


def use_store(client: TestClient, store: TargetStore) -> None:
    app_of(client).dependency_overrides[get_store] = lambda: store


@pytest.fixture
def db(settings: Settings) -> Path:
    return settings.database


@pytest.fixture
def locked(db: Path, client: TestClient) -> Iterator[sqlite3.Connection]:
    """Another connection holding the database's write lock, as another process would."""
    assert client.get("/healthz").status_code == 200  # the app has created the file
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN EXCLUSIVE")
        yield other
        other.execute("ROLLBACK")


def test_busy_database_is_503_with_retry_after(
    client: TestClient, db: Path, locked: sqlite3.Connection
) -> None:
    store = TargetStore(db, busy_timeout=0.05)
    use_store(client, store)
    try:
        response = client.post("/v1/targets", json={"name": "a", "system": "b"})
        assert "busy" in assert_json_error(response, 503)
        assert response.headers["retry-after"] == "1"
        assert client.get("/healthz").status_code == 200
        assert client.get("/v1/targets").status_code == 200  # readers do not wait (WAL)
        assert client.get("/readyz").status_code == 503
        locked.execute("ROLLBACK")
        assert client.post("/v1/targets", json={"name": "a", "system": "b"}).status_code == 201
        assert client.get("/readyz").status_code == 200
        locked.execute("BEGIN")
    finally:
        store.close()


class FullStore(TargetStore):
    """Every connection may not grow the file: SQLite answers SQLITE_FULL, as on a full disk."""

    def _open(self, busy_ms: int | None = None) -> sqlite3.Connection:
        conn = super()._open(busy_ms)
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count={pages}")
        return conn


class ReadOnlyStore(TargetStore):
    def _open(self, busy_ms: int | None = None) -> sqlite3.Connection:
        uri = f"file:{self._path}?mode=ro"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


@pytest.mark.parametrize(
    ("store_class", "reason"), [(FullStore, "full"), (ReadOnlyStore, "read-only")]
)
def test_unwritable_database_is_503_and_not_ready(
    client: TestClient, db: Path, store_class: type[TargetStore], reason: str
) -> None:
    kept = create(client, "kept")
    store = store_class(db)
    use_store(client, store)
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert reason in response.json()["detail"]
        refused = 0
        for i in range(200):  # a full file still takes rows while its last page has room
            response = client.post("/v1/targets", json={"name": f"n{i:03}" * 20, "system": "s"})
            if response.status_code != 201:
                assert reason in assert_json_error(response, 503)
                assert "retry-after" not in response.headers
                refused += 1
        assert refused
        assert client.get(f"/v1/targets/{kept['id']}").status_code == 200
    finally:
        store.close()


@pytest.mark.parametrize(("replace", "reason"), [(False, "gone"), (True, "replaced")])
def test_deleted_or_replaced_file_is_503_and_not_ready(
    client: TestClient, db: Path, replace: bool, reason: str
) -> None:
    create(client, "kept")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if replace:
        TargetStore(db).close()
    response = client.post("/v1/targets", json={"name": "lost", "system": "s"})
    assert reason in assert_json_error(response, 503)
    assert reason in client.get("/readyz").json()["detail"]


def test_list_sees_commits_of_other_connections(client: TestClient, db: Path) -> None:
    create(client, "first")
    assert client.get("/v1/targets").json()["total"] == 1
    assert client.get("/v1/targets").json()["total"] == 1  # the cached page
    other = TargetStore(db)
    try:
        other.create("second", "s", shielded=False)
        listing = client.get("/v1/targets").json()
        assert [t["name"] for t in listing["items"]] == ["first", "second"]
        other.fire(listing["items"][0]["id"])
        assert client.get("/v1/targets").json()["items"][0]["status"] == "destroyed"
    finally:
        other.close()


def test_closed_store_is_503(client: TestClient) -> None:
    store = TargetStore(":memory:")
    store.close()
    use_store(client, store)
    assert "closed" in assert_json_error(client.get("/v1/targets/1"), 503)


# --- the contract --------------------------------------------------------------------------


def test_every_operation_documents_its_errors(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert {"400", "413", "503"} <= set(operation["responses"]), (method, path)
    assert "415" in paths["/v1/targets"]["post"]["responses"]
    assert "422" in paths["/v1/targets"]["post"]["responses"]


def test_undecodable_json_is_a_documented_400(client: TestClient) -> None:
    response = client.post("/v1/targets", content=b'{"name": "\xff"}', headers=JSON)
    assert_json_error(response, 400)


# --- log flooding --------------------------------------------------------------------------


def test_rate_limit_filter_passes_one_per_interval_and_counts_the_rest() -> None:
    clock = [0.0]
    limiter = RateLimitFilter(interval=10.0)
    limiter_time = pytest.MonkeyPatch()
    limiter_time.setattr("deathstar.logs.time.monotonic", lambda: clock[0])
    try:

        def passes(msg: str) -> logging.LogRecord | None:
            record = logging.makeLogRecord({"msg": msg})
            return record if limiter.filter(record) else None

        assert passes("socket.accept() out of system resource\nsocket: <a>") is not None
        assert [
            passes("socket.accept() out of system resource\nsocket: <b>") for _ in range(5)
        ] == [None] * 5
        assert passes("another message") is not None
        clock[0] = 10.5
        record = passes("socket.accept() out of system resource")
        assert record is not None
        assert getattr(record, "suppressed", None) == 5
        limiter.MAX_KEYS = 2
        assert passes("third") is not None  # the table starts over rather than grow
        assert passes("another message") is not None
    finally:
        limiter_time.undo()


def test_app_has_no_store_before_startup(settings: Settings) -> None:
    app = create_app(settings)
    assert isinstance(app, FastAPI)
    assert not hasattr(app.state, "store")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12))
def test_documented_pattern_states_what_is_accepted(text: str) -> None:
    try:
        TargetIn(name=text, system="s")
    except ValidationError:
        accepted = False
    else:
        accepted = True
    assert accepted == bool(re.search(text_pattern(), unicodedata.normalize("NFC", text)))


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("Alderaan", True),
        ("  x  ", True),
        ("   ", False),
        ("ok\nno", False),  # a newline is a control character
        ("a\nb\u202e", False),  # refused characters after a newline are still seen
        ("tail\U0010fffd", False),  # private use, plane 16: the end of the class
        ("bom\ufeff", False),  # format (Cf)
        ("\u00e9t\u00e9", True),
    ],
)
def test_documented_pattern_on_the_edges(text: str, matches: bool) -> None:
    assert bool(re.search(text_pattern(), text)) == matches


def test_the_openapi_document_states_the_pattern_for_both_texts(client: TestClient) -> None:
    properties = client.get("/openapi.json").json()["components"]["schemas"]["TargetIn"][
        "properties"
    ]
    for name in ("name", "system"):
        assert properties[name]["pattern"] == text_pattern()
        assert properties[name]["maxLength"] == 100
