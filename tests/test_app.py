"""The HTTP API in-process: every route, every error shape, the body cap and the access log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

import deathstar
from deathstar import logs
from deathstar.app import create_app
from deathstar.config import Settings
from deathstar.deps import get_store
from deathstar.guard import MAX_BODY_BYTES, RequestGuard
from deathstar.logs import ACCESS_LOGGER, JsonFormatter
from deathstar.storage import TargetStore
from tests.api_checks import assert_deleted
from tests.conftest import CREATED, REVISION, assert_json_error, strict_json

JSON = {"content-type": "application/json"}


def create(client: TestClient, name: str, system: str = "Alderaan", **extra: Any) -> Any:
    response = client.post("/v1/targets", json={"name": name, "system": system, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def app_of(client: TestClient) -> FastAPI:
    app = client.app
    assert isinstance(app, FastAPI)
    return app


class BrokenStore(TargetStore):
    """A store whose every call fails: stands in for a damaged database."""

    def __init__(self) -> None:
        super().__init__(":memory:")

    def problem(self) -> str | None:
        return "the disk is on fire"

    def list(self, *, limit: int, offset: int) -> Any:
        raise RuntimeError("disk on fire")


@pytest.fixture
def broken_store(client: TestClient) -> Iterator[BrokenStore]:
    store = BrokenStore()
    app_of(client).dependency_overrides[get_store] = lambda: store
    yield store
    app_of(client).dependency_overrides.clear()
    store.close()


# --- ops endpoints -------------------------------------------------------------------------


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_store_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.usefixtures("broken_store")
def test_readyz_503_when_ping_fails(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "storage unavailable", "detail": "the disk is on fire"}


def test_readyz_503_when_store_closed(client: TestClient) -> None:
    store = TargetStore(":memory:")
    store.close()
    app_of(client).dependency_overrides[get_store] = lambda: store
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "storage unavailable"


def test_version_reports_package_and_build(client: TestClient) -> None:
    response = client.get("/version")
    assert response.status_code == 200
    assert response.json() == {
        "version": deathstar.__version__,
        "revision": REVISION,
        "created": CREATED,
    }


def test_version_defaults_to_unknown(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(database=tmp_path / "d.db"))) as client:
        body = client.get("/version").json()
    assert body["version"] == deathstar.__version__
    assert body["revision"] == "unknown"
    assert body["created"] == "unknown"


def test_create_app_without_settings_uses_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app()) as client:
        assert client.get("/version").json()["revision"] == "unknown"
        create(client, "Hoth")
    assert (tmp_path / Settings().database).is_file()


def test_openapi_lists_every_path(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["version"] == deathstar.__version__
    paths = spec["paths"]
    assert set(paths) == {
        "/healthz",
        "/readyz",
        "/version",
        "/v1/targets",
        "/v1/targets/{target_id}",
        "/v1/targets/{target_id}/fire",
    }
    assert set(paths["/v1/targets"]) == {"get", "post"}
    assert set(paths["/v1/targets/{target_id}"]) == {"get", "delete"}
    assert {"404", "409"} <= set(paths["/v1/targets/{target_id}/fire"]["post"]["responses"])


# --- targets -------------------------------------------------------------------------------


def test_create_returns_201_location_and_the_target(client: TestClient) -> None:
    response = client.post("/v1/targets", json={"name": "Alderaan", "system": "Alderaan"})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/targets/{body['id']}"
    assert body["name"] == "Alderaan"
    assert body["system"] == "Alderaan"
    assert body["shielded"] is False
    assert body["status"] == "active"
    assert body["destroyed_at"] is None
    assert body["created_at"].endswith("Z")
    assert client.get(response.headers["location"]).json() == body


def test_create_shielded(client: TestClient) -> None:
    body = create(client, "Scarif", "Abrion", shielded=True)
    assert body["shielded"] is True


def test_ids_are_distinct_and_increasing(client: TestClient) -> None:
    ids = [create(client, f"t{i}")["id"] for i in range(5)]
    assert ids == sorted(set(ids))


def test_duplicate_name_is_409(client: TestClient) -> None:
    create(client, "Yavin 4", "Yavin")
    response = client.post("/v1/targets", json={"name": "Yavin 4", "system": "elsewhere"})
    detail = assert_json_error(response, 409)
    assert "Yavin 4" in detail
    assert client.get("/v1/targets").json()["total"] == 1


def test_list_empty(client: TestClient) -> None:
    response = client.get("/v1/targets")
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0, "limit": 50, "offset": 0}


def test_list_paginates_by_id(client: TestClient) -> None:
    created = [create(client, f"target-{i}") for i in range(5)]
    ids = [t["id"] for t in created]

    page = client.get("/v1/targets", params={"limit": 2}).json()
    assert [t["id"] for t in page["items"]] == ids[:2]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 0)
    assert page["items"][0] == created[0]

    page = client.get("/v1/targets", params={"limit": 2, "offset": 2}).json()
    assert [t["id"] for t in page["items"]] == ids[2:4]

    page = client.get("/v1/targets", params={"limit": 2, "offset": 4}).json()
    assert [t["id"] for t in page["items"]] == ids[4:]

    page = client.get("/v1/targets", params={"offset": 5}).json()
    assert page["items"] == []
    assert page["total"] == 5

    page = client.get("/v1/targets").json()
    assert [t["id"] for t in page["items"]] == ids


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"limit": 1}, 1),
        ({"limit": 100}, 3),
        ({"offset": 0}, 3),
        ({"offset": 2**63 - 1}, 0),
    ],
)
def test_list_accepts_bounds(client: TestClient, params: dict[str, int], expected: int) -> None:
    for i in range(3):
        create(client, f"n{i}")
    response = client.get("/v1/targets", params=params)
    assert response.status_code == 200
    assert len(response.json()["items"]) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "-1"},
        {"limit": "abc"},
        {"limit": "1.5"},
        {"offset": "-1"},
        {"offset": str(2**63)},
        {"offset": "x"},
    ],
)
def test_list_rejects_bad_paging(client: TestClient, params: dict[str, str]) -> None:
    detail = assert_json_error(client.get("/v1/targets", params=params), 422)
    assert detail[0]["loc"] == ["query", next(iter(params))]


def test_get_one(client: TestClient) -> None:
    target = create(client, "Jedha", "Jedha")
    response = client.get(f"/v1/targets/{target['id']}")
    assert response.status_code == 200
    assert response.json() == target


def test_get_unknown_is_404(client: TestClient) -> None:
    detail = assert_json_error(client.get("/v1/targets/42"), 404)
    assert detail == "target 42 does not exist"


def test_delete_then_404(client: TestClient) -> None:
    target = create(client, "Dantooine")
    other = create(client, "Kessel")
    assert_deleted(client, target["id"])
    assert client.get(f"/v1/targets/{other['id']}").status_code == 200
    assert client.get("/v1/targets").json()["total"] == 1


def test_fire_destroys_once(client: TestClient) -> None:
    target = create(client, "Alderaan")
    response = client.post(f"/v1/targets/{target['id']}/fire")
    assert response.status_code == 200
    fired = response.json()
    assert fired["status"] == "destroyed"
    assert fired["destroyed_at"] is not None
    assert fired["destroyed_at"] >= fired["created_at"]
    assert {k: v for k, v in fired.items() if k not in ("status", "destroyed_at")} == {
        k: v for k, v in target.items() if k not in ("status", "destroyed_at")
    }
    assert client.get(f"/v1/targets/{target['id']}").json() == fired

    detail = assert_json_error(client.post(f"/v1/targets/{target['id']}/fire"), 409)
    assert "already destroyed" in detail
    assert client.get(f"/v1/targets/{target['id']}").json() == fired


def test_fire_shielded_is_409(client: TestClient) -> None:
    target = create(client, "Hoth", shielded=True)
    detail = assert_json_error(client.post(f"/v1/targets/{target['id']}/fire"), 409)
    assert "shielded" in detail
    assert client.get(f"/v1/targets/{target['id']}").json() == target


def test_fire_unknown_is_404(client: TestClient) -> None:
    detail = assert_json_error(client.post("/v1/targets/7/fire"), 404)
    assert "7" in detail


def test_largest_id_is_accepted(client: TestClient) -> None:
    assert_json_error(client.get(f"/v1/targets/{2**63 - 1}"), 404)


@pytest.mark.parametrize("target_id", ["0", "-1", str(2**63), str(10**40), "abc", "1.5", "1e3"])
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/v1/targets/{}"),
        ("DELETE", "/v1/targets/{}"),
        ("POST", "/v1/targets/{}/fire"),
    ],
)
def test_bad_ids_are_422(client: TestClient, method: str, template: str, target_id: str) -> None:
    create(client, "Bespin")
    detail = assert_json_error(client.request(method, template.format(target_id)), 422)
    assert detail[0]["loc"] == ["path", "target_id"]


# --- bad input -----------------------------------------------------------------------------


def test_invalid_json_is_422(client: TestClient) -> None:
    response = client.post("/v1/targets", content=b'{"name": "x", ', headers=JSON)
    detail = assert_json_error(response, 422)
    assert detail[0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "system": "y", "shielded": "yes"},
        {"name": "x", "system": "y", "shielded": "true"},
        {"name": "x", "system": "y", "shielded": 1},
        {"name": "x", "system": "y", "shielded": None},
        {"name": 5, "system": "y"},
        {"name": None, "system": "y"},
        {"name": "x", "system": ["y"]},
        {"name": "x"},
        {"system": "y"},
        {},
        [],
        "x",
        None,
    ],
)
def test_wrong_shapes_are_422(client: TestClient, body: Any) -> None:
    response = client.post("/v1/targets", content=json.dumps(body).encode(), headers=JSON)
    assert_json_error(response, 422)
    assert client.get("/v1/targets").json()["total"] == 0


def test_extra_field_is_422(client: TestClient) -> None:
    response = client.post("/v1/targets", json={"name": "x", "system": "y", "id": 3})
    detail = assert_json_error(response, 422)
    assert detail[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("blank", ["", " ", "   ", "\t\n", "\u00a0", "\u3000 \u2028"])
@pytest.mark.parametrize("field", ["name", "system"])
def test_blank_text_is_422(client: TestClient, field: str, blank: str) -> None:
    body = {"name": "x", "system": "y", field: blank}
    detail = assert_json_error(client.post("/v1/targets", json=body), 422)
    assert detail[0]["loc"] == ["body", field]


def test_name_length_limit(client: TestClient) -> None:
    assert client.post("/v1/targets", json={"name": "n" * 100, "system": "y"}).status_code == 201
    # 100 characters, not bytes: each of these is four bytes of UTF-8.
    assert client.post("/v1/targets", json={"name": "𝄞" * 100, "system": "y"}).status_code == 201
    detail = assert_json_error(
        client.post("/v1/targets", json={"name": "m" * 101, "system": "y"}), 422
    )
    assert detail[0]["type"] == "string_too_long"


def test_text_round_trips_unchanged(client: TestClient) -> None:
    name = " padded ünïcødé 🚀 'quote\" "
    target = create(client, name, "sys tem")
    assert target["name"] == name
    assert client.get(f"/v1/targets/{target['id']}").json()["system"] == "sys tem"


def test_lone_surrogate_is_422_json(client: TestClient) -> None:
    response = client.post("/v1/targets", content=b'{"name":"\\ud800","system":"x"}', headers=JSON)
    detail = assert_json_error(response, 422)
    assert detail[0]["loc"] == ["body", "name"]


def test_lone_surrogate_key_is_422_json(client: TestClient) -> None:
    raw = b'{"name":"a","system":"x","\\udfff":1}'
    assert_json_error(client.post("/v1/targets", content=raw, headers=JSON), 422)


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_echo_as_valid_json(client: TestClient, constant: bytes) -> None:
    # Python's json module accepts these tokens; the 422 that echoes them must stay JSON.
    raw = b'{"name":"a","system":"x","shielded":' + constant + b"}"
    detail = assert_json_error(client.post("/v1/targets", content=raw, headers=JSON), 422)
    assert detail[0]["loc"] == ["body", "shielded"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_json_body_without_json_content_type_is_415(
    client: TestClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/targets", content=b'{"name":"a","system":"x"}', headers=headers)
    assert "application/json" in assert_json_error(response, 415)
    assert client.get("/v1/targets").json()["total"] == 0


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/x+json"])
def test_json_content_types_are_accepted(client: TestClient, content_type: str) -> None:
    raw = b'{"name":"a","system":"x"}'
    response = client.post("/v1/targets", content=raw, headers={"content-type": content_type})
    assert response.status_code == 201, response.text


def padded_body(size: int) -> bytes:
    """A valid create request of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    body = b'{"name":"padded","system":"x"}'
    return body + b" " * (size - len(body))


def chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_body_at_limit_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/targets", content=padded_body(MAX_BODY_BYTES), headers=JSON)
    assert response.status_code == 201


def test_chunked_body_at_limit_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/targets", content=chunks(padded_body(MAX_BODY_BYTES)), headers=JSON)
    assert response.status_code == 201
    assert "content-length" not in response.request.headers


def test_body_over_limit_is_413(client: TestClient) -> None:
    response = client.post("/v1/targets", content=padded_body(MAX_BODY_BYTES + 1), headers=JSON)
    detail = assert_json_error(response, 413)
    assert str(MAX_BODY_BYTES) in detail
    assert client.get("/v1/targets").json()["total"] == 0


def test_chunked_body_over_limit_is_413(client: TestClient) -> None:
    body = padded_body(MAX_BODY_BYTES + 1)
    response = client.post("/v1/targets", content=chunks(body), headers=JSON)
    assert response.request.headers["transfer-encoding"] == "chunked"
    detail = assert_json_error(response, 413)
    assert str(MAX_BODY_BYTES) in detail
    assert client.get("/v1/targets").json()["total"] == 0


def test_declared_length_over_limit_is_413_before_routing(client: TestClient) -> None:
    # Even a route that never reads a body refuses a declared oversized one.
    response = client.request("GET", "/healthz", content=b"x" * (MAX_BODY_BYTES + 1))
    assert_json_error(response, 413)


