"""What every answer of the API must be, shared by the in-process and the over-the-wire tests."""

from __future__ import annotations

import json
from typing import Any


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes | str) -> Any:
    """Parse as RFC 8259 JSON: unlike ``json.loads`` refuse NaN, Infinity and -Infinity."""
    return json.loads(raw, parse_constant=_refuse_constant)


def assert_json_error(response: Any, status: int) -> Any:
    """The response has ``status``, a JSON content type and a JSON object with ``detail``."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = strict_json(response.content)
    assert isinstance(body, dict), body
    assert "detail" in body, body
    return body["detail"]


def assert_deleted(http: Any, target_id: int) -> None:
    """DELETE answers 204 with no body; after it the target is a JSON 404 everywhere."""
    deleted = http.delete(f"/v1/targets/{target_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_json_error(http.get(f"/v1/targets/{target_id}"), 404)
    assert_json_error(http.delete(f"/v1/targets/{target_id}"), 404)
    assert_json_error(http.post(f"/v1/targets/{target_id}/fire"), 404)
