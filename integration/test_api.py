"""The HTTP API of the running image, through 127.0.0.1 and the mapped port.

All tests here share one container (the session ``service``); each uses target names of its
own, so the order they run in does not matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from containers import Service

from harness.image.records import ImageRecord
from tests.api_checks import assert_deleted, assert_json_error

LIMIT = 64 * 1024
LABEL = "org.opencontainers.image."
UNKNOWN_ID = 2**62  # a valid id that no test creates


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create(service: Service, name: str, system: str = "Alderaan", **extra: Any) -> dict[str, Any]:
    response = service.post("/v1/targets", json={"name": name, "system": system, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_liveness_and_readiness(service: Service) -> None:
    healthz = service.get("/healthz")
    assert healthz.status_code == 200
    assert healthz.json() == {"status": "ok"}
    readyz = service.get("/readyz")
    assert readyz.status_code == 200
    assert readyz.json() == {"status": "ready"}


PROXIES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
CLOSED = "http://127.0.0.1:9"  # a closed port on the loopback: a request through it fails


def test_the_tests_http_session_ignores_a_proxy_in_the_environment(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in PROXIES:
        monkeypatch.setenv(name, CLOSED)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert service.get("/healthz").status_code == 200


def test_readiness_probes_do_not_go_through_a_proxy(service: Service) -> None:
    # testcontainers probes with urllib, whose opener reads the proxies once per process: so a
    # process that starts with them, as everything does on a machine behind a proxy.
    probe = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).status)"
    done = subprocess.run(
        [sys.executable, "-c", probe, service.url("/readyz")],
        env={**os.environ, **dict.fromkeys(PROXIES, CLOSED)},
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.stdout.strip() == "200", done.stderr[-2000:]


def test_version_is_the_record_and_the_labels(
    service: Service, record: ImageRecord, image_attrs: dict[str, Any]
) -> None:
    labels = image_attrs["Config"]["Labels"]
    assert labels[LABEL + "revision"] == record.revision
    response = service.get("/version")
    assert response.status_code == 200
    assert response.json() == {
        "version": record.version,
        "revision": labels[LABEL + "revision"],
        "created": labels[LABEL + "created"],
    }


def test_targets_flow(service: Service) -> None:
    name = unique("alderaan")
    created = service.post("/v1/targets", json={"name": name, "system": "Alderaan"})
    assert created.status_code == 201, created.text
    target = created.json()
    assert created.headers["Location"] == f"/v1/targets/{target['id']}"
    assert target["name"] == name
    assert target["system"] == "Alderaan"
    assert target["shielded"] is False
    assert target["status"] == "active"
    assert target["destroyed_at"] is None

    fetched = service.get(created.headers["Location"])
    assert fetched.status_code == 200
    assert fetched.json() == target

    fired = service.post(f"/v1/targets/{target['id']}/fire")
    assert fired.status_code == 200, fired.text
    assert fired.json()["status"] == "destroyed"
    assert fired.json()["destroyed_at"] is not None
    assert service.get(f"/v1/targets/{target['id']}").json() == fired.json()
    again = assert_json_error(service.post(f"/v1/targets/{target['id']}/fire"), 409)
    assert "already destroyed" in again

    duplicate = service.post("/v1/targets", json={"name": name, "system": "Hoth"})
    assert_json_error(duplicate, 409)

    shielded = create(service, unique("scarif"), "Scarif", shielded=True)
    assert shielded["shielded"] is True
    refused = assert_json_error(service.post(f"/v1/targets/{shielded['id']}/fire"), 409)
    assert "shielded" in refused
    assert service.get(f"/v1/targets/{shielded['id']}").json()["status"] == "active"

    assert_deleted(service, target["id"])


def test_list_pages_through_every_target_once(service: Service) -> None:
    mine = [create(service, unique(f"page{i}"))["id"] for i in range(5)]
    seen: list[int] = []
    offset = 0
    total = None
    for _ in range(1000):  # bounded; the container holds far fewer than 2000 targets
        page = service.get("/v1/targets", params={"limit": 2, "offset": offset})
        assert page.status_code == 200, page.text
        body = page.json()
        assert (body["limit"], body["offset"]) == (2, offset)
        assert len(body["items"]) <= 2
        total = body["total"] if total is None else total
        assert body["total"] == total, "no other test writes while this one pages"
        seen += [item["id"] for item in body["items"]]
        offset += 2
        if offset >= total:
            break
    assert seen == sorted(set(seen)), "pages overlap or are out of order"
    assert len(seen) == total
    assert set(mine) <= set(seen)
    past_the_end = service.get("/v1/targets", params={"limit": 2, "offset": total})
    assert past_the_end.json()["items"] == []
    default = service.get("/v1/targets").json()
    assert default["limit"] == 50
    assert default["offset"] == 0


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "ten"}, {"offset": 2**63}]
)
def test_list_refuses_bad_paging(service: Service, params: dict[str, Any]) -> None:
    assert_json_error(service.get("/v1/targets", params=params), 422)


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "x", ',
        b"not json at all",
        b"",
        b'{"name": "x", "system": "y"} trailing',
    ],
)
def test_invalid_json_is_422(service: Service, body: bytes) -> None:
    response = service.post("/v1/targets", data=body, headers={"Content-Type": "application/json"})
    assert_json_error(response, 422)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x"},
        {"name": "", "system": "y"},
        {"name": " ", "system": "y"},
        {"name": "x" * 101, "system": "y"},
        {"name": "x", "system": "y", "shielded": "yes"},
        {"name": "x", "system": "y", "extra": 1},
        {"name": 1, "system": "y"},
        ["name", "system"],
    ],
)
def test_invalid_target_is_422(service: Service, body: Any) -> None:
    assert_json_error(service.post("/v1/targets", json=body), 422)


def _sized_body(size: int) -> bytes:
    """A JSON target of exactly ``size`` bytes (a name far too long, so at most a 422)."""
    shell = json.dumps({"name": "", "system": "Hoth"}).encode()
    body = shell.replace(b'""', b'"' + b"x" * (size - len(shell)) + b'"', 1)
    assert len(body) == size
    return body


def _chunks(body: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_over_64_kib_is_413(service: Service, framing: str) -> None:
    body = _sized_body(LIMIT + 1)
    data: bytes | Iterator[bytes] = body if framing == "content-length" else _chunks(body)
    headers = {"Content-Type": "application/json"}
    response = service.post("/v1/targets", data=data, headers=headers)
    detail = assert_json_error(response, 413)
    assert str(LIMIT) in detail
    at_limit = service.post("/v1/targets", data=_sized_body(LIMIT), headers=headers)
    assert_json_error(at_limit, 422)  # 64 KiB exactly is allowed in; the name is too long
    assert service.get("/healthz").status_code == 200  # and the connection pool still works


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/targets/{UNKNOWN_ID}"),
        ("DELETE", f"/v1/targets/{UNKNOWN_ID}"),
        ("POST", f"/v1/targets/{UNKNOWN_ID}/fire"),
        ("GET", "/no/such/route"),
    ],
)
def test_unknown_is_404_json(service: Service, method: str, path: str) -> None:
    assert_json_error(service.request(method, path), 404)


def test_wrong_method_is_405_json(service: Service) -> None:
    assert_json_error(service.request("PUT", "/v1/targets"), 405)
