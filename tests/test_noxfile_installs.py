"""The noxfile's sessions with a stand-in nox session: installs, and what integration records.

Every session's install asks uv, each time, against the lock as it is on disk then.

A reused venv must never skip an install on the strength of what an earlier read of the lock
said (a `nox -s lock test`, a `git pull` during a long run): `uv sync --locked` compares the
venv with uv.lock when the session runs and fails when the lock no longer matches pyproject.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import pytest

from harness import ROOT
from harness.core import interpreters
from harness.image import records
from harness.image import sessions as image_sessions
from harness.results import sessions as results_sessions
from harness.results import unit
from harness.results.sessions import Results
from harness.results.store import Store


def load_noxfile() -> ModuleType:
    """The noxfile as a module, loaded without what it does for nox at import: linking this
    machine's Pythons into the checkout's .nox/pythons and putting them first on PATH. Under a
    running nox those links are what its later sessions run; relinked from inside this test's
    venv, they named another Python and changed those sessions' cache keys."""
    spec = importlib.util.spec_from_file_location("deathstar_noxfile", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    path, environ_path = list(sys.path), os.environ.get("PATH", "")
    with mock.patch.object(interpreters, "expose_on_path", return_value=environ_path):
        spec.loader.exec_module(module)
    sys.path[:] = path
    return module


def links(folder: Path) -> dict[str, str]:
    return {p.name: str(p.readlink()) for p in folder.glob("python*") if p.is_symlink()}


Seen = tuple[str | None, dict[str, str]]


@pytest.fixture(scope="module")
def loaded() -> tuple[ModuleType, Seen, Seen]:
    """The noxfile, and PATH and the checkout's Python links before and after it loaded."""
    folder = ROOT / ".nox" / "pythons"
    before = os.environ.get("PATH"), links(folder)
    module = load_noxfile()
    return module, before, (os.environ.get("PATH"), links(folder))


@pytest.fixture(scope="module")
def noxfile(loaded: tuple[ModuleType, Seen, Seen]) -> ModuleType:
    return loaded[0]


def test_loading_the_noxfile_leaves_path_and_the_checkouts_python_links_alone(
    loaded: tuple[ModuleType, Seen, Seen],
) -> None:
    _, before, after = loaded
    assert after == before


class Session:
    """What install_groups uses of a nox session."""

    def __init__(self, location: Path) -> None:
        self.virtualenv = type("Venv", (), {"location": str(location)})()
        self.installs: list[tuple[tuple[str, ...], dict[str, Any]]] = []

    def run_install(self, *args: str, **kwargs: Any) -> None:
        self.installs.append((args, kwargs))


def test_every_install_syncs_from_the_lock_on_disk(noxfile: ModuleType, tmp_path: Path) -> None:
    session = Session(tmp_path / "venv")
    noxfile.install_groups(session, "test")
    noxfile.install_groups(session, "release", project=False)
    (project, env), (tools, _) = session.installs
    assert project[:3] == ("uv", "sync", "--locked")
    assert "--no-default-groups" in project
    assert "--group=test" in project
    assert env == {"env": {"UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv")}}
    assert tools[:3] == ("uv", "sync", "--locked")
    assert "--only-group=release" in tools


class IntegrationSession(Session):
    """What the integration session uses of a nox session."""

    name = "integration"
    python = "3.11"

    def __init__(self, location: Path, posargs: list[str]) -> None:
        super().__init__(location)
        self.posargs = posargs
        self.warnings: list[str] = []
        self.logged: list[str] = []
        self.runs: list[tuple[str, ...]] = []
        self.env: dict[str, str | None] = {}

    def run(self, *args: str, **kwargs: Any) -> None:
        self.runs.append(args)

    def create_tmp(self) -> str:
        return str(Path(self.virtualenv.location).parent)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def log(self, message: str) -> None:
        self.logged.append(message)

    def error(self, message: str) -> None:
        raise AssertionError(message)


