"""Shared fixtures and helpers for the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deathstar.app import create_app
from deathstar.config import Settings
from tests.api_checks import assert_json_error, strict_json

__all__ = ["assert_json_error", "strict_json"]

REVISION = "0123456789abcdef0123456789abcdef01234567"
CREATED = "2026-01-02T03:04:05Z"


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


@pytest.fixture(autouse=True)
def no_shared_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI's shared results tier and run ID are the caller's, never a test's."""
    for name in ("DEATHSTAR_RESULTS_CACHE", "DEATHSTAR_RESULTS_CACHE_WRITE", "GITHUB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