@pytest.mark.parametrize(("raw", "expected"), [(b"12", 12), (b"abc", 0), (b"", 0)])
def test_declared_length_parsing(raw: bytes, expected: int) -> None:
    scope: dict[str, Any] = {"headers": [(b"host", b"x"), (b"content-length", raw)]}
    assert RequestGuard._declared_length(scope) == expected


def test_declared_length_absent() -> None:
    assert RequestGuard._declared_length({"headers": []}) == 0


def access_lines(caplog: pytest.LogCaptureFixture, *fields: str) -> list[tuple[Any, ...]]:
    """The named ``extra`` fields of every access log record, in order."""
    records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    return [tuple(getattr(r, field) for field in fields) for r in records]


def drive_guard(
    app: Callable[[Scope, Receive, Send], Awaitable[None]],
    messages: list[Message],
    max_body: int = 10,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> list[Message]:
    """Run RequestGuard around a bare ASGI app, feeding it ``messages``; what it sends back."""
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/raw",
        "headers": headers or [],
        "client": ("127.0.0.9", 5000),
    }
    pending = list(messages)
    sent: list[Message] = []

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(RequestGuard(app, max_body=max_body)(scope, receive, send))
    return sent


async def read_all_then_answer(_scope: Scope, receive: Receive, send: Send) -> None:
    """Read the body to its end, answer 200 with its length, then see the disconnect."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})
    assert (await receive())["type"] == "http.disconnect"


def body_chunks(*chunks: bytes) -> list[Message]:
    last = len(chunks) - 1
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < last}
        for i, chunk in enumerate(chunks)
    ]
    return [*messages, {"type": "http.disconnect"}]


def test_guard_passes_chunked_body_within_limit(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        sent = drive_guard(read_all_then_answer, body_chunks(b"12345", b"", b"67890"))
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"10"
    assert access_lines(caplog, "method", "path", "status", "client") == [
        ("POST", "/raw", 200, "127.0.0.9")
    ]


def test_guard_refuses_chunked_body_over_limit_for_any_app(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Without FastAPI's body parsing in between, the guard itself answers the 413.
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        sent = drive_guard(read_all_then_answer, body_chunks(b"123456", b"78901"))
    assert sent[0]["status"] == 413
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert strict_json(sent[1]["body"]) == {"detail": "request body exceeds 10 bytes"}
    assert access_lines(caplog, "status") == [(413,)]


def test_not_modified_has_no_body(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/cached")
    async def cached() -> None:
        raise HTTPException(status_code=304, headers={"etag": '"v1"'})

    with TestClient(app) as client:
        response = client.get("/cached")
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"v1"'


def test_unknown_route_is_404_json(client: TestClient) -> None:
    assert assert_json_error(client.get("/nope"), 404) == "Not Found"


def test_wrong_method_is_405_json(client: TestClient) -> None:
    response = client.put("/v1/targets")
    assert assert_json_error(response, 405) == "Method Not Allowed"
    # Every method of every route on the path, not only those of the first (Starlette's).
    assert response.headers.get_list("allow") == ["GET, POST"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/v1/targets/1", "GET, DELETE"),
        ("GET", "/v1/targets/1/fire", "POST"),
        ("DELETE", "/healthz", "GET"),
    ],
)
def test_405_allow_lists_the_path_s_methods(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert_json_error(response, 405)
    assert response.headers["allow"] == allowed


def test_unexpected_error_is_500_json(
    lenient_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    store = BrokenStore()
    app_of(lenient_client).dependency_overrides[get_store] = lambda: store
    with caplog.at_level(logging.INFO):
        response = lenient_client.get("/v1/targets")
    assert assert_json_error(response, 500) == "internal server error"
    assert "disk on fire" not in response.text
    errors = [r for r in caplog.records if r.name == "deathstar" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert access_lines(caplog, "path", "status") == [("/v1/targets", 500)]


# --- logging -------------------------------------------------------------------------------


def test_one_access_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.get("/healthz")
        client.post("/v1/targets", json={"name": "a", "system": "b"})
        client.post("/v1/targets", json={"name": "a", "system": "b"})
        client.get("/v1/targets/abc")
        client.post("/v1/targets", content=padded_body(MAX_BODY_BYTES + 1), headers=JSON)
    assert access_lines(caplog, "method", "path", "status") == [
        ("GET", "/healthz", 200),
        ("POST", "/v1/targets", 201),
        ("POST", "/v1/targets", 409),
        ("GET", "/v1/targets/abc", 422),
        ("POST", "/v1/targets", 413),
    ]
    for record in [r for r in caplog.records if r.name == ACCESS_LOGGER]:
        assert record.getMessage() == "request"
        assert record.levelno == logging.INFO
    for duration, peer in access_lines(caplog, "duration_ms", "client"):
        assert isinstance(duration, float)
        assert duration >= 0
        assert peer == "testclient"


def format_record(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = strict_json(line)
    assert isinstance(entry, dict)
    return entry


def test_json_formatter_fields() -> None:
    record = logging.makeLogRecord(
        {
            "name": ACCESS_LOGGER,
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "hello %s",
            "args": ("wörld",),
            "created": 0.0,
            "method": "GET",
            "status": 200,
            "duration_ms": 1.5,
            "color_message": "\x1b[1mhello\x1b[0m",
            "thing": Path("/x"),
        }
    )
    entry = format_record(record)
    assert entry == {
        "ts": "1970-01-01T00:00:00.000Z",
        "level": "info",
        "logger": ACCESS_LOGGER,
        "msg": "hello wörld",
        "method": "GET",
        "status": 200,
        "duration_ms": 1.5,
        "thing": "/x",
    }


def explode() -> None:
    raise ValueError("boom\nsecond line")


def test_json_formatter_exception_is_one_line() -> None:
    try:
        explode()
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("deathstar", logging.ERROR, __file__, 1, "failed", None, exc_info)
    entry = format_record(record)
    assert entry["level"] == "error"
    assert entry["msg"] == "failed"
    assert entry["exc"].startswith("Traceback")
    assert "ValueError: boom\nsecond line" in entry["exc"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    uvicorn_saved = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error")
    }
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, (handlers, propagate) in uvicorn_saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).propagate = propagate


@pytest.mark.usefixtures("restore_logging")
def test_configure_routes_everything_to_json_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    logging.getLogger("uvicorn").addHandler(logging.NullHandler())
    logging.getLogger("uvicorn.error").propagate = False

    logs.configure("warning")

    root = logging.getLogger()
    assert root.level == logging.WARNING
    assert len(root.handlers) == 1
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
    for name in ("uvicorn", "uvicorn.error"):
        assert logging.getLogger(name).handlers == []
        assert logging.getLogger(name).propagate is True

    logging.getLogger("uvicorn.error").warning("started on %d", 8080)
    logging.getLogger(ACCESS_LOGGER).info("request", extra={"status": 200})  # below warning
    logging.getLogger(ACCESS_LOGGER).error("request", extra={"status": 500})
    lines = stderr.getvalue().splitlines()
    assert [strict_json(line)["msg"] for line in lines] == ["started on 8080", "request"]
    assert strict_json(lines[0])["logger"] == "uvicorn.error"
    assert strict_json(lines[1])["status"] == 500