@pytest.mark.parametrize("posargs", [[], ["-k", "test_api"]])
def test_only_a_whole_integration_run_records_a_verification(
    noxfile: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, posargs: list[str]
) -> None:
    """PoC: `nox -s integration -- -k one_test` wrote dist/verified.json, which push trusts."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    image, verified = tmp_path / "image.json", tmp_path / "verified.json"
    record = records.ImageRecord(
        "sha256:" + "a" * 64, [], "0.1.0", head, head, "b", 2, 1, "sha256:c", [], "", "", True
    )
    records.save_image_record(record, image)
    verified.write_text("{}")  # an earlier whole run's, for another tree
    monkeypatch.setattr(records, "image_record_path", lambda root: image)
    monkeypatch.setattr(records, "verified_record_path", lambda root: verified)
    monkeypatch.setattr(noxfile, "RESULTS", Results(ROOT, None, {}))  # the cache is off
    session = IntegrationSession(tmp_path / "venv", posargs)
    noxfile.integration.func(session)
    if posargs:
        assert not verified.exists()
        assert session.warnings
    else:
        assert records.load_verification(verified)["image_id"] == record.image_id


class Engine:
    """The engine as the integration session asks it: its version, the IDs images have."""

    def __init__(self, images: dict[str, str]) -> None:
        self.images = images

    def server_version(self) -> str:
        return "26.1.5"

    def image_id(self, ref: str) -> str | None:
        return self.images.get(ref)


def test_a_cached_integration_pass_runs_nothing_and_still_records_the_verification(
    noxfile: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    dist = tmp_path / "dist"
    dist.mkdir()
    image, verified = dist / "image.json", dist / "verified.json"
    image_id = "sha256:" + "a" * 64
    record = records.ImageRecord(
        image_id, [], "0.1.0", head, head, "b", 2, 1, "sha256:c", [], "", "", True
    )
    records.save_image_record(record, image)
    engine = Engine({image_id: image_id})
    monkeypatch.setattr(records, "image_record_path", lambda root: image)
    monkeypatch.setattr(records, "verified_record_path", lambda root: verified)
    monkeypatch.setattr(results_sessions, "DIST", dist)  # absolute: ROOT / dist is dist
    monkeypatch.setattr(results_sessions, "Docker", lambda: engine)
    monkeypatch.setattr(image_sessions, "Docker", lambda: engine)
    monkeypatch.setattr(noxfile, "RESULTS", Results(ROOT, Store(tmp_path / "store", 10**6), {}))
    in_sync = [False]  # what `uv sync --locked --check` answers for the stand-in's venv
    monkeypatch.setattr(results_sessions, "venv_matches_lock", lambda *args: in_sync[0])

    skipped = IntegrationSession(tmp_path / "venv", [])
    noxfile.integration.func(skipped)  # passes, but `nox -R` left a venv that is not the lock's
    assert any("is not recorded" in warning for warning in skipped.warnings)

    in_sync[0] = True
    first = IntegrationSession(tmp_path / "venv", [])
    noxfile.integration.func(first)  # still a miss: the suite runs (here it passes at once)
    assert [args[0] for args in first.runs] == ["pytest"]
    verified.unlink()

    again = IntegrationSession(tmp_path / "venv", [])
    noxfile.integration.func(again)
    assert again.runs == []
    assert again.installs == []
    assert again.logged[0].startswith("integration: cached pass from ")
    assert records.load_verification(verified)["image_id"] == image_id

    del engine.images[image_id]  # the image left the engine: the suite runs again
    gone = IntegrationSession(tmp_path / "venv", [])
    noxfile.integration.func(gone)
    assert [args[0] for args in gone.runs] == ["pytest"]


def test_a_venv_nox_just_installed_is_not_asked_about_again(
    noxfile: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object) -> bool:
        raise AssertionError("uv was asked about a venv it had just synced")

    monkeypatch.setattr(results_sessions, "venv_matches_lock", never)

    class Installing(Session):
        def run_install(self, *args: str, **kwargs: Any) -> bool:  # type: ignore[override]
            super().run_install(*args, **kwargs)
            return True  # what nox answers when the install ran

    recording = unit.Plan(str(tmp_path), "test-3.11", record=True)
    noxfile.install_groups(Installing(tmp_path / "venv"), "test", recording=recording)
    assert recording.withdrawn == ""
