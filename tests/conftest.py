"""Shared fixtures and helpers for the service tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from deathstar.app import create_app
from deathstar.config import Settings

REVISION = "0123456789abcdef0123456789abcdef01234567"
CREATED = "2026-01-02T03:04:05Z"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(raw: bytes | str) -> Any:
    """Parse as RFC 8259 JSON: unlike ``json.loads`` refuse NaN, Infinity and -Infinity."""
    return json.loads(raw, parse_constant=_refuse_constant)


def assert_json_error(response: Any, status: int) -> Any:
    """The response has ``status``, a JSON content type and a JSON object with ``detail``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = strict_json(response.content)
    assert isinstance(body, dict)
    assert "detail" in body
    return body["detail"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database=tmp_path / "t.db", revision=REVISION, created=CREATED)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def lenient_client(settings: Settings) -> Iterator[TestClient]:
    """A client that hands back the 500 answer instead of re-raising the server's exception."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client
